"""SoftIndex selection: one-hot equals jnp/lax exactly, soft is the expectation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from diffbio.core import soft_ops

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(3, 5, 4)), dtype=jnp.float32)


def one_hot(index, n, dtype=jnp.float32):
    return jax.nn.one_hot(index, n, dtype=dtype)


def random_soft(shape):
    return jax.nn.softmax(jnp.asarray(RNG.normal(size=shape), dtype=jnp.float32), axis=-1)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_take_along_axis_one_hot_equals_jnp(axis):
    n = X.shape[axis]
    shape = list(X.shape)
    shape[axis] = 2
    index = jnp.asarray(RNG.integers(0, n, size=shape))
    want = jnp.take_along_axis(X, index, axis=axis)
    np.testing.assert_array_equal(soft_ops.take_along_axis(X, index, axis=axis), want)
    np.testing.assert_array_equal(soft_ops.take_along_axis(X, one_hot(index, n), axis=axis), want)


def test_take_along_axis_soft_is_the_expectation_and_flattens_for_none():
    p = random_soft((3, 2, 4, 5))  # distribution over axis 1 (n = 5), k = 2
    got = soft_ops.take_along_axis(X, jnp.moveaxis(p, -1, -1), axis=1)
    want = np.einsum("akbn,anb->akb", np.asarray(jnp.moveaxis(p, 2, 2)), np.asarray(X))

    # a convex combination of n entries can cancel to far below them (the shared RNG
    # draws differ with the test order): float32 rounding is bounded by n·eps·max|X|
    def bound(n):
        return n * np.finfo(np.float32).eps * float(jnp.max(jnp.abs(X)))

    np.testing.assert_allclose(got, want, rtol=1e-5, atol=bound(X.shape[1]))
    flat = random_soft((7, X.size))
    np.testing.assert_allclose(
        soft_ops.take_along_axis(X, flat, axis=None),
        flat @ X.ravel(),
        rtol=1e-5,
        atol=bound(X.size),
    )


@pytest.mark.parametrize("axis", [None, 0, 1, 2])
def test_take_one_hot_equals_jnp(axis):
    n = X.size if axis is None else X.shape[axis]
    index = jnp.asarray(RNG.integers(0, n, size=(2, 3)))
    want = jnp.take(X, index, axis=axis)
    np.testing.assert_array_equal(soft_ops.take(X, index, axis=axis), want)
    got = soft_ops.take(X, one_hot(index, n), axis=axis)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_choose_one_hot_equals_jnp_and_soft_mixes():
    choices = jnp.asarray(RNG.normal(size=(3, 4)), dtype=jnp.float32)
    index = jnp.array([0, 2, 1, 2])
    np.testing.assert_array_equal(soft_ops.choose(index, choices), jnp.choose(index, choices))
    np.testing.assert_array_equal(
        soft_ops.choose(one_hot(index, 3), choices), jnp.choose(index, choices)
    )
    p = random_soft((4, 3))
    np.testing.assert_allclose(
        soft_ops.choose(p, list(choices)),
        np.sum(np.asarray(p).T * np.asarray(choices), axis=0),
        rtol=1e-6,
    )


@pytest.mark.parametrize("keepdims", [True, False])
@pytest.mark.parametrize("axis", [0, 2])
def test_dynamic_index_in_dim(axis, keepdims):
    n = X.shape[axis]
    want = lax.dynamic_index_in_dim(X, 2, axis=axis, keepdims=keepdims)
    np.testing.assert_array_equal(soft_ops.dynamic_index_in_dim(X, 2, axis, keepdims), want)
    np.testing.assert_array_equal(
        soft_ops.dynamic_index_in_dim(X, one_hot(2, n), axis, keepdims), want
    )
    p = random_soft((n,))
    soft = soft_ops.dynamic_index_in_dim(X, p, axis, keepdims=False)
    np.testing.assert_allclose(
        soft, np.tensordot(np.moveaxis(np.asarray(X), axis, -1), np.asarray(p), 1), rtol=1e-5
    )


@pytest.mark.parametrize("start", [0, 2, 3, 4])
def test_dynamic_slice_in_dim_one_hot_equals_lax_including_clamping(start):
    x = jnp.arange(20.0).reshape(5, 4)
    want = lax.dynamic_slice_in_dim(x, start, 3, axis=0)
    np.testing.assert_array_equal(soft_ops.dynamic_slice_in_dim(x, start, 3, axis=0), want)
    np.testing.assert_array_equal(
        soft_ops.dynamic_slice_in_dim(x, one_hot(start, 5), 3, axis=0), want
    )


def test_dynamic_slice_in_dim_soft_is_the_expected_window_without_wrap_around():
    x = jnp.arange(6.0) ** 2
    p = jnp.array([0.0, 0.5, 0.0, 0.0, 0.0, 0.5])  # start 5 is clamped to 6 - 2 = 4
    got = soft_ops.dynamic_slice_in_dim(x, p, 2)
    want = 0.5 * x[1:3] + 0.5 * x[4:6]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_dynamic_slice_mixes_hard_and_soft_starts():
    x = jnp.arange(16.0).reshape(4, 4)
    want = lax.dynamic_slice(x, (1, 2), (2, 2))
    np.testing.assert_array_equal(soft_ops.dynamic_slice(x, [1, 2], [2, 2]), want)
    np.testing.assert_array_equal(soft_ops.dynamic_slice(x, [1, one_hot(2, 4)], [2, 2]), want)
    soft = soft_ops.dynamic_slice(x, [1, jnp.array([0.0, 0.5, 0.5, 0.0])], [2, 2])
    np.testing.assert_allclose(soft, 0.5 * x[1:3, 1:3] + 0.5 * x[1:3, 2:4], rtol=1e-6)


def test_gradients_flow_to_values_and_soft_index_under_jit_and_vmap():
    x = jnp.arange(10.0)
    logits = jnp.zeros(10)

    def window_sum(logits, x):
        return soft_ops.dynamic_slice_in_dim(x, jax.nn.softmax(logits), 3).sum()

    g_logits, g_x = jax.jit(jax.grad(window_sum, argnums=(0, 1)))(logits, x)
    assert np.all(np.isfinite(g_logits)) and np.all(np.isfinite(g_x))
    assert np.abs(np.asarray(g_logits)).sum() > 0
    batched = jax.vmap(window_sum, in_axes=(None, 0))(logits, jnp.stack([x, 2 * x]))
    np.testing.assert_allclose(batched[1], 2 * batched[0], rtol=1e-6)


def test_integer_values_with_soft_index_give_floats_and_hard_index_keeps_ints():
    x = jnp.arange(6).reshape(2, 3)
    assert soft_ops.take(x, jnp.array([2, 0]), axis=1).dtype == x.dtype
    soft = soft_ops.take(x, jnp.array([[0.5, 0.5, 0.0]]), axis=1)
    np.testing.assert_allclose(soft, [[0.5], [3.5]])


def test_bfloat16_and_float64_keep_their_dtype():
    with jax.enable_x64(True):
        x = jnp.arange(4.0, dtype=jnp.float64)
        assert soft_ops.take(x, jnp.full((1, 4), 0.25, jnp.float64)).dtype == jnp.float64
    xb = jnp.arange(4.0, dtype=jnp.bfloat16)
    assert soft_ops.take(xb, jnp.full((1, 4), 0.25, jnp.bfloat16)).dtype == jnp.bfloat16


def test_mismatched_soft_index_is_a_clear_error():
    message = (
        r"take_along_axis: the SoftIndex's last axis must have the length of axis 1 of x "
        r"\(5\), got a SoftIndex of shape \(3, 2, 4, 4\)"
    )
    with pytest.raises(ValueError, match=message):
        soft_ops.take_along_axis(X, random_soft((3, 2, 4, 4)), axis=1)
    with pytest.raises(ValueError, match=r"dynamic_slice_in_dim: slice_size must be in \[1, 5\]"):
        soft_ops.dynamic_slice_in_dim(jnp.zeros(5), random_soft((5,)), 6)
    with pytest.raises(ValueError, match=r"take: axis 3 is out of bounds"):
        soft_ops.take(X, random_soft((2, 4)), axis=3)

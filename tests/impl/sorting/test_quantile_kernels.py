"""Soft quantile kernels: hard mode is jnp.quantile; soft rows interpolate the argsort."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core.soft_ops._impl.sorting import KERNELS, quantile

# The closed-form permutation kernels; the others have their own tests.
METHODS = ["softsort", "neuralsort", "sorting_network"]
QUANTILE_METHODS = ["linear", "lower", "higher", "nearest", "midpoint"]
# n = 5: p = q (n - 1) hits integers, halves (ties for "nearest") and the ends.
Q = jnp.array([0.0, 0.1, 0.125, 0.25, 0.3, 0.375, 0.5, 0.625, 0.9, 1.0])

_RNG = np.random.default_rng(0)
X = jnp.asarray(  # separated values, no ties
    np.stack([_RNG.permutation(5) for _ in range(3)]) + 0.1 * _RNG.random((3, 5)),
    dtype=jnp.float32,
)
TIES = jnp.array([[1.0, 1.0, 0.0, 2.0, 1.0], [3.0, 3.0, 3.0, 3.0, 3.0], [0.0, 1.0, 0.0, 1.0, 2.0]])


@pytest.mark.parametrize("quantile_method", QUANTILE_METHODS)
def test_hard_mode_equals_jnp_quantile(quantile_method):
    for x in (X, TIES):
        expected = jnp.quantile(x, Q, axis=-1, method=quantile_method)  # (10, 3)
        got = quantile.quantile(x, Q, mode="hard", quantile_method=quantile_method)
        np.testing.assert_array_equal(got, expected)
        index = quantile.argquantile(x, Q, mode="hard", quantile_method=quantile_method)
        assert index.shape == (Q.size, *x.shape)
        np.testing.assert_allclose((index * x).sum(-1), expected, rtol=1e-6)
        assert int(jnp.max(jnp.sum(index > 0, axis=-1))) <= 2  # one- or two-hot


def test_scalar_q_has_no_leading_axis():
    shape = lambda f: jax.eval_shape(f, X).shape  # noqa: E731 (shapes only: nothing runs)
    assert shape(lambda x: quantile.argquantile(x, 0.3)) == X.shape
    assert shape(lambda x: quantile.quantile(x, 0.3)) == X.shape[:-1]
    assert shape(lambda x: quantile.quantile(x, jnp.array([0.3]))) == (1, X.shape[0])


@pytest.mark.parametrize("method", METHODS)
def test_rows_interpolate_the_soft_argsort(method):
    mode = "c1"
    x = jnp.asarray(_RNG.normal(size=(2, 6)), dtype=jnp.float32)
    q = jnp.array([0.0, 0.3, 0.5, 1.0])
    perm, got = jax.jit(
        lambda x: (
            KERNELS[method].argsort(x, 0.3, mode),  # (2, 6, 6)
            quantile.argquantile(x, q, 0.3, mode, method),
        )
    )(x)
    p = q * 5
    k = jnp.floor(p).astype(int)
    a = (p - k)[:, None, None]
    k_next = jnp.minimum(k + 1, 5)
    expected = (1 - a) * perm[:, k].transpose(1, 0, 2) + a * perm[:, k_next].transpose(1, 0, 2)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_soft_quantile_values(method):
    q = jnp.array([0.3, 0.5])

    @jax.jit
    def got_and_expected(x):
        got = quantile.quantile(x, q, 0.3, "smooth", method, quantile_method="midpoint")
        if method == "sorting_network":  # interpolates the network's own sorted values
            values = KERNELS[method].sort(x, 0.3)
            return got, jnp.stack([0.5 * values[:, 1] + 0.5 * values[:, 2], values[:, 2]])
        index = quantile.argquantile(x, q, 0.3, "smooth", method, quantile_method="midpoint")
        return got, (index * x).sum(-1)

    got, expected = got_and_expected(X)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("quantile_method", QUANTILE_METHODS)
@pytest.mark.parametrize("method", METHODS)
def test_small_softness_converges_to_jnp(method, quantile_method):
    expected = jnp.quantile(X, Q, axis=-1, method=quantile_method)
    got = jax.jit(
        lambda x: quantile.quantile(x, Q, 1e-3, "c2", method, quantile_method=quantile_method)
    )(X)
    np.testing.assert_allclose(got, expected, atol=2e-3)


@pytest.mark.parametrize("method", METHODS)
def test_gradients_finite_and_jit_vmap_agree(method):
    f = lambda x, q: quantile.quantile(x, q, 0.1, "smooth", method).sum()
    grad = jax.jit(jax.grad(f, argnums=(0, 1)))
    for x in (TIES, X):
        gx, gq = grad(x, jnp.float32(0.3))
        assert bool(jnp.all(jnp.isfinite(gx))) and bool(jnp.isfinite(gq))
    eager = quantile.argquantile(X, Q, 0.1, "smooth", method)
    jitted = jax.jit(lambda x, q: quantile.argquantile(x, q, 0.1, "smooth", method))(X, Q)
    mapped = jax.jit(jax.vmap(lambda x: quantile.argquantile(x, Q, 0.1, "smooth", method), 0, 1))(X)
    np.testing.assert_allclose(jitted, eager, atol=1e-6)
    np.testing.assert_allclose(mapped, eager, atol=1e-6)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="quantile_method"):
        quantile.argquantile(X, 0.5, quantile_method="closest")
    with pytest.raises(ValueError, match="method"):
        quantile.argquantile(X, 0.5, method="ot_unknown")
    with pytest.raises(ValueError, match="1-D"):
        quantile.quantile(X, jnp.ones((2, 2)))

"""The O(n log n) Laplace-kernel averages (`_laplace.kernel_average`) against the dense
softmax of `-|q - b| / s`, in float64: values and gradients, ties, queries between the
points, tiny and huge softness; and float32 without overflow at large n."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core.soft_ops._impl.sorting._laplace import kernel_average


def _dense(points, values, queries, s):
    logits = -jnp.abs(queries[..., :, None] - points[..., None, :]) / s  # (..., m, n)
    return jnp.sum(jax.nn.softmax(logits, axis=-1) * values[..., None, :], axis=-1)


def _data(seed, shape):
    rng = np.random.default_rng(seed)
    points = np.sort(rng.normal(size=shape), axis=-1)
    points[..., 3:6] = points[..., 3:4]  # ties
    values = rng.normal(size=shape) * 3.0
    # queries: the points themselves and points in between (and at both ends)
    queries = np.concatenate([points, 0.5 * (points[..., 1:] + points[..., :-1])], axis=-1)
    return points, values, queries


@jax.jit
def _both_forms(points, values, queries, s, w, separated):
    """Values, gradients (in the values and the softness) and the derivative of moving
    points and queries together, of the fast and the dense form: one compiled program
    that every softness reuses."""

    def loss(f, points, values, queries, s):
        return jnp.sum(w * f(points, values, queries, s))

    def forms(f):
        grads = jax.grad(lambda *a: loss(f, *a), argnums=(1, 3))(points, values, queries, s)
        together = jax.grad(lambda p: jnp.sum(jnp.sin(f(p, p**2, p, s))))(separated)
        return f(points, values, queries, s), grads, together

    return forms(kernel_average), forms(_dense)


@pytest.mark.parametrize("softness", [1e-4, 0.05, 1.0, 1e4])
def test_matches_the_dense_softmax_average(softness):
    with jax.enable_x64(True):
        points, values, queries = (jnp.asarray(a) for a in _data(0, (3, 11)))
        w = jnp.cos(jnp.arange(queries.size, dtype=jnp.float64)).reshape(queries.shape)
        # moving the points and queries together (as sort and rank do) has the same
        # derivative as the dense form away from ties
        separated = jnp.asarray(np.sort(np.random.default_rng(1).normal(size=(2, 9)), -1))
        fast, dense = _both_forms(points, values, queries, jnp.float64(softness), w, separated)
        np.testing.assert_allclose(fast[0], dense[0], rtol=1e-11, atol=1e-11)
        # the softness derivative carries 1/s² factors: rounding of order 1e-16/s²
        for got, want, atol in zip(fast[1], dense[1], (1e-9, 1e-8), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=atol)
        np.testing.assert_allclose(fast[2], dense[2], rtol=1e-9, atol=1e-9 / softness)


def test_one_dimensional_and_single_point():
    points = jnp.array([0.0, 1.0, 3.0])
    values = jnp.array([1.0, 2.0, 4.0])
    np.testing.assert_allclose(
        kernel_average(points, values, jnp.array([1.0, 2.0]), jnp.float32(0.5)),
        _dense(points, values, jnp.array([1.0, 2.0]), 0.5),
        rtol=1e-6,
    )
    one = kernel_average(jnp.array([2.0]), jnp.array([7.0]), jnp.array([2.0]), 0.1)
    np.testing.assert_allclose(one, [7.0])


@pytest.mark.slow  # scale: `make test-full`
def test_float32_large_n_tiny_softness_is_finite_and_accurate():
    """Every exponent is ≤ 0: no overflow at n = 4096 and s = 1e-5 (the dense logits
    reach 1e5 there); float32 agrees with the dense float64 average."""
    rng = np.random.default_rng(2)
    points = np.sort(rng.uniform(size=(1, 4096)), -1)
    values = rng.normal(size=(1, 4096))
    p32, v32 = jnp.asarray(points, jnp.float32), jnp.asarray(values, jnp.float32)

    def f(points, values):
        return jnp.sum(kernel_average(points, values, points, jnp.float32(1e-5)))

    out, grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(p32, v32)
    assert np.isfinite(out)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    with jax.enable_x64(True):
        p64 = jnp.asarray(np.asarray(p32), jnp.float64)  # the same rounded points
        want = _dense(p64, jnp.asarray(values), p64, 1e-5)
    got = jax.jit(kernel_average)(p32, v32, p32, jnp.float32(1e-5))
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(values).max())

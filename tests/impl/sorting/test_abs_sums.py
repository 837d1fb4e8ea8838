"""Soft absolute row sums: the Chebyshev interpolant against the direct sum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core.soft_ops._impl.sorting import _abs_sums, _common

N = 640  # ≥ 4 · 128 nodes: the interpolant is used


def _rows(dtype, n=N):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, n)), dtype)
    return _common.standardize(x)


@pytest.mark.parametrize("softness", [0.1, 0.7])
def test_interpolated_sums_and_gradients_match_the_direct_sum_in_float64(softness):
    with jax.enable_x64(True):
        z = _rows(jnp.float64)
        w = jnp.asarray(np.random.default_rng(1).normal(size=z.shape))
        s = jnp.asarray(softness)
        half = 0.5 * (z.max(-1, keepdims=True) - z.min(-1, keepdims=True))
        assert _abs_sums._interpolation_is_exact(half, s, jnp.float64)  # not the fallback
        got = _abs_sums.abs_row_sums(z, s, "smooth")
        want = _abs_sums.sums_at(z, z, s, "smooth")

        def loss(fn):
            return jax.grad(lambda z, s: jnp.sum(w * fn(z, s)), argnums=(0, 1))(z, s)

        g_z, g_s = loss(lambda z, s: _abs_sums.abs_row_sums(z, s, "smooth"))
        w_z, w_s = loss(lambda z, s: _abs_sums.sums_at(z, z, s, "smooth"))
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(g_z, w_z, rtol=0, atol=1e-9 * float(np.abs(w_z).max()))
    np.testing.assert_allclose(g_s, w_s, rtol=1e-9)


def test_float32_stays_within_a_few_ulps_of_the_sums():
    z = _rows(jnp.float32)
    got = jax.jit(_abs_sums.abs_row_sums, static_argnums=2)(z, jnp.float32(0.1), "smooth")
    with jax.enable_x64(True):
        z64 = jnp.asarray(np.asarray(z), jnp.float64)
        want = np.asarray(_abs_sums.sums_at(z64, z64, jnp.asarray(0.1), "smooth"))
    assert np.max(np.abs(np.asarray(got) - want)) <= 64 * np.finfo(np.float32).eps * want.max()


def test_small_softness_takes_the_direct_sum():
    z = _rows(jnp.float32)
    s = jnp.float32(0.005)
    half = 0.5 * (z.max(-1, keepdims=True) - z.min(-1, keepdims=True))
    assert not _abs_sums._interpolation_is_exact(half, s, jnp.float32)
    np.testing.assert_array_equal(
        _abs_sums.abs_row_sums(z, s, "smooth"), _abs_sums.sums_at(z, z, s, "smooth")
    )


def test_constant_row_and_other_modes():
    z = jnp.full((1, N), 0.5, jnp.float32)
    np.testing.assert_allclose(
        _abs_sums.abs_row_sums(z, jnp.float32(0.1), "smooth"), 0.0, atol=1e-3
    )
    zr = _rows(jnp.float32)
    np.testing.assert_array_equal(
        _abs_sums.abs_row_sums(zr, jnp.float32(0.1), "c1"), _abs_sums.sums_at(zr, zr, 0.1, "c1")
    )

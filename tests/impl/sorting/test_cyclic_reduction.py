"""Tridiagonal solves by cyclic reduction against dense float64 solves."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core.soft_ops._impl.sorting import _cyclic_reduction


def _dense_solve(diag: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    m = diag.shape[-1]
    off = -np.ones(m - 1)
    out = np.empty_like(rhs)
    for row in np.ndindex(diag.shape[:-1]):
        matrix = np.diag(diag[row]) + np.diag(off, 1) + np.diag(off, -1)
        out[row] = np.linalg.solve(matrix, rhs[row])
    return out


def _diagonal(regime: str, shape: tuple[int, ...], rng) -> np.ndarray:
    if regime == "laplacian":  # weakly dominant: the condition number grows like m²
        return np.full(shape, 2.0)
    if regime == "moderate":
        return 2.0 + 10.0 ** rng.uniform(-8, 3, size=shape)
    return 2.0 + 10.0 ** rng.uniform(-30, 20, size=shape)  # spans the float32 range


@pytest.mark.parametrize("m", [1, 2, 3, 7, 64, 100])
@pytest.mark.parametrize("regime", ["laplacian", "moderate", "wide"])
def test_solve_matches_a_dense_solve_in_float64(m, regime):
    rng = np.random.default_rng(m)
    diag = _diagonal(regime, (3, m), rng)
    rhs = rng.normal(size=(3, m))
    want = _dense_solve(diag, rhs)
    with jax.enable_x64(True):
        fac = _cyclic_reduction.factor(jnp.asarray(diag))
        got = np.asarray(_cyclic_reduction.solve(fac, jnp.asarray(rhs)))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


@pytest.mark.slow  # scale (n = 4096): `make test-full`
def test_laplacian_in_float32_at_n_4096():
    """The ill-conditioned case (condition number ~ m² = 1.7e7): the error stays at a
    few ulps of the solution, where a pivoting sweep loses about 1e-3 of it."""
    m = 4095
    rng = np.random.default_rng(0)
    rhs = rng.normal(size=(2, m))
    want = _dense_solve(np.full((2, m), 2.0), rhs)
    fac = jax.jit(_cyclic_reduction.factor)(jnp.full((2, m), 2.0, jnp.float32))
    got = np.asarray(jax.jit(_cyclic_reduction.solve)(fac, jnp.asarray(rhs, jnp.float32)))
    assert np.max(np.abs(got - want)) <= 1e-5 * np.abs(want).max()


def test_one_row_under_vmap_and_jit_equals_the_batch():
    rng = np.random.default_rng(1)
    diag = jnp.asarray(2.0 + rng.uniform(0, 5, size=(4, 37)), jnp.float32)
    rhs = jnp.asarray(rng.normal(size=(4, 37)), jnp.float32)

    def one(d, b):
        return _cyclic_reduction.solve(_cyclic_reduction.factor(d), b)

    batched = one(diag, rhs)
    mapped = jax.jit(jax.vmap(one))(diag, rhs)
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(batched), rtol=1e-6, atol=1e-7)
    residual = (
        diag * batched
        - jnp.pad(batched[:, :-1], ((0, 0), (1, 0)))
        - jnp.pad(batched[:, 1:], ((0, 0), (0, 1)))
    )
    np.testing.assert_allclose(np.asarray(residual), np.asarray(rhs), atol=1e-5)

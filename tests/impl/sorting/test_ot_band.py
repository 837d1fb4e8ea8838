"""Banded p-norm plans of `method="ot"` (`_ot_band`): the same plans and derivatives as
the dense solve, the fall-back where the band is too narrow, and the static widths.

Bands start at n = 1024 in use; here the width is patched to a small band at n = 80
(above the dense Schur solve of m ≤ 64), so that float64 comparisons with the dense
solve stay cheap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("ott")
pytest.importorskip("optimistix")

from diffbio.core.soft_ops._impl.sorting import _ot_band, _ot_plan, ot  # noqa: E402
from tests._profile import quick_only

N = 80
BAND = 48
TIGHT = {"lbfgs_tol": 1e-10, "cg_tol": 1e-12}


def _plans(x, s, mode, band, monkeypatch, descending=False, options=TIGHT):
    """Soft permutations and the gradient of a weighted sum of their soft ranks, with
    the band of width `band` (None: dense), in one compiled function. With a band, the
    dense solve returns NaN: results are finite only if the band was used."""
    monkeypatch.setattr(_ot_band, "width", lambda n, m: band)
    w = jnp.cos(jnp.arange(x.size, dtype=x.dtype)).reshape(x.shape)
    n = x.shape[-1]

    def loss(x):
        _, s_, z = ot._scores(x, s, True)
        perm = n * ot._uniform_plan(z, s_, mode, descending, options)  # (B, n, n)
        ranks = jnp.sum(perm * jnp.arange(1, n + 1, dtype=x.dtype), -1)
        ranks = ranks / jnp.sum(perm, -1)
        return jnp.sum(w * (n + 1 - ranks if descending else ranks)), perm

    (_, perm), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(x)
    return perm, grad


def _no_dense_solve(monkeypatch):
    def nan_solve(z, eps, anchors, nu, mode, opts):
        nan = jnp.full((*z.shape, anchors.shape[0]), jnp.nan, z.dtype)
        return nan, (None if mode == "smooth" else nan)

    monkeypatch.setattr(_ot_plan, "_solve_batch", nan_solve)


@pytest.mark.parametrize("mode", quick_only(["c0", "c1", "c2"], ["c0"]))
def test_band_equals_the_dense_plan_and_gradient_in_float64(mode, monkeypatch):
    descending = mode == "c1"
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(0).normal(size=(2, N)))
        dense, g_dense = _plans(x, 0.1, mode, None, monkeypatch, descending)
        with monkeypatch.context() as patch:
            _no_dense_solve(patch)
            band, g_band = _plans(x, 0.1, mode, BAND, monkeypatch, descending)
        np.testing.assert_allclose(band, dense, rtol=0, atol=1e-9)
        np.testing.assert_allclose(g_band, g_dense, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(band.sum(-1), 1.0, atol=1e-8)
        np.testing.assert_allclose(band.sum(-2), 1.0, atol=1e-8)


@pytest.mark.slow  # vmap and forward mode of the band: `make test-full`
def test_band_jvp_under_vmap_in_float32(monkeypatch):
    """Forward mode of a vmapped call (which runs both sides of the fall-back) gives the
    dense results in float32, finite and within the solver tolerance."""
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, N)), jnp.float32)
    dx = jnp.sin(jnp.arange(x.size, dtype=x.dtype)).reshape(x.shape)
    f = jax.vmap(lambda r: ot.sort(r, 0.1, "c1"))
    monkeypatch.setattr(_ot_band, "width", lambda n, m: BAND)
    value, tangent = jax.jit(lambda x, dx: jax.jvp(f, (x,), (dx,)))(x, dx)
    monkeypatch.setattr(_ot_band, "width", lambda n, m: None)
    value_d, tangent_d = jax.jit(lambda x, dx: jax.jvp(f, (x,), (dx,)))(x, dx)
    assert np.isfinite(np.asarray(tangent)).all()
    np.testing.assert_allclose(value, value_d, atol=1e-4)
    np.testing.assert_allclose(tangent, tangent_d, rtol=1e-3, atol=1e-3)


@pytest.mark.slow  # a second solver run of the band: `make test-full`
def test_too_narrow_a_band_falls_back_to_the_dense_solve(monkeypatch):
    """A support wider than the band (24 tied scores share 24 anchors in the second row)
    sends the batch to the dense solve: the results are the dense ones."""
    x = np.random.default_rng(2).normal(size=(2, N))
    x[1, :24] = 0.5
    with jax.enable_x64(True):
        x = jnp.asarray(x)
        band, g_band = _plans(x, 0.1, "c1", 16, monkeypatch)
        dense, g_dense = _plans(x, 0.1, "c1", None, monkeypatch)
        assert (np.asarray(dense[1]) > 0).sum(-1).max() >= 24  # the band could not hold it
        np.testing.assert_allclose(band, dense, rtol=0, atol=1e-12)
        np.testing.assert_allclose(g_band, g_dense, rtol=0, atol=1e-12)


def test_widths_are_static_and_leave_room():
    """Bands from n = 1024 where they store at most a quarter of the anchors; wide enough
    for the supports measured at n = 4096, softness 0.1 (half-widths 13, 86, 193)."""
    assert _ot_band.width(512, "c0") is None
    assert _ot_band.width(4096, "smooth") is None
    widths = {mode: _ot_band.width(4096, mode) for mode in ("c0", "c1", "c2")}
    for mode, half in (("c0", 13), ("c1", 86), ("c2", 193)):
        assert 2 * half + 1 < widths[mode] < 4096 / 4, (mode, widths)
    assert _ot_band.width(1024, "c2") is None  # a quarter of the anchors: dense is faster
    assert _ot_band.width(1024, "c0") == 64


def test_band_helpers_against_dense_arrays():
    """Windows, column sums, reads and the spread into n × m of a banded array."""
    rank = jnp.asarray([0, 4, 2, 5, 1, 3])
    idx = _ot_band.windows(rank, 6, 3)
    np.testing.assert_array_equal(idx[:, 0], [0, 3, 1, 3, 0, 2])
    a = jnp.arange(18.0).reshape(6, 3)
    dense = _ot_band.densify(a, idx, 6)
    for i in range(6):
        np.testing.assert_array_equal(dense[i, idx[i]], a[i])
        assert float(dense[i].sum()) == float(a[i].sum())
    np.testing.assert_allclose(_ot_band.col_sums(a, idx, 6), dense.sum(0))
    v = jnp.arange(6.0) ** 2
    np.testing.assert_allclose(jnp.sum(_ot_band.read(v, idx) * a, 1), dense @ v)

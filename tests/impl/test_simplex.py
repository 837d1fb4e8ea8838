"""Tests for the simplex projections in `_impl/simplex.py`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core.soft_ops._impl import simplex
from diffbio.core.soft_ops._impl.simplex import project_simplex
from tests._gradcheck import check_gradient

SOFT_MODES = ["smooth", "c0", "c1", "c2"]
ALPHA = {"c0": 1, "c1": 2, "c2": 3}


def _reference(v: np.ndarray, mode: str) -> np.ndarray:
    """Float64 NumPy reference: softmax, or y ∝ (v - θ)₊^α with θ found by bisection."""
    v = np.asarray(v, dtype=np.float64)
    if mode == "smooth":
        e = np.exp(v - v.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    alpha = ALPHA[mode]
    lo = v.max(axis=-1, keepdims=True) - 1.0  # Σ (v - lo)₊^α ≥ 1
    hi = v.max(axis=-1, keepdims=True)  # Σ (v - hi)₊^α = 0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        too_low = (np.maximum(v - mid, 0.0) ** alpha).sum(axis=-1, keepdims=True) > 1.0
        lo, hi = np.where(too_low, mid, lo), np.where(too_low, hi, mid)
    return np.maximum(v - 0.5 * (lo + hi), 0.0) ** alpha


@pytest.fixture
def scores() -> jax.Array:
    rng = np.random.default_rng(0)
    return jnp.asarray(rng.normal(size=(4, 3, 9)) * 2.0, dtype=jnp.float32)


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_matches_float64_reference(scores, mode):
    out = project_simplex(scores, mode)
    np.testing.assert_allclose(out, _reference(scores, mode), atol=2e-6)


@pytest.mark.parametrize("mode", SOFT_MODES + ["hard"])
def test_rows_on_simplex(scores, mode):
    out = project_simplex(scores, mode)
    assert out.shape == scores.shape
    assert bool(jnp.all(out >= 0))
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-6)


def test_smooth_is_softmax(scores):
    np.testing.assert_allclose(project_simplex(scores, "smooth"), jax.nn.softmax(scores), rtol=1e-6)


def test_sparse_modes_are_sparse():
    v = jnp.array([3.0, 0.0, 2.9, -5.0])
    for mode in ["c0", "c1", "c2"]:
        out = project_simplex(v, mode)
        assert out[1] == 0 and out[3] == 0 and out[0] > out[2] > 0


def test_hard_is_first_argmax():
    v = jnp.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    expected = jnp.array([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(project_simplex(v, "hard"), expected)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("mode", SOFT_MODES + ["hard"])
def test_keeps_dtype(mode, dtype):
    v = jnp.array([0.3, -1.0, 0.2, 0.25], dtype=dtype)
    out = project_simplex(v, mode)
    assert out.dtype == dtype
    expected = np.eye(4)[0] if mode == "hard" else _reference(v, mode)
    np.testing.assert_allclose(np.asarray(out, np.float32), expected, atol=1e-2)


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_gradients_match_finite_differences(mode):
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        v = jnp.asarray(rng.normal(size=(2, 6)), dtype=jnp.float64)
        weights = jnp.asarray(rng.normal(size=(6,)), dtype=jnp.float64)
        f = lambda v: project_simplex(v, mode) * weights
        check_gradient(f, (v,), atol=1e-6, rtol=1e-6, forward=True)


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_jacobian_closed_form(mode):
    """dy/dv = diag(w) - w wᵀ / Σw on the support, w = ∂y/∂t (α t^(α-1) for p-norms)."""
    with jax.enable_x64(True):
        v = jnp.array([0.4, 0.1, -0.3, -2.0, 0.35], dtype=jnp.float64)
        y = project_simplex(v, mode)
        t = y ** (1.0 / ALPHA[mode])
        w = np.where(y > 0, ALPHA[mode] * t ** (ALPHA[mode] - 1), 0.0)
        expected = np.diag(w) - np.outer(w, w) / w.sum()
        np.testing.assert_allclose(jax.jacfwd(project_simplex)(v, mode), expected, atol=1e-10)
        np.testing.assert_allclose(jax.jacrev(project_simplex)(v, mode), expected, atol=1e-10)


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize(
    "v",
    [
        [0.0, 0.0, 0.0, 0.0],  # constant row
        [1.0, 1.0, -1.0, 0.5],  # exact tie at the top
        [1e30, 1e30, -1e30, 3.0],  # huge scores (1e30 / softness far beyond exp's range)
        [7.0],  # a single entry
    ],
    ids=["constant", "tie", "huge", "n1"],
)
def test_gradients_finite_at_edge_inputs(mode, v):
    v = jnp.asarray(v, dtype=jnp.float32)
    weights = jnp.arange(v.shape[-1], dtype=jnp.float32)
    out = project_simplex(v / 1e-6, mode)
    grad = jax.grad(lambda v: jnp.sum(project_simplex(v / 1e-6, mode) * weights))(v)
    assert bool(jnp.all(jnp.isfinite(out))) and bool(jnp.all(jnp.isfinite(grad)))
    np.testing.assert_allclose(out.sum(), 1.0, atol=1e-6)


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_jit_and_vmap_agree(scores, mode):
    eager = project_simplex(scores, mode)
    jitted = jax.jit(project_simplex, static_argnums=1)(scores, mode)
    np.testing.assert_allclose(jitted, eager, atol=1e-7)
    mapped = jax.vmap(lambda row: project_simplex(row, mode))(scores)
    np.testing.assert_allclose(mapped, eager, atol=1e-7)


def test_invalid_mode():
    with pytest.raises(ValueError, match="Invalid mode"):
        project_simplex(jnp.ones(3), "c3")


def _rows(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """A (6, n) batch of rows of one kind, on several scales."""
    scales = np.array([0.05, 0.3, 1.0, 3.0, 30.0, 1e3])[:, None]
    if kind == "random":
        return rng.normal(size=(6, n)) * scales
    if kind == "tied":
        return np.round(rng.normal(size=(6, n)) * 2) / 2 * scales
    if kind == "constant":
        return np.ones((6, n)) * scales
    if kind == "geometric":  # gaps shrinking by 0.9: the support changes at every step
        return -(1.0 - 0.9 ** rng.permutation(n)) * 2.0 * scales
    return np.where(rng.random((6, n)) < 0.5, 1e30, -1e30) / 1e-6 * (scales > 0)  # huge


ROW_KINDS = ["random", "tied", "constant", "geometric", "huge"]


def _all_kinds(n: int, seed: int) -> np.ndarray:
    """Six rows of each of `ROW_KINDS`, in that order: a (6 · len(ROW_KINDS), n) batch."""
    return np.concatenate([_rows(kind, n, np.random.default_rng(seed)) for kind in ROW_KINDS])


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
def test_newton_reaches_the_threshold_from_below_in_a_few_steps(x64):
    """The p-norm maps' Newton iterates stay below θ* and end within round-off of it,
    in at most six steps, on every kind of row at n = 512 (one compiled program). "Below"
    up to the sort-based closed form's own rounding (Cardano's, up to 16 eps here)."""
    rows = _all_kinds(512, seed=5)

    @jax.jit
    def both(v):
        u = simplex._shift_and_clip(v)
        return {
            alpha: (*simplex._newton_from_below(u, alpha), simplex._sorted_threshold(u, alpha))
            for alpha in (2, 3)
        }

    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        eps = float(jnp.finfo(dtype).eps)
        for alpha, (theta, steps, exact) in both(jnp.asarray(rows, dtype)).items():
            assert int(steps) <= 6, (alpha, int(steps))
            assert np.all(np.asarray(theta) <= np.asarray(exact) + 32 * eps), alpha
            np.testing.assert_allclose(theta, exact, atol=64 * eps, err_msg=str(alpha))


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
@pytest.mark.parametrize("n", [1, 2, 7, 64])
@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_threshold_matches_sort_based(mode, n, x64):
    """The threshold (bisection for c0, Newton's method for c1 and c2, then the closed
    form on the support) equals the sort-based one to round-off, on random, tied,
    constant, geometric and huge rows (one batch, one compiled program)."""
    alpha = ALPHA[mode]
    rows = _all_kinds(n, seed=n)

    @jax.jit
    def thresholds(v):
        if mode == "c0":
            got = simplex._sparsemax_rule(v)
            expected = simplex._sparsemax_rule(v, simplex._sorted_threshold)
        else:
            got = simplex._pnorm_rule(v, alpha)[0]
            expected = simplex._pnorm_rule(v, alpha, simplex._sorted_threshold)[0]
        return got, expected, project_simplex(v, mode)

    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        got, expected, projected = thresholds(jnp.asarray(rows, dtype=dtype))
        for i, kind in enumerate(ROW_KINDS):
            part = slice(6 * i, 6 * i + 6)  # _rows gives six rows of each kind
            np.testing.assert_allclose(
                got[part], expected[part], atol=1e-13 if x64 else 1e-6, err_msg=kind
            )
        np.testing.assert_allclose(got, projected, atol=0)

"""Tests for the shared helpers in `_impl/sorting/_common.py`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import rankdata

from diffbio.core.soft_ops._impl.sorting import _common


def test_standardize_closed_form():
    x = jnp.array([[3.0, -1.0, 2.0, 10.0], [5.0, 5.0, 5.0, 5.0]])
    xn = np.asarray(x, dtype=np.float64)
    mean = xn.mean(-1, keepdims=True)
    expected = 1.0 / (1.0 + np.exp(-(xn - mean) / np.sqrt(xn.var(-1, keepdims=True) + 1e-6)))
    np.testing.assert_allclose(_common.standardize(x), expected, rtol=1e-6)
    np.testing.assert_array_equal(_common.standardize(x)[1], 0.5)  # constant row


def test_unstandardize_inverts_standardize():
    x = jnp.array([[0.3, -2.0, 4.0, 1.5, 1.0]])
    z, mean, std = _common.standardize_with_stats(x)
    np.testing.assert_allclose(_common.unstandardize(z, mean, std), x, atol=1e-5)


@pytest.mark.parametrize("descending", [False, True])
def test_hard_rank_is_rankdata_average(descending):
    x = jnp.array([[2.0, 1.0, 2.0, 0.0, 2.0, -1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    expected = rankdata(-np.asarray(x) if descending else np.asarray(x), axis=-1)
    got = _common.hard_rank(x, descending)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("n", [2, 7, 128, 129])
@pytest.mark.parametrize("descending", [False, True])
def test_hard_rank_counts_and_sorts_agree(monkeypatch, n, descending):
    """Up to n = 128 the ranks are counted from pairs; both paths give rankdata's ranks,
    and the same ranks for NaN (after every number, in input order), ±0 and ±inf."""
    rng = np.random.default_rng(n)
    x = rng.integers(-3, 4, size=(2, 3, n)).astype(np.float32)  # many ties
    special = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, np.nan], np.float32)
    x[1, :, : min(n, 6)] = special[: min(n, 6)]
    got = np.asarray(_common.hard_rank(jnp.asarray(x), descending))
    with monkeypatch.context() as patch:
        patch.setattr(_common, "_PAIRWISE_RANK_MAX", 0)
        by_sorting = np.asarray(_common.hard_rank(jnp.asarray(x), descending))
    np.testing.assert_array_equal(got, by_sorting)
    expected = rankdata(-x[0] if descending else x[0], axis=-1)
    np.testing.assert_array_equal(got[0], expected)


_SPECIAL = [np.nan, -0.0, 0.0, np.inf, -np.inf, np.nan, 1.5, 1.5]


@pytest.mark.parametrize("n", [1, 6, 128, 129])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
def test_sorting_short_rows_matches_jnp(n, dtype):
    """`stable_argsort`, `sort_rows` and `sorted_positions` (pairs counted up to
    n = 128, jnp above) against jnp: ties in input order, NaN last (first descending),
    -0 tied with +0; the gradient of `sort_rows` is `jnp.sort`'s."""
    rng = np.random.default_rng(n)
    x = rng.integers(-4, 5, size=(3, n)).astype(np.float64) / 2  # many ties
    x[1, : min(n, 8)] = _SPECIAL[: min(n, 8)]
    with jax.enable_x64(dtype == "float64"):
        xj = jnp.asarray(x, dtype)
        for descending in (False, True):
            order = jnp.argsort(xj, axis=-1, stable=True, descending=descending)
            np.testing.assert_array_equal(_common.stable_argsort(xj, descending), order)
            positions = _common.sorted_positions(xj, descending)
            np.testing.assert_array_equal(positions, _common.inverse_permutation(order))
            expected = jnp.sort(xj, axis=-1, descending=descending)
            as64 = lambda a: np.asarray(a, np.float64)  # NaN == NaN holds for float64 only
            np.testing.assert_array_equal(as64(_common.sort_rows(xj, descending)), as64(expected))
        weights = jnp.cos(jnp.arange(n, dtype=xj.dtype))
        grad = lambda f: as64(jax.grad(lambda v: jnp.sum(weights * f(v)))(xj))
        np.testing.assert_array_equal(grad(_common.sort_rows), grad(lambda v: jnp.sort(v, axis=-1)))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_row_center_is_the_entry_nearest_zero(dtype):
    x = np.array(
        [
            [3.0, -0.5, 0.25, -9.0],  # nearest zero: 0.25
            [-1.0, 1.0, 2.0, -2.0],  # ±1: +1
            [np.nan, 4.0, -3.0, np.nan],  # NaN left out
            [np.nan, np.nan, np.nan, np.nan],
            [-np.inf, np.inf, -np.inf, np.inf],
            [-0.0, 5.0, 6.0, 7.0],
        ]
    )
    expected = [0.25, 1.0, -3.0, np.nan, np.inf, -0.0]
    with jax.enable_x64(dtype == "float64"):
        got = np.asarray(_common.row_center(jnp.asarray(x, dtype)), np.float64)[:, 0]
    np.testing.assert_array_equal(got, expected)
    assert np.signbit(got[-1])


def test_hard_rank_single_element():
    np.testing.assert_array_equal(_common.hard_rank(jnp.array([4.0]), False), [1.0])


@pytest.mark.parametrize("variadic", [False, True])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_row_sums_match_jnp_sum_with_gradients_and_vmap(monkeypatch, dtype, variadic):
    """The sums equal `jnp.sum` over the last axis, batched or vmapped, by either path
    (separate sums for small arrays, one variadic reduction for large ones), and
    differentiate as sums (forward and reverse mode)."""
    if variadic:
        monkeypatch.setattr(_common, "_VARIADIC_SUM_MIN", 0)
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 3, 9)), dtype)
    total, squares = _common.row_sums(x, x * x)
    np.testing.assert_array_equal(total.shape, (2, 3))
    assert total.dtype == dtype
    tol = 1e-6 if dtype == jnp.float32 else 3e-2
    np.testing.assert_allclose(total, jnp.sum(x, -1), rtol=tol, atol=tol)
    np.testing.assert_allclose(squares, jnp.sum(x * x, -1), rtol=tol, atol=tol)
    mapped = jax.vmap(lambda r: _common.row_sums(r, jnp.sin(r)))(x)
    np.testing.assert_allclose(mapped[1], jnp.sum(jnp.sin(x), -1), rtol=tol, atol=tol)
    x32 = x.astype(jnp.float32)
    loss = lambda a: jnp.sum(jnp.cos(_common.row_sums(a, a * a)[1]))  # noqa: E731
    reference = lambda a: jnp.sum(jnp.cos(jnp.sum(a * a, -1)))  # noqa: E731
    np.testing.assert_allclose(jax.grad(loss)(x32), jax.grad(reference)(x32), rtol=1e-5)
    tangent = jnp.ones_like(x32)
    np.testing.assert_allclose(
        jax.jvp(loss, (x32,), (tangent,))[1], jax.jvp(reference, (x32,), (tangent,))[1], rtol=1e-5
    )


@pytest.mark.parametrize("m", [5, 8, 13])
def test_map_row_blocks_matches_direct(m):
    rows = jnp.arange(m, dtype=jnp.float32)[None, :] * jnp.array([[1.0], [-2.0]])  # (2, m)
    cols = jnp.linspace(0.0, 1.0, 6)  # (6,)
    f = lambda r: jnp.sum(jnp.sin(r[..., :, None] * cols), axis=-1)  # (..., c)
    direct = f(rows)
    np.testing.assert_allclose(_common.map_row_blocks(f, (rows,), 4), direct, rtol=1e-6)
    grad = jax.grad(lambda r: jnp.sum(_common.map_row_blocks(f, (r,), 4) ** 2))(rows)
    np.testing.assert_allclose(grad, jax.grad(lambda r: jnp.sum(f(r) ** 2))(rows), rtol=1e-5)


@pytest.mark.parametrize("m", [5, 8, 13])
def test_sum_row_blocks_masks_padding(m):
    coef = jnp.arange(1.0, m + 1)  # (m,)
    x = jnp.array([[0.5, -1.0, 2.0], [1.0, 1.0, 0.0]])  # (2, 3)

    def f(c, mask):
        terms = jnp.exp(c[:, None] * x[..., None, :] / m) * mask[:, None]  # (2, c, 3)
        return jnp.sum(terms, axis=-2), jnp.sum(terms * c[:, None], axis=-2)

    direct = f(coef, jnp.ones(m))
    blocked = _common.sum_row_blocks(f, (coef,), 4)
    for d, b in zip(direct, blocked, strict=True):
        np.testing.assert_allclose(b, d, rtol=1e-6)


def test_block_rows_budget():
    assert _common.block_rows((), 10) == 128
    assert _common.block_rows((32,), 4096) == 16
    assert _common.block_rows((1024,), 1 << 16) == 8


def _reference_combination(scores, softness, mode, x):
    """`convex_combination(soft_index(scores, softness, mode), x)`, the composition that
    `soft_combination` evaluates."""
    return _common.convex_combination(_common.soft_index(scores, softness, mode), x)


@pytest.mark.parametrize("mode", ["smooth", "c1"])
def test_soft_combination_matches_the_projection_and_its_derivatives(mode):
    """Values, forward and reverse derivatives (in the scores, the softness and the values)
    against projecting the rows first, in float64, with batch dimensions (2, 3)."""
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        scores = jnp.asarray(rng.normal(size=(2, 3, 5, 7)) * 3.0)  # (..., r, n)
        x = jnp.asarray(rng.normal(size=(2, 3, 7)) * 10.0 + 4.0)  # (..., n)
        s = jnp.asarray(0.7)
        got = _common.soft_combination(scores, s, mode, x)
        want = _reference_combination(scores, s, mode, x)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        tangents = tuple(jnp.asarray(rng.normal(size=a.shape)) for a in (scores, s, x))
        _, jvp_got = jax.jvp(
            lambda *a: _common.soft_combination(a[0], a[1], mode, a[2]), (scores, s, x), tangents
        )
        _, jvp_want = jax.jvp(
            lambda *a: _reference_combination(a[0], a[1], mode, a[2]), (scores, s, x), tangents
        )
        np.testing.assert_allclose(jvp_got, jvp_want, rtol=1e-10, atol=1e-10)
        weights = jnp.asarray(rng.normal(size=got.shape))
        grads_got = jax.grad(
            lambda *a: jnp.sum(weights * _common.soft_combination(a[0], a[1], mode, a[2])),
            argnums=(0, 1, 2),
        )(scores, s, x)
        grads_want = jax.grad(
            lambda *a: jnp.sum(weights * _reference_combination(a[0], a[1], mode, a[2])),
            argnums=(0, 1, 2),
        )(scores, s, x)
        for g, h in zip(grads_got, grads_want, strict=True):
            np.testing.assert_allclose(g, h, rtol=1e-10, atol=1e-10)


def test_soft_combination_without_gated_gradient_only_differentiates_the_values():
    """`gated_grad=False`: no gradient reaches the scores or the softness, and the values
    get `Pᵀ w`."""
    rng = np.random.default_rng(1)
    scores = jnp.asarray(rng.normal(size=(3, 4, 6)), jnp.float32)
    x = jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
    s = jnp.float32(0.5)
    loss = lambda a, t, v: jnp.sum(w * _common.soft_combination(a, t, "smooth", v, False))
    g_scores, g_s, g_x = jax.grad(loss, argnums=(0, 1, 2))(scores, s, x)
    np.testing.assert_array_equal(g_scores, 0.0)
    assert float(g_s) == 0.0
    p = jax.nn.softmax(scores / s, axis=-1)  # (3, 4, 6)
    np.testing.assert_allclose(g_x, jnp.einsum("brn,br->bn", p, w), rtol=1e-5, atol=1e-6)


def test_soft_combination_of_a_large_constant_row_is_exact_with_finite_gradients():
    """A constant row of 1e25 in float32 at a small softness: every value is the row's
    value and the gradient in the scores is 0 (the sums run over x − centre = 0)."""
    scores = jnp.asarray(np.random.default_rng(2).normal(size=(2, 5, 5)), jnp.float32)
    x = jnp.full((2, 5), 1e25, jnp.float32)
    s = jnp.float32(1e-3)
    np.testing.assert_array_equal(_common.soft_combination(scores, s, "smooth", x), x)
    grads = jax.grad(
        lambda a, t: jnp.sum(_common.soft_combination(a, t, "smooth", x)), argnums=(0, 1)
    )(scores, s)
    np.testing.assert_array_equal(grads[0], 0.0)
    assert float(grads[1]) == 0.0

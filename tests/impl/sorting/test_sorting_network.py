"""The soft bitonic sorting network against a plain NumPy simulation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core.soft_ops._impl.sorting import _common, sorting_network
from tests._gradcheck import check_gradient
from tests._profile import quick_only

S = 0.2


def _sigmoidal(d, s, mode):
    if mode == "smooth":
        return 1.0 / (1.0 + np.exp(-d / s))
    return np.clip((d / (5 * s) + 1.0) / 2.0, 0.0, 1.0)  # c0


def _reference(x, s, mode):
    """Ascending soft bitonic network on one power-of-two row, pair by pair."""
    v = np.array(x, dtype=np.float64)
    n = v.size
    perm = np.eye(n)
    size = 2
    while size <= n:
        d = size // 2
        while d >= 1:
            for i in range(n):
                j = i ^ d
                if j <= i:
                    continue
                lo, hi = (i, j) if (i & size) == 0 else (j, i)  # lo receives the minimum
                sigma = _sigmoidal(v[lo] - v[hi], s, mode)
                v[lo], v[hi] = (
                    sigma * v[hi] + (1 - sigma) * v[lo],
                    sigma * v[lo] + (1 - sigma) * v[hi],
                )
                perm[lo], perm[hi] = (
                    sigma * perm[hi] + (1 - sigma) * perm[lo],
                    sigma * perm[lo] + (1 - sigma) * perm[hi],
                )
            d //= 2
        size *= 2
    return v, perm


@pytest.mark.parametrize("mode", ["smooth", "c0"])
def test_matches_reference_network(mode):
    x = np.random.default_rng(0).normal(size=(2, 8))
    xj = jnp.asarray(x, dtype=jnp.float32)
    for row in range(2):
        values, perm = _reference(x[row], S, mode)
        np.testing.assert_allclose(
            sorting_network.sort(xj, S, mode, False, False)[row], values, atol=1e-5
        )
        np.testing.assert_allclose(
            sorting_network.argsort(xj, S, mode, False, False)[row], perm, atol=1e-5
        )


def test_permutation_is_doubly_stochastic_and_reproduces_values():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 6)), dtype=jnp.float32)
    perm = sorting_network.argsort(x, S, "c1", False, False)
    np.testing.assert_allclose(perm.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(perm.sum(-2), 1.0, atol=1e-6)
    values = sorting_network.sort(x, S, "c1", False, False)
    np.testing.assert_allclose(_common.weighted_sum(perm, x), values, atol=1e-5)


@pytest.mark.parametrize("mode", ["smooth", "c2"])
def test_padding_never_mixes_with_inputs(mode):
    """n = 7 is padded to 8: the same as appending one input far above the rest."""
    x = jnp.array([0.3, -1.2, 2.0, 0.5, 0.9, -0.1, 1.4])
    x8 = jnp.append(x, 1e4)
    np.testing.assert_allclose(
        sorting_network.sort(x, S, mode, False, False),
        sorting_network.sort(x8, S, mode, False, False)[:7],
        atol=1e-5,
    )
    np.testing.assert_allclose(
        sorting_network.argsort(x, S, mode, False, False),
        sorting_network.argsort(x8, S, mode, False, False)[:7, :7],
        atol=1e-6,
    )
    # Standardised (the default): values stay inside the input range.
    values = sorting_network.sort(x, 0.5, mode)
    assert float(values.min()) >= float(x.min()) - 1e-5
    assert float(values.max()) <= float(x.max()) + 1e-5


def test_standardized_values_are_mapped_back():
    x = jnp.array([[3.0, -1.0, 2.0, 10.0, 0.0]])
    z, mean, std = _common.standardize_with_stats(x)
    expected = _common.unstandardize(sorting_network.sort(z, S, "smooth", False, False), mean, std)
    np.testing.assert_allclose(sorting_network.sort(x, S), expected, rtol=1e-5)
    np.testing.assert_allclose(
        sorting_network.sort(x, S, descending=True), expected[..., ::-1], rtol=1e-5
    )


def test_argmax_and_top_k_read_the_permutation():
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 5)), dtype=jnp.float32)
    asc = sorting_network.argsort(x, S)
    np.testing.assert_allclose(sorting_network.argmax(x, S), asc[..., -1, :], atol=1e-6)
    np.testing.assert_allclose(
        sorting_network.argmin(x, S), sorting_network.argmax(-x, S), atol=1e-6
    )
    values, index = sorting_network.top_k(x, 2, S)
    np.testing.assert_allclose(index, asc[..., ::-1, :][..., :2, :], atol=1e-6)
    np.testing.assert_allclose(
        values, sorting_network.sort(x, S, descending=True)[..., :2], atol=1e-5
    )


def test_rank_from_columns():
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 6)), dtype=jnp.float32)
    perm = sorting_network.argsort(x, S)
    expected = (jnp.arange(1.0, 7.0)[:, None] * perm).sum(-2) / perm.sum(-2)
    np.testing.assert_allclose(sorting_network.rank(x, S), expected, atol=1e-5)


def test_single_element():
    x = jnp.array([[4.0]])
    assert sorting_network.argsort(x, S).shape == (1, 1, 1)
    np.testing.assert_allclose(sorting_network.sort(x, S), x, rtol=1e-6)
    assert bool(jnp.isfinite(jax.grad(lambda x: sorting_network.sort(x, S).sum())(x)).all())


def _full_rows(x, positions, mode, standardize):
    """Rows of the tracked permutation (the `argsort` path) and the network values."""
    _, perm, values = sorting_network.permutation_and_values(x, S, mode, standardize)
    return perm[..., positions, :], values


@pytest.mark.parametrize("mode", ["smooth", "c0", "c1", "c2"])
@pytest.mark.parametrize(
    "n", [1, 5, 13] + [pytest.param(n, marks=pytest.mark.slow) for n in (2, 8, 64)]
)
@pytest.mark.parametrize("standardize", [True, False])
def test_pulled_back_rows_match_full_permutation(mode, n, standardize):
    x = jnp.asarray(np.random.default_rng(n).normal(size=(3, n)), dtype=jnp.float32)
    perm = sorting_network.argsort(x, S, mode, standardize=standardize)  # (3, n, n)
    np.testing.assert_allclose(
        sorting_network.argmax(x, S, mode, standardize), perm[..., -1, :], atol=1e-6
    )
    flipped = sorting_network.argsort(-x, S, mode, standardize=standardize)
    np.testing.assert_allclose(
        sorting_network.argmin(x, S, mode, standardize), flipped[..., -1, :], atol=1e-6
    )
    k = min(3, n)
    _, index = sorting_network.top_k(x, k, S, mode, standardize)
    np.testing.assert_allclose(index, perm[..., ::-1, :][..., :k, :], atol=1e-6)
    positions = jnp.array([0, n // 2, n - 1])
    rows, values = sorting_network.rows_and_values(x, positions, S, mode, standardize)
    full_rows, full_values = _full_rows(x, positions, mode, standardize)
    np.testing.assert_allclose(rows, full_rows, atol=1e-6)
    np.testing.assert_allclose(values, full_values, rtol=1e-6)
    for descending in (False, True):
        p = perm[..., ::-1, :] if descending else perm
        expected = (jnp.arange(1.0, n + 1.0)[:, None] * p).sum(-2) / p.sum(-2)
        got = sorting_network.rank(x, S, mode, descending, standardize)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", quick_only(["smooth", "c1"], ["smooth"]))
def test_pulled_back_rows_gradients(mode):
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(7).normal(size=(2, 6)), dtype=jnp.float64)
        w = jnp.asarray(np.random.default_rng(8).normal(size=(2, 6)), dtype=jnp.float64)
        for fn in (
            lambda x: sorting_network.argmax(x, S, mode) * w,
            lambda x: sorting_network.rank(x, S, mode) * w,
            lambda x: sorting_network.top_k(x, 2, S, mode)[1] * w[:, None, :],
        ):
            check_gradient(fn, (x,), atol=1e-5, rtol=1e-5)

"""SoftSort kernels against their closed forms (NumPy, float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core.soft_ops._impl.sorting import _common, softsort

S = 0.3


def _softmax(v):
    e = np.exp(v - v.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _standardize(x):
    z = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-6)
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(3, 6)) * 2.0


@pytest.mark.parametrize("standardize", [True, False])
def test_smooth_matches_closed_form(x, standardize):
    z = _standardize(x) if standardize else x
    anchors = np.sort(z, -1)
    perm = _softmax(-np.abs(anchors[..., :, None] - z[..., None, :]) / S)  # (3, n, n)
    ranks = (_softmax(-np.abs(z[..., :, None] - anchors[..., None, :]) / S) * np.arange(1, 7)).sum(
        -1
    )
    xj = jnp.asarray(x, dtype=jnp.float32)
    args = (S, "smooth", False, standardize)
    np.testing.assert_allclose(softsort.argsort(xj, *args), perm, atol=1e-5)
    np.testing.assert_allclose(
        softsort.sort(xj, *args), (perm * x[..., None, :]).sum(-1), atol=1e-4
    )
    np.testing.assert_allclose(softsort.rank(xj, *args), ranks, atol=1e-4)
    np.testing.assert_allclose(
        softsort.argmax(xj, S, "smooth", standardize), _softmax(z / S), atol=1e-5
    )
    values, index = softsort.top_k(xj, 2, S, "smooth", standardize)
    np.testing.assert_allclose(index, perm[..., ::-1, :][..., :2, :], atol=1e-5)
    np.testing.assert_allclose(values, (index * x[..., None, :]).sum(-1), atol=1e-4)


def test_blocked_rows_match_full_matrix(monkeypatch):
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 13)), dtype=jnp.float32)

    def everything(x):
        sort_grad = jax.grad(lambda x: jnp.sum(jnp.sin(softsort.sort(x, S, "c1"))))(x)
        return softsort.sort(x, S, "c1"), softsort.rank(x, S, "c1"), sort_grad

    full = jax.jit(everything)(x)  # 13 rows fit in one block
    monkeypatch.setattr(_common, "_MAX_BLOCK_ROWS", 4)
    monkeypatch.setattr(_common, "_MIN_BLOCK_ROWS", 4)
    blocked = jax.jit(everything)(x)  # 4 blocks of 4 rows, the last padded
    for name, b, f in zip(("sort", "rank", "grad"), blocked, full, strict=True):
        np.testing.assert_allclose(b, f, atol=1e-5, err_msg=name)
    perm = softsort.argsort(x, S, "c1")  # the n × n matrix, never blocked
    np.testing.assert_allclose(blocked[0], _common.weighted_sum(perm, x), atol=1e-5)


def test_ungated_gradient_is_the_soft_permutation():
    x = jnp.array([0.3, -1.0, 2.0, 0.1])

    @jax.jit
    def jacobians_and_permutations(x):
        sort_jac = jax.jacrev(lambda x: softsort.sort(x, S, gated_grad=False))(x)
        top_jac = jax.jacrev(lambda x: softsort.top_k(x, 2, S, gated_grad=False)[0])(x)
        return sort_jac, softsort.argsort(x, S), top_jac, softsort.top_k(x, 2, S)[1]

    sort_jac, perm, top_jac, index = jacobians_and_permutations(x)
    np.testing.assert_allclose(sort_jac, perm, atol=1e-6)
    np.testing.assert_allclose(top_jac, index, atol=1e-6)


def test_softness_may_be_traced():
    x = jnp.array([0.3, -1.0, 2.0, 0.1])
    f = jax.jit(lambda s: softsort.sort(x, s))
    np.testing.assert_allclose(f(jnp.float32(S)), softsort.sort(x, S), atol=1e-6)
    assert bool(jnp.all(jnp.isfinite(jax.grad(lambda s: softsort.sort(x, s).sum() ** 2)(0.5))))


@pytest.mark.slow  # memory at scale: `make test-full`
def test_sort_memory_is_blocked():
    """Forward + backward of a (32, 4096) float32 sort stays far below the n² matrix."""
    x = jax.ShapeDtypeStruct((32, 4096), jnp.float32)
    grad = jax.grad(lambda x: jnp.sum(softsort.sort(x, 0.1) * jnp.arange(4096.0)))
    stats = jax.jit(grad).lower(x).compile().memory_analysis()
    if stats is None:
        pytest.skip("this backend reports no memory analysis")
    full_matrix = 32 * 4096 * 4096 * 4  # 2 GiB
    assert stats.temp_size_in_bytes < 128 * 2**20 < full_matrix

"""The closed-form block values of `_isotonic`: the depressed cubic of the c2 mode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core.soft_ops._impl.sorting._isotonic import depressed_cubic_root


def _bisected_roots(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The real root of u³ + p u + q (p ≥ 0, increasing in u) by bisection in long double."""
    p, q = p.astype(np.longdouble), q.astype(np.longdouble)
    hi = 2.0 * np.abs(q) ** (1.0 / 3.0) + 1e-300  # |u| ≤ |q|^{1/3}
    lo = -hi
    for _ in range(300):
        mid = (lo + hi) / 2
        below = mid**3 + p * mid + q < 0
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return np.asarray((lo + hi) / 2, np.float64)


@pytest.mark.parametrize(
    ("dtype", "decades", "rtol"), [(np.float32, 12, 4e-6), (np.float64, 30, 2e-14)]
)
def test_depressed_cubic_root_over_many_decades(dtype, decades, rtol):
    """p and q span ±`decades` decades independently: the linear term dominates, the cubic
    term dominates, and both matter; plus p = 0, q = 0 and both 0."""
    rng = np.random.default_rng(0)
    size = 4000
    p = np.abs(rng.standard_normal(size)) * 10.0 ** rng.uniform(-decades, decades, size)
    q = rng.standard_normal(size) * 10.0 ** rng.uniform(-decades, decades, size)
    p[:100], q[100:200], p[200:300], q[200:300] = 0.0, 0.0, 0.0, 0.0
    p, q = p.astype(dtype), q.astype(dtype)
    with jax.enable_x64(dtype == np.float64):
        root = np.asarray(jax.jit(depressed_cubic_root)(jnp.asarray(p), jnp.asarray(q)))
    assert root.dtype == dtype
    expected = _bisected_roots(p.astype(np.float64), q.astype(np.float64))
    tiny = np.finfo(dtype).tiny * 1e6  # results near the subnormal range are flushed
    keep = np.abs(expected) > tiny
    np.testing.assert_allclose(root[keep], expected[keep], rtol=rtol)
    assert np.all(np.abs(root[~keep]) <= 10 * tiny)
    np.testing.assert_array_equal(root[200:300], 0.0)

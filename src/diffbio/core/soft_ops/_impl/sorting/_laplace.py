"""Softmax averages under the Laplace kernel `exp(-|q - b| / s)` in O(n log n).

SoftSort in `smooth` mode weighs point `j` for query `q` by `exp(-|q - b_j| / s)`,
normalised over `j` (a softmax of `-|q - b| / s`). For points sorted ascending the
kernel factorises on each side of the query:

    Σ_j exp(-|q - b_j| / s) y_j = exp(-(q - b_{k-1}) / s) · L_{k-1} + exp(-(b_k - q) / s) · R_k,

with `k` the number of points `≤ q`, the left sums `L_i = Σ_{j ≤ i} exp(-(b_i - b_j) / s) y_j`
and the right sums `R_i = Σ_{j ≥ i} exp(-(b_j - b_i) / s) y_j`. Both are linear
recurrences, `L_i = α_i L_{i-1} + y_i` with `α_i = exp(-(b_i - b_{i-1}) / s) ∈ [0, 1]`
(and the mirror image for `R`), evaluated by a parallel associative scan. Every
exponent is ≤ 0, so nothing overflows at any softness, and the result is the dense
softmax average exactly (up to rounding), with O(n) memory and no n × n matrix.
Derivatives (in the points, queries, weights and `s`) follow by automatic
differentiation of the scan.

This is what makes `softsort`'s `sort` and `rank` O(n log n) in `smooth` mode; the
sparse modes (c0/c1/c2) need a threshold per row and keep the blocked dense form.

Reference: the factorisation of the Laplace kernel on sorted points is classical (e.g.
the O(n) exponential-kernel sums of L. Greengard and J. Strain, "The Fast Gauss
Transform", SIAM J. Sci. Stat. Comput. 1991, for the Gaussian analogue); SoftSort:
S. Prillo and J. Eisenschlos, ICML 2020, arXiv:2006.16038.
"""

from functools import partial

import jax
import jax.numpy as jnp
from jax import Array, lax

from diffbio.core.soft_ops._impl.sorting._common import row_center


def _combine(left: tuple[Array, Array], right: tuple[Array, Array]) -> tuple[Array, Array]:
    """Compose `h ↦ α h + y` maps: apply `left`, then `right`."""
    alpha_l, h_l = left
    alpha_r, h_r = right
    return alpha_l * alpha_r, alpha_r[..., None] * h_l + h_r


def _decayed_prefix(decay: Array, y: Array) -> Array:
    """`h_i = decay_i · h_{i-1} + y_i` along axis -2 of `y` `(..., n, c)` (`decay` `(..., n)`,
    `decay_0` unused)."""
    _, h = lax.associative_scan(_combine, (decay, y), axis=decay.ndim - 1)
    return h  # (..., n, c)


def kernel_average(points: Array, values: Array, queries: Array, softness: Array) -> Array:
    """`Σ_j w_j(q) values_j / Σ_j w_j(q)` with `w_j(q) = exp(-|q - points_j| / s)`.

    **Arguments:**

    - `points`: `(..., n)`, sorted ascending along the last axis.
    - `values`: `(..., n)`, the values carried by the points.
    - `queries`: `(..., m)`, each at or between the points (e.g. the points themselves).
    - `softness`: `s > 0`, scalar.

    **Returns:** `(..., m)`, the kernel-weighted averages of `values` at the queries.

    The values are centred on their entry nearest zero (`row_center`) and it is added back,
    so that the derivative through the weights sums `values - centre`, not `values`, as in
    `_common.convex_combination`.
    """
    n = points.shape[-1]
    center = row_center(values)  # (..., 1)
    values = values - center
    gaps = jnp.diff(points, axis=-1) / softness  # (..., n-1), ≥ 0
    decay = jnp.exp(-gaps)  # (..., n-1) in [0, 1]
    one = jnp.ones((*points.shape[:-1], 1), points.dtype)
    y = jnp.stack([jnp.ones_like(values), values], axis=-1)  # (..., n, 2): [1, v]
    left = _decayed_prefix(jnp.concatenate([one, decay], -1), y)  # (..., n, 2)
    right = jnp.flip(
        _decayed_prefix(jnp.concatenate([one, jnp.flip(decay, -1)], -1), jnp.flip(y, -2)), -2
    )  # (..., n, 2)
    # k = number of points ≤ q; the nearest point on the left is k - 1, on the right k
    k = jax.vmap(partial(jnp.searchsorted, side="right"))(
        lax.stop_gradient(points).reshape(-1, n),
        lax.stop_gradient(queries).reshape(-1, queries.shape[-1]),
    ).reshape(queries.shape)  # (..., m)
    lo = jnp.clip(k - 1, 0, n - 1)
    hi = jnp.clip(k, 0, n - 1)
    b_lo = jnp.take_along_axis(points, lo, axis=-1)  # (..., m)
    b_hi = jnp.take_along_axis(points, hi, axis=-1)
    # both distances are ≥ 0 exactly (searchsorted compares the same numbers); the
    # nearer one is subtracted from both (it cancels in the ratio), so that the larger
    # weight is 1 and a query far from every point does not underflow to 0 / 0
    d_lo = jnp.where(k >= 1, queries - b_lo, jnp.inf)  # (..., m)
    d_hi = jnp.where(k <= n - 1, b_hi - queries, jnp.inf)
    nearest = lax.stop_gradient(jnp.minimum(d_lo, d_hi))
    w_lo = jnp.where(k >= 1, jnp.exp(-(jnp.where(k >= 1, d_lo, 0.0) - nearest) / softness), 0.0)
    w_hi = jnp.where(
        k <= n - 1, jnp.exp(-(jnp.where(k <= n - 1, d_hi, 0.0) - nearest) / softness), 0.0
    )
    total = (
        w_lo[..., None] * jnp.take_along_axis(left, lo[..., None], axis=-2)
        + w_hi[..., None] * jnp.take_along_axis(right, hi[..., None], axis=-2)
    )  # (..., m, 2): [Σ w, Σ w v]
    return total[..., 1] / total[..., 0] + center

"""Fast soft sort and rank (Blondel et al. 2020), along the last axis.

Soft sorting and ranking as projections onto the permutahedron `P(w)`, the convex hull
of the permutations of a vector `w`:

    P(θ, w) = argmax_{μ ∈ P(w)} <θ, μ> - R(μ),

with the regulariser `R` of the mode: entropic (KL) for `smooth`, squared L2 for `c0`,
p-norms with p = 3/2 (`c1`) and p = 4/3 (`c2`). In the order of `θ` (sorted
decreasingly) the projection is `∇R*(θ - v)` for the isotonic regression `v` of `θ`
against `w` sorted decreasingly, solved by Pool Adjacent Violators (`_isotonic`).

With `ρ_k = (n - k) / (n - 1)` (k = 1 … n, decreasing from 1 to 0) and the softness `s`:

- `sort(x)` = `P(ρ / s, z)` read in the order of `ρ`: the soft sorted values of `z`;
- `rank(x)` = `(n - 1) · P(z / s, ρ')` with `ρ'_k = (n + 1 - k) / (n - 1)`: soft ranks
  in `[1, n]`, 1 for the smallest input.

`z` is `x` standardised (`sigmoid((x - mean) / std)`, SEMANTICS "standardize") unless
`standardize=False`; sorted values are mapped back with `logit(z)·std + mean`. As the
softness goes to 0 both return the hard result; as it grows, sorted values tend to the
mean of `z` (c0, values mapped back) and ranks to `(n + 1) / 2`.

The forward pass costs one sort of each row plus `O(n)` work on typical inputs, in up to
about `2 n^(2/3)` vectorised steps there, a few dozen where most positions stay alone
(small softness; `_isotonic`); the backward pass is `O(n)` (segment sums over the blocks
of the isotonic solution).

Reference: M. Blondel, O. Teboul, Q. Berthet and J. Djolonga, "Fast Differentiable
Sorting and Ranking", ICML 2020, arXiv:2002.08871.

This method gives values only: there is no soft permutation, so `top_k` returns `None` for
its SoftIndex and `gated_grad` (which would stop the gradient through a soft index) has
no effect.
"""

import jax.numpy as jnp
from jax import Array, lax

from diffbio.core.soft_ops._impl.sorting._common import (
    hard_rank,
    hard_sort,
    hard_top_k,
    output_dtype,
    prepare,
    standardize_with_stats,
    unstandardize,
)
from diffbio.core.soft_ops._impl.sorting._isotonic import project_sorted


def _anchors(n: int, dtype: jnp.dtype, first: int) -> Array:
    """`(n - 1 + first - k) / max(n - 1, 1)` for k = 0 … n - 1 (decreasing)."""
    return (jnp.arange(n - 1 + first, first - 1, -1) / max(n - 1, 1)).astype(dtype)  # (n,)


def _sort_decreasing(z: Array) -> tuple[Array, Array]:
    """`(z sorted decreasingly, permutation)` along the last axis; ties keep their order."""
    iota = lax.broadcasted_iota(jnp.int32, z.shape, z.ndim - 1)  # (..., n)
    _, order = lax.sort((lax.stop_gradient(-z), iota), dimension=z.ndim - 1, num_keys=1)
    return jnp.take_along_axis(z, order, axis=-1), order  # (..., n), (..., n)


def _inverse_permutation(order: Array) -> Array:
    """`inverse[..., order[..., k]] = k` along the last axis."""
    iota = lax.broadcasted_iota(order.dtype, order.shape, order.ndim - 1)  # (..., n)
    return jnp.put_along_axis(jnp.zeros_like(order), order, iota, axis=-1, inplace=False)


def sort(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    descending: bool = False,
    standardize: bool = True,
    *,
    gated_grad: bool = True,
) -> Array:
    """Soft sorted values `(..., n)`: the permutahedron projection `P(ρ / s, z)`.

    **Arguments:**

    - `x`: array `(..., n)`.
    - `softness`: `s > 0`; may be traced (gradients flow to it).
    - `mode`: `"smooth"`, `"c0"`, `"c1"`, `"c2"` or `"hard"` (`jnp.sort`).
    - `descending`: largest first.
    - `standardize`: sort `sigmoid((x - mean) / std)` and map the result back.
    - `gated_grad`: no effect (there is no soft index to gate).

    **Returns:**

    Array `(..., n)` of the input's float dtype; increasing (decreasing if `descending`).
    """
    del gated_grad
    if mode == "hard":
        return hard_sort(x, descending)
    xc, s = prepare(x, softness)
    n = x.shape[-1]
    if standardize:
        z, mean, std = standardize_with_stats(xc)  # (..., n), (..., 1), (..., 1)
    else:
        z = xc
    w, _ = _sort_decreasing(z)  # (..., n)
    theta = jnp.broadcast_to(_anchors(n, xc.dtype, 0) / s, w.shape)  # (..., n)
    values = project_sorted(theta, w, mode)  # (..., n), decreasing
    if not descending:
        values = jnp.flip(values, axis=-1)
    if standardize:
        values = unstandardize(values, mean, std)
    return values.astype(output_dtype(x))


def rank(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    descending: bool = False,
    standardize: bool = True,
) -> Array:
    """Soft ranks `(..., n)` in `[1, n]`: `(n - 1) · P(z / s, ρ')`, 1 for the smallest input
    (the largest if `descending`); tied inputs share their rank.

    **Arguments:**

    - `x`: array `(..., n)`.
    - `softness`: `s > 0`; may be traced (gradients flow to it).
    - `mode`: `"smooth"`, `"c0"`, `"c1"`, `"c2"` or `"hard"` (average ranks).
    - `descending`: rank the largest input first.
    - `standardize`: rank `sigmoid((x - mean) / std)` instead of `x`.

    **Returns:**

    Array `(..., n)` of the input's float dtype.
    """
    if mode == "hard":
        return hard_rank(x, descending)
    xc, s = prepare(x, softness)
    n = x.shape[-1]
    z = standardize_with_stats(xc)[0] if standardize else xc  # (..., n)
    key = -z if descending else z
    ordered, order = _sort_decreasing(key)  # (..., n)
    anchors = jnp.broadcast_to(_anchors(n, xc.dtype, 1), key.shape)  # (..., n)
    ranks = project_sorted(ordered / s, anchors, mode) * max(n - 1, 1)  # (..., n), decreasing
    ranks = jnp.take_along_axis(ranks, _inverse_permutation(order), axis=-1)  # (..., n)
    return ranks.astype(output_dtype(x))


def top_k(
    x: Array,
    k: int,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    standardize: bool = True,
    *,
    gated_grad: bool = True,
) -> tuple[Array, None]:
    """The `k` largest soft sorted values `(..., k)`, decreasing, and `None`: this method
    has no SoftIndex. `gated_grad` has no effect."""
    if mode == "hard":
        return hard_top_k(x, k)[0], None
    values = sort(x, softness, mode, descending=True, standardize=standardize)
    return values[..., :k], None

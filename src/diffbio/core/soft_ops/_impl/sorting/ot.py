"""Optimal-transport sorting kernels (Cuturi, Teboul & Vert 2019), along the last axis.

The standardised scores `z` (weights `1/n`) are transported onto sorted anchors (see
`_ot_plan` for the solvers and their derivatives):

    Γ = argmin_{Γ 1 = 1/n, Γᵀ 1 = ν}  Σ_ij Γ_ij (z_i − a_j)² + s · R(Γ),

with `R` the entropy (`smooth`, Sinkhorn with ε = s) or the p-norm regulariser
(`c0`: p = 2, `c1`: p = 3/2, `c2`: p = 4/3). For `sort`, `argsort` and `rank` the
anchors are `a = linspace(0, 1, n)` with `ν = 1/n`, and `P = n Γ` is a doubly stochastic
soft permutation: column `j` of `P` is the distribution over inputs of the j-th smallest
value, so `argsort = Pᵀ`, `sort = Pᵀ x` (convex combinations of the inputs) and
`rank_i = Σ_j (j + 1) P_ij / Σ_j P_ij`. The anchors are reversed for descending order.

As SoftJAX 0.1.1 does, the selections that need only part of the permutation transport
onto fewer anchors that pool the remaining mass:

- `argmax`: anchors `(0, 1)` with weights `((n − 1)/n, 1/n)`; the soft index is
  `n Γ[:, 1]`. `argmin(x) = argmax(−x)`.
- `top_k` (k < n): anchors `(1, (k−1)/k, …, 1/k, 0)` with weights `1/n` for the first k
  and `(n − k)/n` for the last; rows `n Γ[:, :k]ᵀ`. For k = n it is the descending
  `argsort`.
- `rows` (quantiles): for consecutive positions `p_1 ≤ … ≤ p_P` (`[k]` or
  `[k, min(k + 1, n − 1)]`), anchors `linspace(0, 1, P + 2)` with weights
  `p_1/n, 1/n, (p_2 − p_1)/n, …, (n − 1 − p_P)/n`; row r is `n Γ[:, r + 1]`.

`mode="hard"` returns the exact jnp results (and needs none of the optional packages).

Reference: M. Cuturi, O. Teboul, J.-P. Vert, "Differentiable Ranking and Sorting using
Optimal Transport", NeurIPS 2019, arXiv:1905.11885.
"""

import jax
import jax.numpy as jnp
from jax import Array

from diffbio.core.soft_ops._impl.sorting import _ot_plan
from diffbio.core.soft_ops._impl.sorting._common import (
    convex_combination,
    hard_argmax,
    hard_argsort,
    hard_rank,
    hard_sort,
    hard_top_k,
    maybe_standardize,
    one_hot,
    output_dtype,
    prepare,
    row_center,
    weighted_sum,
)

MODES = ("hard", *_ot_plan.MODES)
_LIGHT_ROW = 0.5
"""SoftIndex rows (columns of `n Γ`) of at most this mass are not divided by their sum."""


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"Invalid mode {mode!r} for method='ot'; expected one of {MODES}")


def _scores(x: Array, softness: float | Array, standardize: bool) -> tuple[Array, Array, Array]:
    xc, s = prepare(x, softness)
    return xc, s, maybe_standardize(xc, standardize)  # (..., n), (), (..., n)


def _distributions(rows: Array) -> Array:
    """SoftIndex rows `(..., r, n)` divided by their sums.

    The solvers meet the plan's marginals to their tolerance (1e-4 by default), so a row
    of `n Γ` sums to 1 only within it; the soft values `Σ_i p_ri x_i` then carry that error
    times |x|, which broke the order of the soft sort by up to 1e-4·|x| between positions
    whose values are (nearly) tied. Each divided row is a weighted mean of the inputs,
    and these are ordered exactly when the plan is monotone. Rows of (near) zero mass (the
    empty anchors of repeated quantile positions; at most `_LIGHT_ROW`) are left as they
    are.
    """
    total = jnp.sum(rows, axis=-1, keepdims=True)  # (..., r, 1)
    return rows / jnp.where(total > _LIGHT_ROW, total, jnp.ones_like(total))


def _sorted_rows(z: Array, s: Array, mode: str, descending: bool, options: dict | None):
    """SoftIndex `(..., n, n)` (sorted positions × inputs): the transposed plan, each row
    divided by its sum (`_distributions`)."""
    n = z.shape[-1]
    return _distributions(jnp.swapaxes(n * _uniform_plan(z, s, mode, descending, options), -1, -2))


def _uniform_plan(z: Array, s: Array, mode: str, descending: bool, options: dict | None):
    """The plan `Γ` `(..., n, n)` (inputs × sorted positions) of the soft permutation
    `P = n Γ`. Callers scale it where they need `P` itself: a scaled copy feeding two
    reductions is one more `n × n` array per row."""
    n = z.shape[-1]
    anchors = jnp.linspace(0.0, 1.0, n, dtype=z.dtype)  # (n,)
    if descending:
        anchors = anchors[::-1]
    # the solver wants ascending anchors: transport −z onto reversed ones instead
    sign = -1.0 if descending else 1.0
    nu = jnp.full((n,), 1.0 / n, dtype=z.dtype)
    return _ot_plan.plan(sign * z, s, sign * anchors, nu, mode, options, permutation=True)


def argsort(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    descending: bool = False,
    standardize: bool = True,
    *,
    options: dict | None = None,
) -> Array:
    """Soft permutation matrix `(..., n, n)`: row `i` is the distribution over inputs of
    the i-th smallest value (largest if `descending`); rows sum to 1, columns up to the
    solver tolerance.

    **Arguments:**

    - `x`: array `(..., n)`.
    - `softness`: regularisation strength `s > 0` (may be traced and differentiated).
    - `mode`: `"smooth"`, `"c0"`, `"c1"`, `"c2"` or `"hard"`.
    - `descending`: sort from the largest.
    - `standardize`: transport `sigmoid((x − mean)/std)` instead of `x`.
    - `options`: solver options (`ot_kwargs`), see `_ot_plan.parse_options`.
    """
    _check_mode(mode)
    if mode == "hard":
        return hard_argsort(x, descending)
    _, s, z = _scores(x, softness, standardize)
    return _sorted_rows(z, s, mode, descending, options).astype(output_dtype(x))


def sort(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    descending: bool = False,
    standardize: bool = True,
    *,
    gated_grad: bool = True,
    options: dict | None = None,
) -> Array:
    """Soft sorted values `(..., n)` = `argsort(x) @ x`.

    `gated_grad=False` stops the gradient through the soft permutation (the values still
    carry it). Other arguments as `argsort`.
    """
    _check_mode(mode)
    if mode == "hard":
        return hard_sort(x, descending)
    xc, s, z = _scores(x, softness, standardize)
    p = _uniform_plan(z, s, mode, descending, options)  # (..., n, n)
    if not gated_grad:
        p = jax.lax.stop_gradient(p)
    return _sorted_values(p, xc).astype(output_dtype(x))  # (..., n)


def _sorted_values(plan: Array, x: Array) -> Array:
    """`convex_combination(_distributions(n Γᵀ), x)` `(..., n)` for the plan `Γ`
    `(..., n, n)` (inputs × sorted positions), without transposing it: value j is
    `Σ_i Γ_ij (x_i − m) / Σ_i Γ_ij + m` (`m = row_center(x)`; columns of `n Γ` with mass
    at most `_LIGHT_ROW` are not divided, as in `_distributions`). Both sums run down the
    columns of `Γ` (a vector-matrix product), which on CPU costs a tenth of a product
    with `Γᵀ` at n = 4096.
    """
    n = plan.shape[-1]
    m = row_center(x)  # (..., 1)
    total = jnp.sum(plan, axis=-2)  # (..., n) column sums
    numerator = jnp.einsum("...i,...ij->...j", x - m, plan, precision=jax.lax.Precision.HIGHEST)
    return numerator / jnp.where(n * total > _LIGHT_ROW, total, jnp.ones_like(total) / n) + m


def rank(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    descending: bool = False,
    standardize: bool = True,
    *,
    options: dict | None = None,
) -> Array:
    """Soft ranks `(..., n)` in [1, n] (1 = smallest, or largest if `descending`):
    `rank_i = Σ_j (j + 1) P_ij / Σ_j P_ij` for the soft permutation `P` of `argsort`.
    Other arguments as `argsort`."""
    _check_mode(mode)
    if mode == "hard":
        return hard_rank(x, descending)
    n = x.shape[-1]
    _, s, z = _scores(x, softness, standardize)
    plan = _uniform_plan(z, s, mode, descending, options)  # (..., n, n), rows of P = n Γ
    positions = jnp.arange(1, n + 1, dtype=plan.dtype)  # (n,)
    total = jnp.maximum(jnp.sum(plan, axis=-1), 1e-10 / n)  # (..., n)
    ranks = weighted_sum(plan, positions) / total  # (..., n)
    return ranks.astype(output_dtype(x))


def argmax(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    standardize: bool = True,
    *,
    options: dict | None = None,
) -> Array:
    """Soft argmax `(..., n)`: the mass sent to anchor 1 when the scores are transported
    onto anchors `(0, 1)` with weights `((n − 1)/n, 1/n)`, times n. Other arguments as
    `argsort`."""
    _check_mode(mode)
    if mode == "hard":
        return hard_argmax(x)
    n = x.shape[-1]
    _, s, z = _scores(x, softness, standardize)
    if n == 1:
        return jnp.ones_like(z).astype(output_dtype(x))
    anchors = jnp.array([0.0, 1.0], dtype=z.dtype)
    nu = jnp.array([(n - 1) / n, 1 / n], dtype=z.dtype)
    p = n * _ot_plan.plan(z, s, anchors, nu, mode, options)  # (..., n, 2)
    return _distributions(p[..., 1]).astype(output_dtype(x))


def argmin(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    standardize: bool = True,
    *,
    options: dict | None = None,
) -> Array:
    """Soft argmin `(..., n)` = `argmax(−x)`."""
    return argmax(-x, softness, mode, standardize, options=options)


def top_k(
    x: Array,
    k: int,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    standardize: bool = True,
    *,
    gated_grad: bool = True,
    options: dict | None = None,
) -> tuple[Array, Array]:
    """The k largest values `(..., k)`, descending, and their SoftIndex `(..., k, n)`.

    For k < n the scores are transported onto k + 1 anchors (see the module docstring);
    for k = n this is the descending `argsort`. `gated_grad=False` stops the gradient
    through the soft index in the values.
    """
    _check_mode(mode)
    n = x.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"k must satisfy 1 <= k <= n={n}, got k={k}")
    if mode == "hard":
        return hard_top_k(x, k)
    xc, s, z = _scores(x, softness, standardize)
    if k == n:
        index = _sorted_rows(z, s, mode, True, options)  # (..., n, n)
    else:
        # anchors (1, (k−1)/k, …, 0), solved as −z onto (−1, …, 0) to keep them ascending
        anchors = -jnp.linspace(1.0, 0.0, k + 1, dtype=z.dtype)  # (k+1,)
        nu = jnp.concatenate(
            [jnp.full((k,), 1.0 / n, dtype=z.dtype), jnp.array([(n - k) / n], dtype=z.dtype)]
        )
        p = n * _ot_plan.plan(-z, s, anchors, nu, mode, options)  # (..., n, k+1)
        index = _distributions(jnp.swapaxes(p[..., :k], -1, -2))  # (..., k, n)
    values = convex_combination(jax.lax.stop_gradient(index) if not gated_grad else index, xc)
    dtype = output_dtype(x)
    return values.astype(dtype), index.astype(dtype)


def rows(
    x: Array,
    positions: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    standardize: bool = True,
    *,
    options: dict | None = None,
) -> Array:
    """Soft order statistics `(..., P, n)` for consecutive 0-based positions
    `p_1 ≤ … ≤ p_P` `(P,)` (may be traced), for quantiles: the scores are transported
    onto `P + 2` anchors `linspace(0, 1, P + 2)` with weights `p_1/n` (everything below),
    `1/n`, `(p_2 − p_1)/n`, …, `(p_P − p_{P−1})/n` and `(n − 1 − p_P)/n` (everything
    above), and row r is `n Γ[:, r + 1]` (as SoftJAX's `argquantile`). Repeated
    positions give (near) empty anchors whose rows are meaningless: callers weight them
    by 0. `mode="hard"` gives one-hot rows of the stable ascending order."""
    _check_mode(mode)
    positions = jnp.asarray(positions)
    n = x.shape[-1]
    if mode == "hard":
        order = jnp.argsort(x, axis=-1, stable=True)  # (..., n)
        return one_hot(jnp.take(order, positions, axis=-1), n, output_dtype(x))
    _, s, z = _scores(x, softness, standardize)
    dtype = z.dtype
    pos = positions.astype(dtype)  # (P,)
    count = positions.shape[0]
    nu = (
        jnp.concatenate([pos[:1], jnp.ones((1,), dtype), pos[1:] - pos[:-1], (n - 1 - pos[-1:])])
        / n
    )  # (P+2,)
    anchors = jnp.linspace(0.0, 1.0, count + 2, dtype=dtype)  # (P+2,)
    p = n * _ot_plan.plan(z, s, anchors, nu, mode, options)  # (..., n, P+2)
    index = _distributions(jnp.swapaxes(p[..., 1 : count + 1], -1, -2))  # (..., P, n)
    return index.astype(output_dtype(x))


__all__ = ["argmax", "argmin", "argsort", "rank", "rows", "sort", "top_k"]

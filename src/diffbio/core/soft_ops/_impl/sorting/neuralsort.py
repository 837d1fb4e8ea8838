"""NeuralSort kernels (Grover et al. 2019), along the last axis.

NeuralSort writes the permutation matrix of `sort` in closed form. With
`A_j = Σ_i |z_i - z_j|` (row sums of the pairwise distance matrix), the r-th largest
input (r = 1 … n) is the argmax of `(n + 1 - 2r) z - A`, and the relaxation is

    P[r, :] = proj(((n + 1 - 2r) · z - A) / s).

Here `|·|` is the soft absolute value of the same mode and softness, so that tied
inputs give no gradient jump, and `proj` is the simplex projection of the mode. Ascending
order takes the rows in reverse (coefficient `2r - n - 1` for the r-th smallest). Values
are `P @ x`; ranks renormalise the columns, `rank_j = Σ_r r P[r, j] / Σ_r P[r, j]`.

Reference: A. Grover, E. Wang, A. Zweig and S. Ermon, "Stochastic Optimization of
Sorting Networks via Continuous Relaxations", ICLR 2019, arXiv:1903.08850.

`A`, `sort` and `rank` are evaluated a block of rows at a time (O(n · block) memory per
batch row in both passes); `argmax` needs `A` and one projection. In smooth mode, `A` is
read from a Chebyshev interpolant where that is exact to rounding (`_abs_sums`, O(n) per
row), and `sort` and `rank` first compute each block of rows over a band of the sorted
columns (`_neuralsort_band`, O(n √n)), falling back to every column where a left-out
weight could be felt.
"""

import functools
import math

import jax
import jax.numpy as jnp
from jax import Array, lax

from diffbio.core.soft_ops._impl.sorting import _neuralsort_band
from diffbio.core.soft_ops._impl.sorting._abs_sums import abs_row_sums
from diffbio.core.soft_ops._impl.sorting._common import (
    block_rows,
    convex_combination,
    fold_row_blocks,
    hard_argmax,
    hard_argsort,
    hard_rank,
    hard_sort,
    hard_top_k,
    inverse_permutation,
    map_row_blocks,
    maybe_standardize,
    output_dtype,
    prepare,
    ranks_from_order,
    soft_combination,
    soft_index,
    stable_argsort,
    sum_row_blocks,
)

_EMPTY_COLUMN = 1e-10
"""Weight δ of the exact rank in the sparse modes' `rank` (only felt by columns with no
mass); smooth mode takes the exact ratio (`_smooth_ranks`)."""
_SOFTABS_GAP = 0.557
"""Bound on `(|d| − softabs(d)) / s` in smooth mode: the maximum of `2u / (1 + e^u)`,
0.55697 at u = 1.2785."""


def coefficients(positions: Array, n: int, descending: bool, dtype: jnp.dtype) -> Array:
    """Coefficient of `z` for the 1-based sorted `positions` (ascending unless
    `descending`): `n + 1 - 2r` for the r-th largest, `2r - n - 1` for the r-th smallest."""
    coef = n + 1 - 2 * positions
    return (coef if descending else -coef).astype(dtype)


def scores(coef: Array, z: Array, a_sums: Array) -> Array:
    """`coef_r · z - A` for coefficients `(c,)` or `(..., c)` → `(..., c, n)`."""
    return coef[..., :, None] * z[..., None, :] - a_sums[..., None, :]  # (..., c, n)


def _band(mode: str, softness: object, s: Array, n: int) -> int | None:
    """Half-width of the band of sorted columns that `sort` and `rank` try first
    (`_neuralsort_band`), or None where it is not used."""
    if mode != "smooth" or s.ndim != 0 or not _neuralsort_band.usable(n, softness, s.dtype):
        return None
    return _neuralsort_band.half_width(n, softness, s.dtype)


def _setup(x: Array, softness: float | Array, mode: str, standardize: bool):
    xc, s = prepare(x, softness)
    z = maybe_standardize(xc, standardize)  # (..., n)
    return xc, s, z, abs_row_sums(z, s, mode)  # ..., (..., n), (..., n)


def argsort(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    descending: bool = False,
    standardize: bool = True,
) -> Array:
    """Soft permutation matrix `(..., n, n)`: row `i` is the distribution over positions of
    the i-th smallest input (largest if `descending`)."""
    if mode == "hard":
        return hard_argsort(x, descending)
    n = x.shape[-1]
    xc, s, z, a_sums = _setup(x, softness, mode, standardize)
    coef = coefficients(jnp.arange(1, n + 1), n, descending, xc.dtype)  # (n,)
    p = soft_index(scores(coef, z, a_sums), s, mode)  # (..., n, n)
    return p.astype(output_dtype(x))


def sort(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    descending: bool = False,
    standardize: bool = True,
    *,
    gated_grad: bool = True,
) -> Array:
    """Soft sorted values `(..., n)` = `argsort(x) @ x`, computed a block of rows at a time.

    `gated_grad=False` stops the gradient through the soft permutation (the values still
    carry it).
    """
    if mode == "hard":
        return hard_sort(x, descending)
    n = x.shape[-1]
    xc, s, z, a_sums = _setup(x, softness, mode, standardize)
    coef = coefficients(jnp.arange(1, n + 1), n, descending, xc.dtype)  # (n,)

    def rows(coef_block: Array) -> Array:  # (c,) -> (..., c)
        return soft_combination(scores(coef_block, z, a_sums), s, mode, xc, gated_grad)

    def full() -> Array:
        return map_row_blocks(rows, (coef,), block_rows(x.shape[:-1], n))  # (..., n)

    band = _band(mode, softness, s, n)
    if band is not None:
        values, exact = _neuralsort_band.sort(xc, z, a_sums, s, band, gated_grad)  # (..., n)
        out = lax.cond(exact, lambda: values[..., ::-1] if descending else values, full)
    else:
        out = full()
    return out.astype(output_dtype(x))


def rank(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    descending: bool = False,
    standardize: bool = True,
) -> Array:
    """Soft ranks `(..., n)` in [1, n] (1 = smallest, or largest if `descending`):
    column-normalised `Σ_r r P[r, j] / Σ_r P[r, j]`, accumulated over blocks of rows.

    The sparse modes can leave a column with no mass at all (every row prefers other
    inputs); such a column would have no rank. Their ratio is therefore taken as
    `(Σ_r r P[r, j] + δ h_j) / (Σ_r P[r, j] + δ)` with `δ = 1e-10` and `h` the exact
    (average) rank of `z`, which tends continuously to the exact rank where the column
    has no mass. Smooth mode takes the ratio itself, in the log domain
    (`_smooth_ranks`): its columns can weigh as little as 1e-8 (n = 300, ties), where
    `δ` would move a rank by 1e-3. A standardised row short enough that no column can
    lose its weight to underflow (`_one_pass_is_exact`: n ≤ 103 in float32 at softness
    0.1, one block of rows) takes the ratio of the row softmaxes directly, in one
    exponential pass.
    """
    if mode == "hard":
        return hard_rank(x, descending)
    n = x.shape[-1]
    xc, s, z, a_sums = _setup(x, softness, mode, standardize)
    coef, positions = _rank_coefficients(z, descending)  # (n,), (n,)
    block = block_rows(x.shape[:-1], n)

    if mode == "smooth":
        if standardize and n <= block and _one_pass_is_exact(n, softness, z.dtype):
            ranks = _one_pass_ranks(z, a_sums, s, descending)
        else:
            ranks = _smooth_ranks(z, a_sums, s, softness, coef, positions, descending)
        return ranks.astype(output_dtype(x))

    def columns(coef_block: Array, pos_block: Array, mask: Array) -> tuple[Array, Array]:
        p = soft_index(scores(coef_block, z, a_sums), s, mode) * mask[:, None]  # (..., c, n)
        # a fused multiply and sum (a dot over the rows r runs about 1.5x slower on CPU)
        weighted = jnp.sum(p * pos_block[:, None], axis=-2)  # (..., n)
        return jnp.sum(p, axis=-2), weighted  # (..., n), (..., n)

    col_sums, weighted = sum_row_blocks(columns, (coef, positions), block)
    exact = jax.lax.stop_gradient(hard_rank(z, descending))  # (..., n)
    ranks = (weighted + _EMPTY_COLUMN * exact) / (col_sums + _EMPTY_COLUMN)  # (..., n)
    return ranks.astype(output_dtype(x))


def _one_pass_is_exact(n: int, softness: object, dtype: jnp.dtype) -> bool:
    """Whether the plain column ratio of the row softmaxes is exact to rounding for a
    standardised row of `n` (`z` in [0, 1]) at this (concrete) softness.

    Every input `j` is the hard NeuralSort argmax of the row `r*` at its rank, and the
    soft absolute value is below `|d|` by at most `κ s` (`κ = _SOFTABS_GAP`), so its
    weight in that row is at least `exp(−κ (n − 1) − log n)`. With the scores' rounding
    `δ ≤ 4 eps (n² + n) / s` on either side, a column loses at most `n² tiny` of its
    sums `Σ_r P_rj`, `Σ_r r P_rj` to underflow, below `eps` of them when
    `κ (n − 1) + 3 log n + 2δ ≤ log(eps / tiny)` (n ≤ 103 in float32 at softness 0.1).
    """
    if not isinstance(softness, int | float) or isinstance(softness, bool) or softness <= 0:
        return False
    finfo = jnp.finfo(dtype)
    eps, tiny = float(finfo.eps), float(finfo.tiny)
    rounding = 4.0 * eps * (n * n + n) / softness
    lowest = _SOFTABS_GAP * (n - 1) + 3.0 * math.log(n) + 2.0 * rounding
    return lowest <= math.log(eps / tiny)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _one_pass_ranks(z: Array, a_sums: Array, s: Array, descending: bool) -> Array:
    """Smooth-mode ranks `(..., n)` as the column ratio `Σ_r r P_rj / Σ_r P_rj` of the row
    softmaxes `P` themselves, where `_one_pass_is_exact` shows that no column loses its
    weight to underflow: one exponential pass instead of the log domain's two.

    With `e_rj = exp(v_rj − max_j v_rj)` and `g_r = 1 / Σ_j e_rj`, both column sums are
    one product `[r g_r, g_r]ᵀ @ e` (`P_rj = g_r e_rj`), which reads `e` once instead of
    writing `P` and summing it twice (rank forward at B = 32, n = 64: 0.84–0.94 of
    SoftJAX's time, 1.04–1.09 with `P` written). The derivative is that of the
    normalised form, `_normalised_column_ranks`: differentiating the product instead
    made forward+backward 38% slower.
    """
    coef, positions = _rank_coefficients(z, descending)  # (n,), (n,)
    v = scores(coef, z, a_sums) / s  # (..., n, n): rows r, columns j
    e = jnp.exp(v - jnp.max(v, axis=-1, keepdims=True))  # (..., n, n)
    g = 1.0 / jnp.sum(e, axis=-1)  # (..., n): 1 / row sums, in (0, 1]
    rows = jnp.stack([g * positions, g], axis=-2)  # (..., 2, n)
    sums = jnp.einsum("...kr,...rj->...kj", rows, e, precision=lax.Precision.HIGHEST)
    return _column_ratio(sums[..., 0, :], sums[..., 1, :])  # (..., n)


@_one_pass_ranks.defjvp
def _one_pass_ranks_jvp(descending: bool, primals: tuple, tangents: tuple) -> tuple:
    return jax.jvp(
        functools.partial(_normalised_column_ranks, descending=descending), primals, tangents
    )


def _normalised_column_ranks(z: Array, a_sums: Array, s: Array, descending: bool) -> Array:
    """`_one_pass_ranks` with the row softmaxes `P` `(..., n, n)` written out."""
    coef, positions = _rank_coefficients(z, descending)  # (n,), (n,)
    p = jax.nn.softmax(scores(coef, z, a_sums) / s, axis=-1)  # (..., n, n)
    total = jnp.sum(p, axis=-2)  # (..., n), at least exp(−κ (n − 1) − log n)
    weighted = jnp.sum(p * positions[:, None], axis=-2)  # (..., n)
    return _column_ratio(weighted, total)


def _rank_coefficients(z: Array, descending: bool) -> tuple[Array, Array]:
    """The score coefficients and the 1-based positions `(n,)` of the rows, in `z`'s dtype."""
    n = z.shape[-1]
    positions = jnp.arange(1, n + 1)  # (n,)
    return coefficients(positions, n, descending, z.dtype), positions.astype(z.dtype)


def _column_ratio(weighted: Array, sums: Array) -> Array:
    """`weighted / sums` `(..., n)`, both first scaled by `1 / sums` held constant: the
    derivative of the ratio of two sums of 1e-24 would square them (1e-48 underflows in
    float32)."""
    scale = lax.stop_gradient(1.0 / sums)  # (..., n)
    return (weighted * scale) / (sums * scale)


def _smooth_ranks(
    z: Array,
    a_sums: Array,
    s: Array,
    softness: float | Array,
    coef: Array,
    positions: Array,
    descending: bool,
) -> Array:
    """Smooth-mode ranks `(..., n)`, the exact ratio `Σ_r r P_rj / Σ_r P_rj`: over a band
    of the sorted columns where that is exact (`_neuralsort_band`), else over every row.

    Every row is taken through its log-weights `ℓ_rj = v_rj − logsumexp_j v_rj`
    (`v = scores / s`) as `rank_j = Σ_r r softmax_r(ℓ_rj)`, the same ratio in the log
    domain: a column whose weights all underflow still has its rank. Columns are
    accumulated over blocks of rows, each shifted by its maximum over all rows. The
    band sums the weights themselves; a column whose banded weights sum to less than
    the smallest normal number takes the exact rank.
    """
    n = z.shape[-1]
    band = _band("smooth", softness, s, n)
    if band is None:
        return _log_domain_ranks(z, a_sums, s, coef, positions)
    order = stable_argsort(lax.stop_gradient(z))  # (..., n)
    inverse = inverse_permutation(order)
    sums, weighted, exact = _neuralsort_band.rank_sums(z, a_sums, s, band, order, inverse)
    if descending:  # position r of the ascending rows is n + 1 − r of the descending
        weighted = (n + 1) * sums - weighted

    def banded() -> Array:
        hard = ranks_from_order(lax.stop_gradient(z), order, inverse, descending)  # (..., n)
        has_mass = sums > jnp.finfo(sums.dtype).tiny  # (..., n)
        ratio = _column_ratio(jnp.where(has_mass, weighted, 1.0), jnp.where(has_mass, sums, 1.0))
        return jnp.where(has_mass, ratio, hard)

    return lax.cond(exact, banded, lambda: _log_domain_ranks(z, a_sums, s, coef, positions))


def _log_domain_ranks(z: Array, a_sums: Array, s: Array, coef: Array, positions: Array) -> Array:
    """`rank_j = Σ_r r softmax_r(ℓ_rj)` `(..., n)` over every row (`_smooth_ranks`)."""
    dtype = z.dtype
    block = block_rows(z.shape[:-1], z.shape[-1])
    if coef.shape[-1] <= block:  # one block: a softmax down the columns
        v = scores(coef, z, a_sums) / s  # (..., n, n)
        log_w = v - jax.nn.logsumexp(v, axis=-1, keepdims=True)  # (..., n, n)
        column = jax.nn.softmax(log_w, axis=-2)  # (..., n, n)
        return jnp.sum(column * positions[:, None].astype(dtype), axis=-2)  # (..., n)

    def log_weights(z: Array, a_sums: Array, s: Array, coef_block: Array, mask: Array):
        v = scores(coef_block, z, a_sums) / s  # (..., c, n)
        log_w = v - jax.nn.logsumexp(v, axis=-1, keepdims=True)  # (..., c, n)
        return jnp.where(mask[:, None] > 0, log_w, -jnp.inf)  # padding rows weigh 0

    # two passes: the column maxima first (no derivative), so that the sums of the
    # second add up over blocks (a running maximum would make the backward pass keep
    # every block's partial sums: 330 MiB at 32 × 4096)
    held = tuple(lax.stop_gradient(a) for a in (z, a_sums, s))

    def block_top(coef_block: Array, pos_block: Array, mask: Array) -> tuple[Array]:
        return (jnp.max(log_weights(*held, coef_block, mask), axis=-2),)  # (..., n)

    rows = (coef, positions.astype(dtype))  # (n,) each, constants
    (top,) = fold_row_blocks(block_top, rows, block, lambda a, b: (jnp.maximum(a[0], b[0]),))

    def columns(coef_block: Array, pos_block: Array, mask: Array) -> tuple[Array, Array]:
        w = jnp.exp(log_weights(z, a_sums, s, coef_block, mask) - top[..., None, :])
        return jnp.sum(w, axis=-2), jnp.sum(w * pos_block[:, None], axis=-2)  # (..., n)

    total, weighted = sum_row_blocks(columns, rows, block)
    return weighted / total


def argmax(
    x: Array, softness: float | Array = 0.1, mode: str = "smooth", standardize: bool = True
) -> Array:
    """Soft argmax `(..., n)` = `proj(((n - 1) z - A) / s)` (the first NeuralSort row of
    descending order), without the n × n matrix."""
    if mode == "hard":
        return hard_argmax(x)
    n = x.shape[-1]
    _, s, z, a_sums = _setup(x, softness, mode, standardize)
    return soft_index((n - 1) * z - a_sums, s, mode).astype(output_dtype(x))  # (..., n)


def argmin(
    x: Array, softness: float | Array = 0.1, mode: str = "smooth", standardize: bool = True
) -> Array:
    """Soft argmin `(..., n)` = `argmax(-x)`."""
    return argmax(-x, softness, mode, standardize)


def top_k(
    x: Array,
    k: int,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    standardize: bool = True,
    *,
    gated_grad: bool = True,
) -> tuple[Array, Array]:
    """The k largest values `(..., k)`, descending, and their SoftIndex `(..., k, n)`
    (the first k rows of the descending NeuralSort matrix)."""
    if mode == "hard":
        return hard_top_k(x, k)
    n = x.shape[-1]
    xc, s, z, a_sums = _setup(x, softness, mode, standardize)
    coef = coefficients(jnp.arange(1, k + 1), n, True, xc.dtype)  # (k,)
    p = soft_index(scores(coef, z, a_sums), s, mode)  # (..., k, n)
    values = convex_combination(jax.lax.stop_gradient(p) if not gated_grad else p, xc)  # (..., k)
    dtype = output_dtype(x)
    return values.astype(dtype), p.astype(dtype)

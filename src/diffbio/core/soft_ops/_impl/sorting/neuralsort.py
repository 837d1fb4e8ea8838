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
batch row in both passes); `argmax` needs `A` and one projection.
"""

import jax
import jax.numpy as jnp
from jax import Array

from diffbio.core.soft_ops._impl.sigmoidal import softabs
from diffbio.core.soft_ops._impl.sorting._common import (
    block_rows,
    convex_combination,
    hard_argmax,
    hard_argsort,
    hard_rank,
    hard_sort,
    hard_top_k,
    map_row_blocks,
    maybe_standardize,
    output_dtype,
    prepare,
    soft_index,
    sum_row_blocks,
)

_EMPTY_COLUMN = 1e-10
"""Weight δ of the exact rank in `rank` (only felt by columns with no mass)."""


def abs_row_sums(z: Array, softness: Array, mode: str) -> Array:
    """`A_j = Σ_i softabs(z_j - z_i)` `(..., n)`, a block of entries j at a time.

    The soft absolute value is even, so each block sums along its last (contiguous)
    axis: reducing the block `(..., n, c)` over its second-to-last axis instead is
    about three times slower on CPU.
    """

    def columns(z_block: Array) -> Array:  # (..., c) -> (..., c)
        diff = z_block[..., :, None] - z[..., None, :]  # (..., c, n)
        return jnp.sum(softabs(diff, softness, mode), axis=-1)  # (..., c)

    return map_row_blocks(columns, (z,), block_rows(z.shape[:-1], z.shape[-1]))  # (..., n)


def coefficients(positions: Array, n: int, descending: bool, dtype: jnp.dtype) -> Array:
    """Coefficient of `z` for the 1-based sorted `positions` (ascending unless
    `descending`): `n + 1 - 2r` for the r-th largest, `2r - n - 1` for the r-th smallest."""
    coef = n + 1 - 2 * positions
    return (coef if descending else -coef).astype(dtype)


def scores(coef: Array, z: Array, a_sums: Array) -> Array:
    """`coef_r · z - A` for coefficients `(c,)` or `(..., c)` → `(..., c, n)`."""
    return coef[..., :, None] * z[..., None, :] - a_sums[..., None, :]  # (..., c, n)


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
        p = soft_index(scores(coef_block, z, a_sums), s, mode)  # (..., c, n)
        if not gated_grad:
            p = jax.lax.stop_gradient(p)
        return convex_combination(p, xc)  # (..., c)

    out = map_row_blocks(rows, (coef,), block_rows(x.shape[:-1], n))  # (..., n)
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
    inputs); such a column would have no rank. The ratio is therefore taken as
    `(Σ_r r P[r, j] + δ h_j) / (Σ_r P[r, j] + δ)` with `δ = 1e-10` and `h` the exact
    (average) rank of `z`, which changes nothing measurable where the column has mass
    and tends continuously to the exact rank where it has none.
    """
    if mode == "hard":
        return hard_rank(x, descending)
    n = x.shape[-1]
    xc, s, z, a_sums = _setup(x, softness, mode, standardize)
    positions = jnp.arange(1, n + 1)  # (n,)
    coef = coefficients(positions, n, descending, xc.dtype)  # (n,)

    def columns(coef_block: Array, pos_block: Array, mask: Array) -> tuple[Array, Array]:
        p = soft_index(scores(coef_block, z, a_sums), s, mode) * mask[:, None]  # (..., c, n)
        # a fused multiply and sum (a dot over the rows r runs about 1.5x slower on CPU)
        weighted = jnp.sum(p * pos_block[:, None], axis=-2)  # (..., n)
        return jnp.sum(p, axis=-2), weighted  # (..., n), (..., n)

    block = block_rows(x.shape[:-1], n)
    col_sums, weighted = sum_row_blocks(columns, (coef, positions.astype(xc.dtype)), block)
    exact = jax.lax.stop_gradient(hard_rank(z, descending))  # (..., n)
    ranks = (weighted + _EMPTY_COLUMN * exact) / (col_sums + _EMPTY_COLUMN)  # (..., n)
    return ranks.astype(output_dtype(x))


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

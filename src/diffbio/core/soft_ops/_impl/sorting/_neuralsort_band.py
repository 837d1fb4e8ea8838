"""NeuralSort's smooth rows restricted to a band of the sorted inputs.

With the inputs in ascending order `z_(1) ≤ … ≤ z_(n)`, row r of the ascending NeuralSort
matrix, `softmax_j((2r − n − 1) z_(j) − A_(j)) / s)`, peaks near column j = r and falls off
on both sides (quadratically in `j − r` when the inputs are spread evenly). Each block of
`c` rows therefore only needs the `w = c + 2h` columns around it: `O(n w)` work instead of
`O(n²)`.

The band is used only where it changes nothing beyond rounding. For a block of rows with
coefficients in `[c_first, c_last]`, the largest score outside the block's window,
`U(c) = max_{j outside} (c z_j − A_j)`, is a convex function of the coefficient, so it is
at most the chord between `U(c_first)` and `U(c_last)` in between. When that bound is
below each row's largest in-window score by `s · log(n / eps)`, the weights left out sum
to less than `eps` times the largest weight of their row, and the caller keeps the banded
result; otherwise it takes the full computation. Each block's window is centred between
the peaks of its first and last rows.

Reference: A. Grover, E. Wang, A. Zweig and S. Ermon, "Stochastic Optimization of
Sorting Networks via Continuous Relaxations", ICLR 2019, arXiv:1903.08850.
"""

import math

import jax
import jax.numpy as jnp
from jax import Array, lax

from diffbio.core.soft_ops._impl.sorting._common import (
    soft_combination,
    soft_index,
    stable_argsort,
)

_BLOCK_ROWS = 64
"""Rows `c` per block (at least; `n / 256` for larger inputs)."""
_DEFAULT_SOFTNESS = 0.1
"""Softness that sizes the band when the softness is traced."""
_DENSITY = 2.0
"""Inputs per unit of z and per n that the band's width assumes (the standardised normal
peaks at 1.6)."""


def _block_size(n: int) -> int:
    """Rows per block (not `_common.block_rows`, which sizes blocks by memory)."""
    return max(_BLOCK_ROWS, n // 256)


def half_width(n: int, softness: object, dtype: jnp.dtype) -> int:
    """Columns `h` on each side of a block: enough for scores falling by `log(n / eps)`.

    Inputs of density `ρ n` that are `d` apart have scores that fall by about
    `d² / (ρ n s)` for a small softness, and by `d² / (2 ρ² n s²)` once the soft absolute
    value is nearly quadratic over the row; `d² = log(n / eps) ρ n s (1 + 2.5 s)` covers
    both (measured on standardised normal rows for softness 0.01 … 1).
    """
    s = float(softness) if isinstance(softness, int | float) else _DEFAULT_SOFTNESS
    needed = math.sqrt(_threshold(n, dtype) * _DENSITY * n * s * (1.0 + 2.5 * s))
    c = _block_size(n)
    return c * math.ceil(needed / c)


def usable(n: int, softness: object, dtype: jnp.dtype) -> bool:
    """Whether the band is at most half the row."""
    return _block_size(n) + 2 * half_width(n, softness, dtype) <= n // 2


def _threshold(n: int, dtype: jnp.dtype) -> float:
    return math.log(n / float(jnp.finfo(dtype).eps))


def _blocks(
    z_sorted: Array, a_sorted: Array, softness: Array, band: int, per_block
) -> tuple[Array, Array]:
    """Run `per_block(rows, window, scores)` on every block of rows, where `rows` `(c,)`
    are the 0-based sorted positions, `window` `(..., w)` the sorted columns of the
    block's window and `scores` `(..., c, w)` their scores (undivided by the softness).
    Returns the stacked outputs `(nb, ...)` and whether the band is exact everywhere.

    A window is centred between the peaks of the block's first and last rows, which
    sit away from the diagonal where the soft absolute value blurs the ranks (near the
    ends of a standardised row).
    """
    n = z_sorted.shape[-1]
    c = _block_size(n)
    width = c + 2 * band
    num_blocks = -(-n // c)
    threshold = _threshold(n, z_sorted.dtype)
    z_const = lax.stop_gradient(z_sorted)
    a_const = lax.stop_gradient(a_sorted)
    s_const = lax.stop_gradient(softness)
    columns = jnp.arange(n)

    def block(b: Array):
        rows = b * c + jnp.arange(c)  # (c,) sorted positions, some ≥ n in the last block
        coef = (2 * rows + 1 - n).astype(z_sorted.dtype)  # (c,) 2r − n − 1 for r = rows + 1
        last = jnp.minimum(b * c + c, n) - 1  # the block's last valid row
        ends = jnp.stack([coef[0], (2 * last + 1 - n).astype(coef.dtype)])  # (2,)
        ends_scores = ends[:, None] * z_const[..., None, :] - a_const[..., None, :]  # (..., 2, n)
        peaks = jnp.argmax(ends_scores, axis=-1)  # (..., 2)
        start = jnp.clip((peaks[..., 0] + peaks[..., 1] - width) // 2, 0, n - width)  # (...,)
        window = start[..., None] + jnp.arange(width)  # (..., w)
        z_win = jnp.take_along_axis(z_sorted, window, axis=-1)  # (..., w)
        a_win = jnp.take_along_axis(a_sorted, window, axis=-1)  # (..., w)
        scores = coef[:, None] * z_win[..., None, :] - a_win[..., None, :]  # (..., c, w)
        # exactness: each row's maximum against every score outside its window, bounded
        # by the chord between the block's first and last coefficient (the largest
        # outside score is a convex function of the coefficient)
        valid = rows < n  # (c,)
        row_max = jnp.max(lax.stop_gradient(scores), axis=-1)  # (..., c)
        outside = (columns < start[..., None]) | (columns >= start[..., None] + width)
        highest = jnp.max(jnp.where(outside[..., None, :], ends_scores, -jnp.inf), axis=-1)
        fraction = jnp.clip((rows - b * c) / jnp.maximum(last - b * c, 1), 0, 1)  # (c,)
        bound = highest[..., :1] + fraction * (highest[..., 1:] - highest[..., :1])  # (..., c)
        clear = (bound - row_max) / s_const <= -threshold  # (..., c)
        exact = jnp.all(clear | ~valid) & jnp.all(jnp.isfinite(row_max))
        return per_block(rows, window, scores), exact

    out, exact = lax.map(jax.checkpoint(block), jnp.arange(num_blocks))
    return out, jnp.all(exact)


def sort(
    xc: Array, z: Array, a_sums: Array, softness: Array, band: int, gated_grad: bool
) -> tuple[Array, Array]:
    """Ascending soft-sorted values `(..., n)` and whether the band was exact."""
    n = z.shape[-1]
    order = stable_argsort(lax.stop_gradient(z))  # (..., n)
    z_sorted, a_sorted, x_sorted = (jnp.take_along_axis(r, order, axis=-1) for r in (z, a_sums, xc))

    def per_block(rows: Array, window: Array, scores: Array) -> Array:
        x_window = jnp.take_along_axis(x_sorted, window, axis=-1)  # (..., w)
        return soft_combination(scores, softness, "smooth", x_window, gated_grad)  # (..., c)

    values, exact = _blocks(z_sorted, a_sorted, softness, band, per_block)  # (nb, ..., c)
    values = jnp.moveaxis(values, 0, -2)  # (..., nb, c)
    return values.reshape(*values.shape[:-2], -1)[..., :n], exact


def rank_sums(
    z: Array, a_sums: Array, softness: Array, band: int, order: Array, inverse: Array
) -> tuple[Array, Array, Array]:
    """Column sums `Σ_r P_rj` and `Σ_r r P_rj` `(..., n)` of the ascending matrix (columns
    in the input's order, r 1-based) and whether the band was exact, given the ascending
    permutation `order` of `z` and its `inverse`."""
    n = z.shape[-1]
    z_sorted, a_sorted = (jnp.take_along_axis(r, order, axis=-1) for r in (z, a_sums))

    def per_block(rows: Array, window: Array, scores: Array) -> tuple[Array, Array, Array]:
        valid = (rows < n).astype(scores.dtype)  # (c,)
        p = soft_index(scores, softness, "smooth") * valid[:, None]  # (..., c, w)
        positions = (rows + 1).astype(scores.dtype)  # (c,)
        return jnp.sum(p, axis=-2), jnp.sum(p * positions[:, None], axis=-2), window

    (col_sums, weighted, windows), exact = _blocks(z_sorted, a_sorted, softness, band, per_block)
    batch = z.shape[:-1]
    # (nb, ..., w) -> (B, nb·w): each block's window columns, one row per batch entry
    flat = lambda parts: jnp.moveaxis(parts, 0, -2).reshape(-1, parts.shape[0] * parts.shape[-1])
    index = flat(windows)

    def scatter(parts: Array) -> Array:  # (nb, ..., w) -> (..., n) in the input's order
        add = lambda idx, v: jnp.zeros((n,), v.dtype).at[idx].add(v)
        in_sorted = jax.vmap(add)(index, flat(parts)).reshape(*batch, n)  # (..., n)
        return jnp.take_along_axis(in_sorted, inverse, axis=-1)

    return scatter(col_sums), scatter(weighted), exact

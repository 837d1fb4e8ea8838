"""SoftSort kernels (Prillo & Eisenschlos 2020), along the last axis.

SoftSort relaxes the permutation matrix of `argsort` row by row: with anchors
`a = sort(z)` (the sorted standardised inputs), row `r` is

    P[r, :] = proj(-|a_r - z| / s),

a distribution concentrated on the inputs closest to the r-th order statistic.
`proj` is the simplex projection of the mode (`smooth` = softmax as in the paper;
`c0`/`c1`/`c2` the sparse p-norm variants of SoftJAX). Values are `P @ x` (convex
combinations of the raw inputs); ranks project the other way, over anchors:
`rank_j = Σ_r r · proj_r(-|z_j - a_r| / s)`.

Reference: S. Prillo and J. Eisenschlos, "SoftSort: A Continuous Relaxation for the
argsort Operator", ICML 2020, arXiv:2006.16038.

In `smooth` mode `sort` and `rank` need no n × n matrix at all: the softmax weights
`exp(-|a_r - z_j| / s)` factorise on either side of each anchor, so both are prefix
scans over the sorted inputs, O(n log n) time and O(n) memory (`_laplace`). The sparse
modes evaluate the matrix a block of rows at a time (O(n · block) memory per batch row
in the forward and backward passes); `argmax` needs a single projection.
"""

import jax
import jax.numpy as jnp
from jax import Array, lax

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
    sort_rows,
    stable_argsort,
    weighted_sum,
)
from diffbio.core.soft_ops._impl.sorting._laplace import kernel_average


def _scores(anchors: Array, z: Array) -> Array:
    """`-|a_r - z_j|` for anchors `(..., c)` against inputs `(..., n)`."""
    return -jnp.abs(anchors[..., :, None] - z[..., None, :])  # (..., c, n)


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
    xc, s = prepare(x, softness)
    z = maybe_standardize(xc, standardize)  # (..., n)
    anchors = sort_rows(z, descending)  # (..., n)
    p = soft_index(_scores(anchors, z), s, mode)  # (..., n, n)
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
    xc, s = prepare(x, softness)
    z = maybe_standardize(xc, standardize)  # (..., n)
    if mode == "smooth":
        order = stable_argsort(lax.stop_gradient(z))  # (..., n)
        points = jnp.take_along_axis(z, order, axis=-1)  # (..., n) ascending
        # gated_grad=False: the weights (from z) carry no gradient, the values still do
        weights = points if gated_grad else lax.stop_gradient(points)
        values = kernel_average(
            weights, jnp.take_along_axis(xc, order, axis=-1), weights, s
        )  # (..., n) ascending
        values = jnp.flip(values, axis=-1) if descending else values
        return values.astype(output_dtype(x))
    anchors = sort_rows(z, descending)  # (..., n)

    def rows(anchor_block: Array) -> Array:  # (..., c) -> (..., c)
        p = soft_index(_scores(anchor_block, z), s, mode)  # (..., c, n)
        if not gated_grad:
            p = jax.lax.stop_gradient(p)
        return convex_combination(p, xc)  # (..., c)

    out = map_row_blocks(rows, (anchors,), block_rows(x.shape[:-1], x.shape[-1]))  # (..., n)
    return out.astype(output_dtype(x))


def rank(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    descending: bool = False,
    standardize: bool = True,
) -> Array:
    """Soft ranks `(..., n)` in [1, n] (1 = smallest, or largest if `descending`):
    `rank_j = Σ_r r · proj_r(-|z_j - a_r| / s)`, a block of inputs at a time."""
    if mode == "hard":
        return hard_rank(x, descending)
    xc, s = prepare(x, softness)
    n = x.shape[-1]
    z = maybe_standardize(xc, standardize)  # (..., n)
    if mode == "smooth":
        points = sort_rows(z)  # (..., n) ascending
        positions = jnp.arange(1, n + 1, dtype=xc.dtype)  # (n,)
        if descending:
            positions = n + 1 - positions
        positions = jnp.broadcast_to(positions, points.shape)
        return kernel_average(points, positions, z, s).astype(output_dtype(x))
    anchors = sort_rows(z, descending)  # (..., n)
    positions = jnp.arange(1, n + 1, dtype=xc.dtype)  # (n,)

    def rows(z_block: Array) -> Array:  # (..., c) -> (..., c)
        p = soft_index(_scores(z_block, anchors), s, mode)  # (..., c, n)
        return weighted_sum(p, positions)  # (..., c)

    out = map_row_blocks(rows, (z,), block_rows(x.shape[:-1], n))  # (..., n)
    return out.astype(output_dtype(x))


def argmax(
    x: Array, softness: float | Array = 0.1, mode: str = "smooth", standardize: bool = True
) -> Array:
    """Soft argmax `(..., n)` = `proj(z / s)` (the first SoftSort row, with no n × n matrix)."""
    if mode == "hard":
        return hard_argmax(x)
    xc, s = prepare(x, softness)
    z = maybe_standardize(xc, standardize)  # (..., n)
    return soft_index(z, s, mode).astype(output_dtype(x))  # (..., n)


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
    """The k largest values `(..., k)`, descending, and their SoftIndex `(..., k, n)`."""
    if mode == "hard":
        return hard_top_k(x, k)
    xc, s = prepare(x, softness)
    z = maybe_standardize(xc, standardize)  # (..., n)
    anchors, _ = jax.lax.top_k(z, k)  # (..., k)
    p = soft_index(_scores(anchors, z), s, mode)  # (..., k, n)
    values = convex_combination(jax.lax.stop_gradient(p) if not gated_grad else p, xc)  # (..., k)
    dtype = output_dtype(x)
    return values.astype(dtype), p.astype(dtype)

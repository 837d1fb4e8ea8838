"""Tridiagonal solves by parallel cyclic reduction, batched along the last axis.

For the systems `T x = d` with `T = tridiag(−1, diag, −1)` (`diag ≥ 2`, so `T` is a
symmetric, diagonally dominant M-matrix, as in `smooth_sort`'s preconditioner). Level
`j` (`h = 2^j`) eliminates from every equation `i` its neighbours at distance `h` by
subtracting `k1_i = a_i / b_{i−h}` times equation `i − h` and `k2_i = c_i / b_{i+h}` times
equation `i + h`:

    a'_i = −k1_i a_{i−h},   c'_i = −k2_i c_{i+h},
    b'_i = b_i − k1_i c_{i−h} − k2_i a_{i+h},   d'_i = d_i − k1_i d_{i−h} − k2_i d_{i+h},

so that after `⌈log2 m⌉` levels every equation is decoupled: `x_i = d_i / b_i`. The
multipliers depend on `T` only: `factor` computes them once, and each `solve` is then
`⌈log2 m⌉` vectorised steps of two multiply-adds per entry, where a LAPACK `gtsv` runs
one sequential sweep per row. Every level keeps a diagonally dominant system diagonally
dominant, with positive pivots `b`, and the reduction is then stable (Heller 1976).

References: R. W. Hockney, "A fast direct solution of Poisson's equation using Fourier
analysis", J. ACM 12 (1965); D. Heller, "Some aspects of the cyclic reduction algorithm
for block tridiagonal linear systems", SIAM J. Numer. Anal. 13 (1976) (stability).
"""

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array, lax


class Factor(NamedTuple):
    """The multipliers of every level and the final pivots."""

    lower: tuple[Array, ...]  # per level (..., m): k1, the multiplier of equation i − h
    upper: tuple[Array, ...]  # per level (..., m): k2, the multiplier of equation i + h
    pivot: Array  # (..., m): b after the last level


def _from_left(v: Array, h: int, fill: float) -> Array:
    """`v_{i−h}` at `i` (`fill` where `i < h`)."""
    pad = jnp.full((*v.shape[:-1], h), fill, v.dtype)
    return jnp.concatenate([pad, v[..., :-h]], axis=-1)


def _from_right(v: Array, h: int, fill: float) -> Array:
    """`v_{i+h}` at `i` (`fill` where `i + h ≥ m`)."""
    pad = jnp.full((*v.shape[:-1], h), fill, v.dtype)
    return jnp.concatenate([v[..., h:], pad], axis=-1)


def factor(diag: Array) -> Factor:
    """Multipliers for `tridiag(−1, diag, −1)` `(..., m)`."""
    m = diag.shape[-1]
    index = jnp.arange(m)
    a = jnp.where(index > 0, -1.0, 0.0).astype(diag.dtype) * jnp.ones_like(diag)  # (..., m)
    c = jnp.where(index < m - 1, -1.0, 0.0).astype(diag.dtype) * jnp.ones_like(diag)
    b = diag
    lower, upper = [], []
    h = 1
    while h < m:
        k1 = a / _from_left(b, h, 1.0)  # (..., m), 0 where i < h (a_i = 0 there)
        k2 = c / _from_right(b, h, 1.0)
        b = b - k1 * _from_left(c, h, 0.0) - k2 * _from_right(a, h, 0.0)
        a = -k1 * _from_left(a, h, 0.0)
        c = -k2 * _from_right(c, h, 0.0)
        # each level is materialised: fused across levels, XLA:CPU would evaluate the
        # shifted copies of a level inside the next one's loops (7x slower at m = 511)
        k1, k2, a, b, c = lax.optimization_barrier((k1, k2, a, b, c))
        lower.append(k1)
        upper.append(k2)
        h *= 2
    return Factor(tuple(lower), tuple(upper), b)


def solve(fac: Factor, d: Array) -> Array:
    """`T⁻¹ d` `(..., m)` for the factored `T`."""
    d = lax.optimization_barrier(d)
    h = 1
    for k1, k2 in zip(fac.lower, fac.upper, strict=True):
        d = lax.optimization_barrier(d - k1 * _from_left(d, h, 0.0) - k2 * _from_right(d, h, 0.0))
        h *= 2
    return d / fac.pivot

"""Banded storage of the p-norm transport plans of `method="ot"` (last axis).

For the soft permutation (`n` scores onto `n` evenly spaced anchors with weights `1/n`)
the plans of the p-norm regularisers are sparse: row `i` transports onto a few anchors
around its own rank only (at n = 4096 and softness 0.1 at most 22 (`c0`), 155 (`c1`) and
361 (`c2`) of the 4096; Blondel, Seguy & Rolet 2018 show the sparsity). Such a plan is
stored as a window of `w` consecutive anchors per row, starting at
`start_i = clip(rank_i − w/2, 0, m − w)`, and every `n × m` operation of the solver and
its derivative becomes an `n × w` one: row sums as they are, column sums as a
scatter-add over the windows, column vectors read through them (`idx` `(n, w)`, the
anchor of each stored entry; `None` below stands for all `m` anchors, dense storage).

The width is a static guess from `n` and the mode (`width`); whether it sufficed is
checked after the solve (`outside_max`): the dual potentials define the plan everywhere,
and the band solution is the dense one where no entry outside the windows is positive.

Reference: M. Blondel, V. Seguy, A. Rolet, "Smooth and Sparse Optimal Transport",
AISTATS 2018, arXiv:1710.06276.
"""

import math

import jax
import jax.numpy as jnp
from jax import Array

MIN_SIZE = 1024
"""Soft permutations of at least this many entries per row are solved on a band."""
_HALF_WIDTH = {"c0": (16.0, 1.0 / 3.0), "c1": (110.0, 3.0 / 5.0), "c2": (260.0, 5.0 / 7.0)}
"""Mode → (half-width of the support at n = 4096, exponent of its growth with n): the
measured half-width at softness 0.1 (13, 86, 193 anchors; standard normal scores),
extrapolated to softness 0.2 (it grows like s^0.27, s^0.35, s^0.41), and the growth
exponent of the row problem's support with uniformly spread scores (n^(1/3), n^(3/5),
n^(5/7) for q = 2, 3, 4)."""
_MARGIN = 1.25
_QUANTUM = 64


def width(n: int, mode: str) -> int | None:
    """Static band width for a soft permutation of `n` entries, or None (dense): below
    `MIN_SIZE`, and where the band would hold a quarter of the anchors or more (the
    scatter-adds of its column sums then cost more than the dense sums save; c2 at
    n = 1024)."""
    if n < MIN_SIZE or mode not in _HALF_WIDTH:
        return None
    half, growth = _HALF_WIDTH[mode]
    w = _QUANTUM * math.ceil(2.0 * _MARGIN * half * (n / 4096.0) ** growth / _QUANTUM)
    return w if 4 * w < n else None


def windows(rank: Array, m: int, w: int) -> Array:
    """`idx` `(n, w)`: the anchors stored for each row, `w` consecutive ones centred on
    the row's rank (shifted inside `[0, m)` at both ends)."""
    start = jnp.clip(rank - w // 2, 0, m - w)  # (n,)
    return start[:, None] + jnp.arange(w, dtype=start.dtype)[None, :]  # (n, w)


def read(v: Array, idx: Array | None) -> Array:
    """Column vector `v` `(m,)` at the stored entries: `(n, w)`, or `(1, m)` when dense."""
    return v[None, :] if idx is None else v[idx]


def col_sums(a: Array, idx: Array | None, m: int) -> Array:
    """Column sums `(m,)` of a plan-shaped array `a` (`(n, w)` or `(n, m)`)."""
    if idx is None:
        return jnp.sum(a, axis=0)
    return jax.ops.segment_sum(a.reshape(-1), idx.reshape(-1), num_segments=m)


def densify(a: Array, idx: Array, m: int) -> Array:
    """`(n, m)` array with `a` `(n, w)` at the stored entries and zeros elsewhere."""
    n = a.shape[0]
    rows = jnp.arange(n)[:, None]  # (n, 1)
    return jnp.zeros((n, m), a.dtype).at[rows, idx].set(a, unique_indices=True)


def crowded(w0: Array, idx: Array, m: int) -> Array:
    """Whether the start's support (`w0 > 0` `(n, w)`) reaches into the outer eighth of a
    window on a side where the window could have extended (not at anchor 0 or m − 1):
    the solution's support is then unlikely to fit, and the solve is not worth running."""
    edge = max(1, w0.shape[1] // 8)
    left = jnp.any(w0[:, :edge] > 0, axis=1) & (idx[:, 0] > 0)  # (n,)
    right = jnp.any(w0[:, -edge:] > 0, axis=1) & (idx[:, -1] < m - 1)  # (n,)
    return jnp.any(left | right)


def outside_max(z: Array, anchors: Array, f: Array, g: Array, idx: Array) -> Array:
    """`(n,)`: the largest `f_i + g_j − (z_i − a_j)²` over the anchors outside row i's
    window (one fused pass over `n × m`, nothing stored); the plan is zero there when it
    is ≤ 0."""
    m = anchors.shape[0]
    j = jnp.arange(m, dtype=idx.dtype)[None, :]  # (1, m)
    inside = (j >= idx[:, :1]) & (j <= idx[:, -1:])  # (n, m)
    s = f[:, None] + g[None, :] - jnp.square(z[:, None] - anchors[None, :])  # (n, m)
    return jnp.max(jnp.where(inside, -jnp.inf, s), axis=1)

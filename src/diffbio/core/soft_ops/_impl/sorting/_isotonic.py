"""Isotonic regression by Pool Adjacent Violators (PAV), batched, in pure JAX.

**Problem.** For rows `s` and `w` `(..., n)`, both sorted in decreasing order, find the
non-increasing `v` (`v_1 ≥ … ≥ v_n`) that minimises `Σ_i f_i(v_i)` for the separable
convex losses of the four regularisers of the permutahedron projection:

| mode     | `f_i'(v)`                   | block value `γ(B)` (`Σ_B f_i'(γ) = 0`) | `ψ(t)` |
|----------|-----------------------------|----------------------------------------|--------|
| `c0`     | `v - s_i + w_i`             | `mean_B(s) - mean_B(w)`                | `t`    |
| `smooth` | `e^{w_i} - e^{s_i - v}`     | `logsumexp_B(s) - logsumexp_B(w)`      | `t`    |
| `c1`     | `(v - s_i)·|v - s_i| + w_i` | root of a piecewise quadratic          | `t·|t|`|
| `c2`     | `(v - s_i)³ + w_i`          | root of a depressed cubic (Cardano)    | `t³`   |

The solution is constant on blocks of consecutive positions, each at its value `γ(B)`.
`project_sorted` returns `ψ(t)` with `t = s - v`: the projection of `s` onto the
permutahedron of `w`, in the order of `s` (Blondel et al. 2020, Prop. 3).

**Algorithm.** PAV pools adjacent blocks whose values violate the order
(`γ(left) < γ(right)`) until none do. Every `f_i'` increases, so block values are Cauchy
means (the value of `A ∪ B` lies between those of `A` and `B`) and any order of pooling
reaches the same solution. Blocks are kept as records
`[start, count, centre, offset, statistics…]` whose value is `centre + offset`, in place:
the record of a block `[a, b)` sits at its first position `a` and its last `b - 1`. The
split keeps `t = (s - centre) - offset` exact for one-position blocks when `|s| ≫ |t|`.
Rows are cut into `C` chunks of `c` positions:

1. all chunks of all rows are solved at once by the stack form of PAV, one lane per
   chunk: pool the top block with the one below it while they violate, else with the
   next position while they violate, else push it. A push passes over the whole run of
   positions that follows, up to the next pair of neighbours that violate (found
   beforehand by a reverse cumulative minimum), since no position of the run can pool
   with its neighbour. A lane takes one step per pooling and one per run: few where most
   positions stay alone (small softness), about `c` where everything pools;
2. the solved chunks are joined pairwise in `log2(C)` levels. At each level every seam
   of every row pools at once, the left segment's last blocks against the right
   segment's first ones while they violate; the other blocks of both stay as they are.

With `c ≈ n^(2/3)` stage 1 takes at most `2c` vectorised steps and stage 2 adds, per
level, the longest pooling run at its seams (`O(n)` in the worst case, a few steps on
typical inputs).

**Derivative.** `project_sorted` has a custom JVP that is linear in the tangents and
uses only the block structure: implicit differentiation of `Σ_B f_i'(v) = 0` gives
`dv = Σ_B α_i ds_i - Σ_B β_i dw_i` per block (segment sums, `O(n)`), then
`dψ = ψ'(t) (ds - dv)`. JAX transposes it for reverse mode.

References: M. Blondel, O. Teboul, Q. Berthet and J. Djolonga, "Fast Differentiable
Sorting and Ranking", ICML 2020, arXiv:2002.08871; R. E. Barlow, D. J. Bartholomew,
J. M. Bremner and H. D. Brunk, "Statistical Inference under Order Restrictions" (1972),
for PAV and Cauchy means; T. F. Chan, G. H. Golub and R. J. LeVeque, "Updating formulae
and a pairwise algorithm for computing sample variances" (1979), and P. Pébay, "Formulas
for robust, one-pass parallel computation of covariances and arbitrary-order statistical
moments", Sandia report SAND2008-6212, for pooling the c2 blocks' central moments.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array, lax

MODES = ("smooth", "c0", "c1", "c2")
"""Regularisers with a block closed form."""

_START, _COUNT, _CENTRE, _OFFSET = 0, 1, 2, 3
"""Fields of a block record; mode statistics follow from index 4."""


class Blocks(NamedTuple):
    """Block structure of an isotonic solution, one entry per position `(R, n)`.

    The block holding position `i` has the value `v_i = centre + offset` (split so that
    `t` keeps its precision when `|s| ≫ |t|`); `s_dev` and `w_dev` are the log-weights of
    the smooth mode's derivative.
    """

    lo: Array  # (R, n) int32, first position of the block
    hi: Array  # (R, n) int32, one past its last position
    t: Array  # (R, n): s - v = (s - centre) - offset
    s_dev: Array  # (R, n): s - centre (smooth: s - logsumexp_B(s))
    w_dev: Array  # (R, n): w + offset (smooth: w - logsumexp_B(w))
    spread: Array | None = None  # (R, n) Σ_B t², where the records hold it (`_Mode.spread`)


class _Rows(NamedTuple):
    """Row data a block solve may read: lane `l` reads row `row[l]` of the flat arrays."""

    row: Array  # (lanes,) int32, flat offset of each lane's row in `s`
    prefix_row: Array  # (lanes,) int32, the same in the prefix arrays (rows of n + 1)
    s: Array  # (R N,) the sorted row values
    prefix_e: Array  # (R (N + 1),) prefix sums of e = s - s[row, 0]
    prefix_e2: Array  # (R (N + 1),) prefix sums of e²
    width: int  # N, positions per row


def _value(record: Array) -> Array:
    return record[..., _CENTRE] + record[..., _OFFSET]


def _take(flat: Array, index: Array) -> Array:
    return flat.at[index].get(mode="promise_in_bounds")


# --- block records, per mode ------------------------------------------------------------


class _Mode(NamedTuple):
    """How one regulariser records and pools blocks.

    - `element(s, w, pos)`: records `(..., width)` of one-position blocks.
    - `merge(left, right, rows, active)`: the record `(L, width)` of two adjacent blocks
      pooled; only the lanes where `active` `(L,)` is true are used (None: all).
    - `spread(records)`: `Σ_B t²` of each record's block `(...)`, where the record holds
      it (c2), so that the derivative needs no segment sum; `None` elsewhere.
    """

    width: int
    element: Callable[[Array, Array, Array], Array]
    merge: Callable[[Array, Array, _Rows], Array]
    spread: Callable[[Array], Array] | None = None


def _c0_element(s: Array, w: Array, pos: Array) -> Array:
    one = jnp.ones_like(s)
    # Σ (s - ref) and Σ w, with ref = s at the block start
    fields = [pos.astype(s.dtype) * one, one, s, -w, s, jnp.zeros_like(s), w]
    return jnp.stack(fields, axis=-1)  # (..., 7)


def _c0_merge(left: Array, right: Array, rows: _Rows, active: Array | None = None) -> Array:
    ref = left[:, 4]  # (L,)
    count = left[:, _COUNT] + right[:, _COUNT]
    e_sum = left[:, 5] + right[:, 5] + right[:, _COUNT] * (right[:, 4] - ref)
    w_sum = left[:, 6] + right[:, 6]
    centre = ref + e_sum / count  # mean of s
    fields = [left[:, _START], count, centre, -w_sum / count, ref, e_sum, w_sum]
    return jnp.stack(fields, axis=-1)  # (L, 7)


def _smooth_element(s: Array, w: Array, pos: Array) -> Array:
    one = jnp.ones_like(s)
    return jnp.stack([pos.astype(s.dtype) * one, one, s, -w], axis=-1)  # (..., 4)


def _smooth_merge(left: Array, right: Array, rows: _Rows, active: Array | None = None) -> Array:
    # centre = logsumexp_B(s), offset = -logsumexp_B(w)
    centre = jnp.logaddexp(left[:, _CENTRE], right[:, _CENTRE])  # (L,)
    offset = -jnp.logaddexp(-left[:, _OFFSET], -right[:, _OFFSET])
    count = left[:, _COUNT] + right[:, _COUNT]
    return jnp.stack([left[:, _START], count, centre, offset], axis=-1)  # (L, 4)


def _c1_element(s: Array, w: Array, pos: Array) -> Array:
    one = jnp.ones_like(s)
    zero = jnp.zeros_like(s)
    offset = -jnp.sign(w) * jnp.sqrt(jnp.abs(w))  # (γ - s)|γ - s| = -w
    # moments of e = s - centre (centre = s at the block start) and the last e
    fields = [pos.astype(s.dtype) * one, one, s, offset, w, zero, zero, zero]
    return jnp.stack(fields, axis=-1)  # (..., 8)


def _c1_pool(left: Array, right: Array) -> tuple[tuple[Array, ...], Array, Array]:
    """`(fields, closed, split)`: the pooled c1 record's fields but its offset, the
    offset where it has a closed form, and where it has none."""
    centre = left[:, _CENTRE]  # (L,): s at the block start
    d = right[:, _CENTRE] - centre
    n_r, m1_r = right[:, _COUNT], right[:, 5]
    count = left[:, _COUNT] + n_r
    w_sum = left[:, 4] + right[:, 4]
    m1 = left[:, 5] + m1_r + n_r * d
    m2 = left[:, 6] + right[:, 6] + d * (2.0 * m1_r + n_r * d)
    last = right[:, 7] + d  # e of the last position, the smallest
    mean = m1 / count
    spread = jnp.maximum(m2 - m1 * mean, 0.0)  # Σ (e - mean)²
    # all e ≥ u: Σ (u - e)² = W, smaller root; all e ≤ u (e ≤ 0): Σ (u - e)² = -W, larger
    below = mean - jnp.sqrt(jnp.maximum(w_sum - spread, 0.0) / count)
    above = mean + jnp.sqrt(jnp.maximum(-w_sum - spread, 0.0) / count)
    below_ok = (w_sum >= spread) & (below <= last)
    above_ok = (-w_sum >= spread) & (above >= 0.0)
    closed = jnp.where(below_ok, below, above)
    fields = (left[:, _START], count, centre, w_sum, m1, m2, last)
    return fields, closed, ~(below_ok | above_ok)


def _c1_record(fields: tuple, offset: Array) -> Array:
    start, count, centre, w_sum, m1, m2, last = fields
    return jnp.stack([start, count, centre, offset, w_sum, m1, m2, last], axis=-1)  # (L, 8)


def _c1_merge(left: Array, right: Array, rows: _Rows, active: Array | None = None) -> Array:
    """Pool two c1 blocks. Where the root lies below (or above) every `s` of the block,
    `Σ (u - e)² = ±W` has a closed form in the block's moments; otherwise the root is
    searched for along the row (`_c1_block_root`), only when an `active` lane needs it.
    The whole merge sits in each branch, so that the loop carries only the records."""

    def closed(left: Array, right: Array) -> Array:
        fields, offset, _ = _c1_pool(left, right)
        return _c1_record(fields, offset)

    def searched(left: Array, right: Array) -> Array:
        fields, offset, split = _c1_pool(left, right)
        start, count, centre, w_sum = fields[:4]
        start = start.astype(jnp.int32)
        root = _c1_block_root(rows, start, start + count.astype(jnp.int32), w_sum)
        e_start = centre - _take(rows.s, rows.row)  # s[start] - s[row, 0]
        return _c1_record(fields, jnp.where(split, root - e_start, offset))

    split = _c1_pool(left, right)[2]
    if active is not None:
        split = split & active
    return lax.cond(jnp.any(split), searched, closed, left, right)


def _c1_block_root(rows: _Rows, start: Array, stop: Array, w_sum: Array) -> Array:
    """Root `u` (relative to `s[row, 0]`) of `Σ_{[start, stop)} (u - e)|u - e| + W = 0`.

    `e = s - s[row, 0]` decreases along the block. The root lies in `[e_k, e_{k-1})` for
    the first `k` with `F(e_k) ≤ 0` (binary search), where `F` is a quadratic whose
    coefficients come from prefix sums over `[start, k)` (`e ≥ u`) and `[k, stop)`.
    """

    def moments(a: Array, b: Array) -> tuple[Array, Array, Array]:  # over [a, b)
        pa, pb = rows.prefix_row + a, rows.prefix_row + b
        count = (b - a).astype(w_sum.dtype)
        e_sum = _take(rows.prefix_e, pb) - _take(rows.prefix_e, pa)
        e2_sum = _take(rows.prefix_e2, pb) - _take(rows.prefix_e2, pa)
        return count, e_sum, e2_sum

    base = _take(rows.s, rows.row)  # (L,)

    def e_at(k: Array) -> Array:
        return _take(rows.s, rows.row + k) - base

    def coefficients(k: Array) -> tuple[Array, Array, Array]:
        n_up, e_up, sq_up = moments(start, k)  # e ≥ u
        n_low, e_low, sq_low = moments(k, stop)  # e ≤ u
        return n_low - n_up, -2.0 * (e_low - e_up), sq_low - sq_up + w_sum

    def below_root(k: Array) -> Array:  # F(e_k) ≤ 0
        quad, lin, const = coefficients(k)
        u = e_at(k)
        return (quad * u + lin) * u + const <= 0

    k = _bisect(start - 1, stop, below_root, rows.width.bit_length() + 1)
    root = _increasing_quadratic_root(*coefficients(k))
    upper = jnp.where(k > start, e_at(jnp.maximum(k - 1, start)), jnp.inf)
    lower = jnp.where(k < stop, e_at(jnp.minimum(k, stop - 1)), -jnp.inf)
    return jnp.clip(root, lower, upper)


def _increasing_quadratic_root(quad: Array, lin: Array, const: Array) -> Array:
    """Root of `quad·u² + lin·u + const` where it increases (`2·quad·u + lin ≥ 0`),
    in the form without cancellation."""
    disc = jnp.sqrt(jnp.maximum(lin * lin - 4.0 * quad * const, 0.0))
    tiny = jnp.finfo(lin.dtype).tiny
    via_const = -2.0 * const / jnp.maximum(lin + disc, tiny)
    safe_quad = jnp.where(quad == 0, 1.0, quad)
    via_quad = (disc - lin) / (2.0 * safe_quad)
    return jnp.where((lin > 0) | (quad == 0), via_const, via_quad)


def _bisect(lo: Array, hi: Array, pred: Callable[[Array], Array], steps: int) -> Array:
    """Smallest `i` in `(lo, hi)` with `pred(i)` (false below, true from there on), else
    `hi`; `steps ≥ log2(hi - lo)`. `pred` is only called at positions `≥ max(lo, 0)`."""

    def step(state: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        taken, lo, hi = state
        probe = jnp.maximum((lo + hi) // 2, 0)
        live = hi - lo > 1
        hit = pred(jnp.minimum(probe, hi - 1))
        return taken + 1, jnp.where(live & ~hit, probe, lo), jnp.where(live & hit, probe, hi)

    def unfinished(state: tuple[Array, Array, Array]) -> Array:
        taken, lo, hi = state
        return (taken < steps) & jnp.any(hi - lo > 1)

    # stops once every interval is closed: about log2 of the longest block, not of n
    return lax.while_loop(unfinished, step, (jnp.int32(0), lo, hi))[2]


def _c2_element(s: Array, w: Array, pos: Array) -> Array:
    one = jnp.ones_like(s)
    zero = jnp.zeros_like(s)
    # (γ - s)³ = -w; the block's mean of s (its centre) and central moments M2, M3
    fields = [pos.astype(s.dtype) * one, one, s, -jnp.cbrt(w), zero, zero, w]
    return jnp.stack(fields, axis=-1)  # (..., 7)


def _c2_merge(left: Array, right: Array, rows: _Rows, active: Array | None = None) -> Array:
    # central moments of the pooled block from its halves' (Chan, Golub and LeVeque)
    n_l, n_r = left[:, _COUNT], right[:, _COUNT]  # (L,)
    m2_l, m2_r = left[:, 4], right[:, 4]
    count = n_l + n_r
    share = n_r / count
    delta = right[:, _CENTRE] - left[:, _CENTRE]
    mean = left[:, _CENTRE] + delta * share
    cross = delta * n_l * share  # δ · n_l n_r / n
    m2 = m2_l + m2_r + delta * cross
    m3 = (
        left[:, 5]
        + right[:, 5]
        + delta * delta * cross * ((n_l - n_r) / count)
        + 3.0 * delta * (n_l * m2_r - n_r * m2_l) / count
    )
    w_sum = left[:, 6] + right[:, 6]
    # Σ (u - (s - mean))³ + W = count·u³ + 3·M2·u - M3 + W
    u = depressed_cubic_root(3.0 * m2 / count, (w_sum - m3) / count)
    fields = [left[:, _START], count, mean, u, m2, m3, w_sum]
    return jnp.stack(fields, axis=-1)  # (L, 7)


def _c2_spread(records: Array) -> Array:
    # t = (s − mean) − u on the block: Σ t² = M2 + count·u²
    offset = records[..., _OFFSET]
    return records[..., 4] + records[..., _COUNT] * offset * offset


def depressed_cubic_root(p: Array, q: Array) -> Array:
    """The real root of `u³ + p·u + q = 0` for `p ≥ 0`, elementwise.

    Cardano's hyperbolic form `u = -sign(q)·2·sqrt(a)·sinh(asinh(r) / 3)` with `a = p / 3`
    and `r = |q| / (2 a^{3/2})`, rewritten without hyperbolic functions and without
    cancellation: with `k = (r + sqrt(r² + 1))^{2/3}`, `sinh(asinh(r) / 3) = r·k / (k² + k + 1)`
    (from `k³ - 1 = 2 r (r + sqrt(r² + 1))`), so `u = -sign(q)·(|q| / a)·k / (k² + k + 1)`:
    one square root, one logarithm and one exponential. Where `r` is so large that `p·u`
    is below the rounding of `u³` (or `p = 0`), `u = -cbrt(q)`, by `exp(log|q| / 3)` and one
    Newton step. Relative error about 16 ulps in float32 and 30 in float64, from
    `p/q` ratios of 1e-60 to 1e60.
    """
    eps = jnp.finfo(q.dtype).eps
    limit = 0.5 * (3.0 / eps) ** 1.5  # r beyond it: p·|u| < eps·|u|³
    a = jnp.maximum(p / 3.0, 0.0)
    magnitude = jnp.abs(q)
    r = magnitude / (2.0 * a) / jnp.sqrt(a)  # inf or nan where a = 0
    cardano = (a > 0) & (r < limit)
    r = jnp.where(cardano, r, 0.0)
    safe = jnp.where(magnitude > 0, magnitude, 1.0)
    # one logarithm and one exponential for both branches: k = (r + sqrt(r² + 1))^{2/3}
    # or the first estimate of |q|^{1/3}
    base = jnp.where(cardano, r + jnp.sqrt(r * r + 1.0), safe)
    power = jnp.exp(jnp.log(base) * jnp.where(cardano, 2.0 / 3.0, 1.0 / 3.0))
    hyperbolic = magnitude / jnp.where(cardano, a, 1.0) * power / (power * power + power + 1.0)
    cube = jnp.where(magnitude > 0, (2.0 * power + safe / (power * power)) / 3.0, 0.0)
    return -jnp.sign(q) * jnp.where(cardano, hyperbolic, cube)


_MODES = {
    "c0": _Mode(7, _c0_element, _c0_merge),
    "smooth": _Mode(4, _smooth_element, _smooth_merge),
    "c1": _Mode(8, _c1_element, _c1_merge),
    "c2": _Mode(7, _c2_element, _c2_merge, _c2_spread),
}


# --- pooling runs, in place ----------------------------------------------------------------
#
# Every position starts as a one-position block whose record sits at that position. A
# block `[a, b)` keeps its record at its first position `a` (read when a stack to its left
# takes it in as `incoming`) and at its last position `b - 1` (read when the block after
# it pools backwards). A position that stops being a block start is marked dead
# (`_START = -1`), so the final blocks are the positions whose record names them as
# their own start.


def _pool_runs(
    mode: _Mode,
    records: Array,
    top: Array,
    bounds: tuple[Array, Array, Array, Array],
    rows: _Rows,
    jump: Array | None = None,
) -> Array:
    """Stack PAV on every lane at once, in place.

    Lane `l` owns the flat positions `[lo, hi)` of `records` `(P, width)`. Its stack is
    the blocks from `lo` up to its `top` block `[a, b)` `(L, width)`, held in registers;
    the blocks from `b` on are still to come. A step pools the top with the block below
    it where they violate the order (`back`), else with the incoming block at `b`
    (`ahead`); else, with `jump` (the flat position `(P,)` of the next adjacent violation
    among the one-position blocks), it pushes the top and moves to the one-position block
    just before that violation, passing over a run of positions that cannot pool. Returns
    the records with every lane's blocks written.
    """
    a, b, lo, hi = bounds
    lanes = a.shape[0]
    # dropped writes, each to its own index past the end (the indices stay unique)
    beyond = records.shape[0] + jnp.arange(lanes, dtype=jnp.int32)  # (L,)

    def step(state: tuple) -> tuple:
        records, top, a, b, _ = state
        prev = _take(records, jnp.maximum(a - 1, lo))  # (L, width): ends at a - 1
        incoming = _take(records, jnp.minimum(b, hi - 1))  # (L, width): starts at b
        if jump is None:
            target = b
            fresh = top
        else:  # the run of non-violating one-position blocks from b ends before `target`
            target = jnp.where(b + 1 < hi, _take(jump, jnp.minimum(b + 1, hi - 1)), hi)
            fresh = _take(records, target - 1)
        (prev, incoming, fresh), records = lax.optimization_barrier(
            ((prev, incoming, fresh), records)
        )  # read before the write below
        back = (a > lo) & (_value(prev) < _value(top))  # (L,)
        ahead = ~back & (b < hi) & (_value(top) < _value(incoming))
        pool = back | ahead
        push = ~pool & (b < hi) if jump is not None else jnp.zeros_like(pool)
        pooled = mode.merge(
            jnp.where(back[:, None], prev, top), jnp.where(back[:, None], top, incoming), rows, pool
        )
        # push: the top's record at its start and end; pool: the start that stops being one
        dead = top.at[:, _START].set(-1.0)
        head = jnp.where(push | back, a, jnp.where(ahead, b, beyond))
        tail = jnp.where(push & (b - 1 > a), b - 1, beyond + lanes)
        written = jnp.where(push[:, None], top, dead)
        records = records.at[jnp.concatenate([head, tail])].set(
            jnp.concatenate([written, top]), mode="drop", unique_indices=True
        )
        top = jnp.where(pool[:, None], pooled, jnp.where(push[:, None], fresh, top))
        a = jnp.where(back, a - prev[:, _COUNT].astype(jnp.int32), jnp.where(push, target - 1, a))
        b = jnp.where(ahead, b + incoming[:, _COUNT].astype(jnp.int32), jnp.where(push, target, b))
        return records, top, a, b, jnp.any(pool | push)

    state = (records, top, a, b, jnp.asarray(True))
    records, top, a, b, _ = lax.while_loop(lambda st: st[-1], step, state)
    tail = jnp.where(b - 1 > a, b - 1, beyond)
    return records.at[jnp.concatenate([a, tail])].set(
        jnp.concatenate([top, top]), mode="drop", unique_indices=True
    )


def _solve_chunks(mode: _Mode, records: Array, chunk: int, rows: _Rows) -> Array:
    """Stage 1: PAV on every chunk of `chunk` positions of the flat `records` `(P, width)`
    (one-position blocks), one lane per chunk."""
    lanes = records.shape[0] // chunk
    values = _value(records).reshape(lanes, chunk)  # (lanes, c)
    local = jnp.arange(chunk, dtype=jnp.int32)
    violates = jnp.concatenate(
        [jnp.zeros((lanes, 1), bool), values[:, :-1] < values[:, 1:]], axis=1
    )  # (lanes, c): position k pools with k - 1 if both stay alone
    following = lax.cummin(jnp.where(violates, local, chunk), axis=1, reverse=True)
    lo = jnp.arange(lanes, dtype=jnp.int32) * chunk  # (lanes,)
    jump = (following + lo[:, None]).reshape(-1)  # (P,): the next violation at or after
    hi = lo + chunk
    first = jump[lo + 1] if chunk > 1 else hi  # (lanes,): the first top ends before it
    top = _take(records, first - 1)
    return _pool_runs(mode, records, top, (first - 1, first, lo, hi), rows, jump)


def _join_chunks(
    mode: _Mode, records: Array, n_rows: int, width: int, chunk: int, rows: Callable
) -> Array:
    """Stage 2: join solved segments pairwise, `log2(C)` levels; at each level every seam
    of every row pools at once (the left segment's last blocks against the right's first).
    `rows(k)` gives the row data for `k` seams per row."""
    span = chunk
    row_start = jnp.arange(n_rows, dtype=jnp.int32)[:, None] * width  # (R, 1)
    while span < width:
        seams = jnp.arange(span, width, 2 * span, dtype=jnp.int32)  # (K,)
        k = seams.shape[0]
        seam = (row_start + seams).reshape(-1)  # (R K,)
        lo = seam - span
        hi = row_start + jnp.minimum(seams + span, width)
        top = _take(records, seam - 1)  # the left segment's last block
        a = seam - top[:, _COUNT].astype(jnp.int32)
        records = _pool_runs(mode, records, top, (a, seam, lo, hi.reshape(-1)), rows(k))
        span *= 2
    return records


# --- the solver ----------------------------------------------------------------------------


def _chunk_size(n: int) -> int:
    """Positions per chunk: the power of two nearest `n^(2/3)` (at least 8, at most `n`).

    Stage 1 costs at most `2c` steps over `n / c` lanes per row, where everything pools
    (large softness); longer chunks save lanes and levels, shorter ones steps. Measured on
    CPU (B = 32, softness 0.1 to 10), no size wins everywhere: against this one, chunks
    twice as long were up to 25% faster at n = 32768 and up to 18% slower at n = 4096.
    """
    exponent = round(2.0 * math.log2(max(n, 1)) / 3.0)
    return min(max(8, 1 << exponent), max(n, 1))


def _row_data(s: Array) -> _Rows:
    """Prefix sums for the c1 block solve, without lanes yet (`_lanes` assigns them)."""
    n_rows, width = s.shape
    e = s - s[:, :1]  # (R, N)
    zero = jnp.zeros((n_rows, 1), s.dtype)
    prefix_e = jnp.concatenate([zero, jnp.cumsum(e, axis=-1)], axis=-1)  # (R, N + 1)
    prefix_e2 = jnp.concatenate([zero, jnp.cumsum(e * e, axis=-1)], axis=-1)  # (R, N + 1)
    return _Rows(None, None, s.reshape(-1), prefix_e.reshape(-1), prefix_e2.reshape(-1), width)


def _no_rows(s: Array) -> _Rows:
    """`_Rows` for modes whose merges read no row data (lanes assigned by `_lanes`)."""
    empty = jnp.zeros((1,), s.dtype)
    return _Rows(None, None, empty, empty, empty, s.shape[1])


def _lanes(rows: _Rows, n_rows: int, lanes_per_row: int) -> _Rows:
    """`rows` read by `lanes_per_row` consecutive lanes per row."""
    row = jnp.repeat(jnp.arange(n_rows, dtype=jnp.int32), lanes_per_row)  # (lanes,)
    return rows._replace(row=row * rows.width, prefix_row=row * (rows.width + 1))


def solve_blocks(s: Array, w: Array, mode: str) -> Blocks:
    """Isotonic (non-increasing) solution of rows `s`, `w` `(R, n)` sorted decreasingly.

    Not differentiable by itself (it has integer outputs); `project_sorted` wraps it.
    """
    rules = _MODES[mode]
    n_rows, n = s.shape
    chunk = _chunk_size(n)
    width = -(-n // chunk) * chunk
    pos = jnp.arange(width, dtype=jnp.int32)  # (N,)
    if width > n:  # padding at the end never pools: its value is -inf
        s = jnp.pad(s, ((0, 0), (0, width - n)), mode="edge")
        w = jnp.pad(w, ((0, 0), (0, width - n)))
    elements = rules.element(s, w, pos)  # (R, N, width)
    elements = elements.at[:, n:, _CENTRE].set(-jnp.inf)
    record_width = elements.shape[-1]
    row_data = _row_data(s) if mode == "c1" else _no_rows(s)

    def rows(lanes_per_row: int) -> _Rows:
        return _lanes(row_data, n_rows, lanes_per_row)

    records = elements.reshape(n_rows * width, record_width)
    records = _solve_chunks(rules, records, chunk, rows(width // chunk))
    records = _join_chunks(rules, records, n_rows, width, chunk, rows)
    return _expand(records.reshape(n_rows, width, record_width), s[:, :n], w[:, :n], rules)


def _expand(records: Array, s: Array, w: Array, rules: _Mode) -> Blocks:
    """Per-position block data `(R, n)` from the records `(R, N, width)` left in place by
    the solve (a block's record at its first position) and the rows `s`, `w` `(R, n)`."""
    n = s.shape[-1]
    local = jnp.arange(n, dtype=jnp.int32)  # (n,)
    starts = records[:, :n, _START] == local.astype(records.dtype)  # (R, n)
    lo = lax.cummax(jnp.where(starts, local, 0), axis=1)  # (R, n): start of each block
    own = jnp.take_along_axis(records, lo[..., None], axis=1)  # (R, n, width)
    hi = lo + own[..., _COUNT].astype(jnp.int32)
    s_dev = s - own[..., _CENTRE]  # (R, n)
    offset = own[..., _OFFSET]
    spread = None if rules.spread is None else rules.spread(own)  # (R, n)
    return Blocks(lo, hi, s_dev - offset, s_dev, w + offset, spread)


# --- the projection and its derivative ------------------------------------------------


def _output(mode: str, t: Array) -> Array:
    """`ψ(t) = ∇R*(t)`: `t` (smooth, c0), `t|t|` (c1), `t³` (c2)."""
    if mode == "c1":
        return t * jnp.abs(t)
    if mode == "c2":
        return t * t * t
    return t


def _output_slope(mode: str, t: Array) -> Array:
    """`ψ'(t)`."""
    if mode == "c1":
        return 2.0 * jnp.abs(t)
    if mode == "c2":
        return 3.0 * t * t
    return jnp.ones_like(t)


def _block_sum(x: Array, blocks: Blocks) -> Array:
    """Sum of `x` `(R, n)` over each position's block, broadcast back to `(R, n)`."""
    rows, n = x.shape
    ids = (blocks.lo + jnp.arange(rows, dtype=jnp.int32)[:, None] * n).reshape(-1)  # (R n,)
    sums = jax.ops.segment_sum(x.reshape(-1), ids, num_segments=rows * n, indices_are_sorted=True)
    return sums[ids].reshape(rows, n)  # (R, n)


def _tangent_weights(
    mode: str, s: Array, w: Array, t: Array, blocks: Blocks
) -> tuple[Array, Array]:
    """`(α, β)` `(R, n)` with `dv = Σ_B α ds - Σ_B β dw` on every block `B`.

    Implicit differentiation of `Σ_B f_i'(v) = 0`: `α = κ / Σ_B κ` and `β = ∂f'/∂w / Σ_B κ`
    with the curvature `κ_i = ∂f_i'/∂v` (`1` for c0, `e^{s_i - v}` for smooth, `2|t_i|`
    for c1, `3 t_i²` for c2). Blocks with `Σ_B κ = 0` (c1/c2 blocks where every `t = 0`)
    take the block mean for `ds` and no `dw` term.
    """
    if mode == "smooth":  # κ = e^{s - v}; Σ_B κ = e^{lse_B(s) - v} and ∂f'/∂w = e^{w}
        return jnp.exp(blocks.s_dev), jnp.exp(blocks.w_dev)
    size = (blocks.hi - blocks.lo).astype(t.dtype)  # (R, n)
    if mode == "c0":
        return 1.0 / size, 1.0 / size
    curvature = _output_slope(mode, t)  # (R, n): ψ'(t) = κ for the p-norm losses
    if blocks.spread is not None:  # c2: Σ_B 3 t² from the block's moments, no segment sum
        total = 3.0 * blocks.spread
    else:
        total = _block_sum(curvature, blocks)  # (R, n)
    flat = total <= 0
    safe_total = jnp.where(flat, 1.0, total)
    alpha = jnp.where(flat, 1.0 / size, curvature / safe_total)
    beta = jnp.where(flat, 0.0, 1.0 / safe_total)
    return alpha, beta


def project_sorted(s: Array, w: Array, mode: str) -> Array:
    """`ψ(s - v)` `(..., n)` for the isotonic solution `v` of `s`, `w` (both sorted
    decreasingly along the last axis): the projection of `s` onto the permutahedron of `w`
    (Blondel et al. 2020), in the order of `s`.

    **Arguments:**

    - `s`, `w`: arrays `(..., n)` of one float dtype, non-increasing along the last axis.
    - `mode`: `"smooth"`, `"c0"`, `"c1"` or `"c2"` (see the module table).

    **Returns:**

    Array `(..., n)`. Differentiable in `s` and `w` (custom JVP, forward and reverse mode).
    """
    if mode not in _MODES:
        raise ValueError(f"Invalid mode {mode!r}; expected one of {MODES}")
    shape = s.shape
    n = shape[-1]
    s2 = s.reshape(-1, n)  # (R, n)
    w2 = jnp.broadcast_to(w, shape).reshape(-1, n)  # (R, n)
    return _project(s2, w2, mode).reshape(shape)


def _project_primal(s: Array, w: Array, mode: str) -> tuple[Array, Array, Blocks]:
    # Materialise the inputs once: `t = (s - centre) - offset` cancels exactly only if the
    # same rounded `s` enters the records and the difference (no fused multiply-add).
    s, w = lax.optimization_barrier((lax.stop_gradient(s), lax.stop_gradient(w)))
    blocks = solve_blocks(s, w, mode)
    return _output(mode, blocks.t), blocks.t, blocks


def _projection(s: Array, w: Array, mode: str) -> Array:
    return _project_primal(s, w, mode)[0]


_project = jax.custom_jvp(_projection, nondiff_argnums=(2,))


@_project.defjvp
def _project_jvp(
    mode: str, primals: tuple[Array, Array], tangents: tuple[Array, Array]
) -> tuple[Array, Array]:
    s, w = primals
    ds, dw = tangents
    out, t, blocks = _project_primal(s, w, mode)
    alpha, beta = _tangent_weights(mode, s, w, t, blocks)  # (R, n) each
    dv = _block_sum(alpha * ds - beta * dw, blocks)  # (R, n)
    return out, _output_slope(mode, t) * (ds - dv)

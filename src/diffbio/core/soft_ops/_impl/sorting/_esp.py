"""Log-ratios of elementary symmetric polynomials, `log(e_k / e_{k−1})` of `exp(u)`.

For `t_i = exp(u_i)`, `i = 1 … n`, the elementary symmetric polynomials are the
coefficients of `Π_i (1 + t_i x) = Σ_k e_k x^k`; `τ log e_k(exp(w/τ))` is the
log-sum-exp over all k-subsets of `Σ_{i ∈ S} w_i`, a C∞ relaxation of the sum of the k
largest `w` (the bounds of `smooth_sort`). This module returns the first differences
`ρ_k = log e_k − log e_{k−1}`, `k = 1 … n` (the bounds are `τ cumsum(ρ)`): they are
what the `smooth_sort` dual needs (second differences of the bounds), and unlike
`log e_k`, which grows like `k · max u`, they are O(max u) numbers that keep float32
precision.

**Values.** The recurrence `e_k ← e_k + t_j e_{k−1}` adds the inputs one at a time,
O(n²) in total. It runs in the linear domain on mantissas `E_k = e_k / exp(L_k)`, with
the scales stored as differences `D_k = L_k − L_{k−1}`, themselves kept as offsets
`D_k − u_k` from the inputs (so that `ρ − u` keeps the precision of an O(1) number).
Inputs are added in decreasing order, `R` at a time; before each block the mantissas
are renormalised to 1 (`D_k += log E_k − log E_{k−1}`). Then, with
`c_k = exp(u_ref − D_k)` (`u_ref` the block's first input) and `ε_j` the elementary
symmetric polynomials of the block's `exp(u − u_ref) ≤ 1` (an R × R recurrence), the
`R` steps on an entry `k` already present add up to one banded sum,

    E_k ← Σ_{j=0…R} ε_j · c_k c_{k−1} ⋯ c_{k−j+1},

a single vectorised pass per block instead of `R` dependent ones. The `R` entries the
block switches on (`k = r + 1 … r + R`) follow the step-by-step recurrence on a window
of `2R + 1` entries (entry `r` after `s` steps depends on entries `r − s … r` only).
This is safe in float32:

- an entry `k ≤ r` (already present after `r` inputs) has `e_k / e_{k−1} ≥
  t_r (r − k + 1) / k`, so `c_k ≤ k`;
- an entry switched on inside the block starts with scale `D_k = u_k`, i.e. mantissa
  equal to its left neighbour's, and is multiplied by `exp(u_j − u_k) ≤ 1` afterwards;
- over `R` inputs a mantissa grows by at most `C(n + R, R)` (≤ 10²⁵ for n ≤ 4096 and
  R = 8), far from overflow, and never falls below 1.

**Derivatives.** `∂ log e_k / ∂u_i = π_{k,i}`, the probability that `i` belongs to a
k-subset drawn with weights `Π_{i∈S} t_i` (conditional Poisson sampling), and
`1 − π_{k,i} = e_k^{(−i)} / e_k` gives

    π_{k,i} = a_{k,i} (1 − π_{k−1,i}),   a_{k,i} = exp(u_i − ρ_k),   π_{0,i} = 0,  π_{n,i} = 1.

Run forward in `k` this recurrence multiplies errors by `a_{k,i}`, run backward
(`1 − π_{k−1} = π_k / a_k`) by `1 / a_{k,i}`; as `ρ` decreases in `k`, each input `i`
has a prefix of `k` where `a ≤ 1` and a suffix where `a ≥ 1`, and each side is run in
its stable direction: two scans over `k` vectorised over `i`, O(n²) elementwise work
with no stored intermediate (memory O(n) per row). The side is decided, and `a` formed,
from `(u_i − u_k) − (ρ_k − u_k)`, exact for close inputs where the rounded `ρ_k` is not.
The tangent is `ρ̇_k = Σ_i (π_{k,i} − π_{k−1,i}) u̇_i`, the cotangent
`ū_i = Σ_k π_{k,i} (ρ̄_k − ρ̄_{k+1})`; both are linear maps evaluated by these scans
(`jax.lax.custom_linear_solve` pairs them, so forward and reverse mode each use their
own). Second derivatives are not provided: differentiating the tangent again treats
the inclusion probabilities as constants.

References: the recurrence is the standard one (e.g. R. P. Stanley, *Enumerative
Combinatorics*, Vol. 2, ch. 7); block rescaling of a recursion is the classical
remedy of scaled forward recursions (L. R. Rabiner, "A tutorial on hidden Markov
models", Proc. IEEE 1989, §V.A); the inclusion probabilities of conditional Poisson
sampling and their recurrence: X.-H. Chen, A. P. Dempster, J. S. Liu, "Weighted finite
population sampling to maximize entropy", Biometrika 81 (1994).
"""

from functools import partial

import jax
import jax.numpy as jnp
from jax import Array

BLOCK = 8
"""Inputs added between two renormalisations (and steps of `k` per scan iteration of
the derivatives)."""

_WIDE = 40.0
"""Largest fall of `ρ` within a block of the derivative scans for which the
multipliers `exp(±(u_i − ρ_k))` are formed as one exponential per input times one per
step (`exp(u_i − ρ_ref) · exp(ρ_ref − ρ_k)`, neither factor over- nor underflowing where
it matters); blocks with a larger fall take one exponential per entry."""


def _neg(dtype: jnp.dtype) -> float:
    """Stand-in for log 0 of padded inputs (keeps gradients finite): a quarter of the
    most negative float, below any input (`u = w / τ` reaches 1e30 and more in float32),
    with room for the differences taken of it."""
    return -float(jnp.finfo(dtype).max) / 4


def _shifted(padded: Array, j: int, size: int) -> Array:
    """`v_{k−j}` `(B, size)` from `padded = [0 … 0 (BLOCK zeros), v]` `(B, BLOCK + size)`:
    a static slice, which fuses into a vectorised loop (a `concatenate` per shift
    does not)."""
    return padded[:, BLOCK - j : BLOCK - j + size]


def _block_esp(ratios: Array) -> Array:
    """`ε_0 … ε_R` `(B, R + 1)`, the elementary symmetric polynomials of `ratios`
    `(B, R)` (all ≤ 1)."""
    rows = ratios.shape[0]
    esp = jnp.zeros((rows, BLOCK + 1), ratios.dtype).at[:, 0].set(1.0)
    for step in range(BLOCK):
        prev = jnp.concatenate([jnp.zeros((rows, 1), esp.dtype), esp[:, :-1]], -1)
        esp = esp + ratios[:, step : step + 1] * prev
    return esp


def _add_block(carry: tuple[Array, Array], start: Array, inputs: Array, levels: Array):
    """Add the `BLOCK` inputs `inputs[:, start : start + BLOCK]` (sorted decreasing);
    `levels` `(B, size)` is `(0, u_1, u_2, …)`."""
    mant, offset = carry  # (B, size) each: E_k and D_k − u_k, k = 0 … size − 1
    rows, size = mant.shape
    dtype = mant.dtype
    k = jnp.arange(size)
    r = start  # inputs already added
    tiny = jnp.finfo(dtype).tiny
    front = jnp.zeros((rows, BLOCK), dtype)
    present = (k >= 1) & (k <= r)
    # renormalise the present entries to mantissa 1 (the barrier keeps the logarithms
    # from being recomputed inside the fused shift)
    log_m = jax.lax.optimization_barrier(jnp.log(jnp.maximum(mant, tiny)))  # (B, size)
    log_prev = jnp.concatenate([jnp.zeros((rows, 1), dtype), log_m[:, :-1]], -1)
    offset = jnp.where(present, offset + (log_m - log_prev), offset)
    block = jax.lax.dynamic_slice_in_dim(inputs, r, BLOCK, axis=1)  # (B, R)
    ref = block[:, :1]
    gap = (ref - levels) - offset  # u_ref − D_k
    c = jnp.where(present, jnp.exp(jnp.where(gap < 80.0, gap, 80.0)), 0.0)  # (B, size), ≤ k
    # materialised twice over (the barriers): fused into its shifted uses, each
    # exponential would be recomputed once per shift, and the fused sum runs 2x slower
    c = jax.lax.optimization_barrier(c)
    c_padded = jax.lax.optimization_barrier(jnp.concatenate([front, c], -1))
    ratios = jnp.exp(block - ref)  # (B, R), ≤ 1
    esp = _block_esp(ratios)  # (B, R + 1)
    # present entries: E_k = Σ_j ε_j c_k ⋯ c_{k−j+1} (c_0 = 0 ends the products at k = 0)
    product = jnp.ones_like(c)
    total = jnp.broadcast_to(esp[:, :1], c.shape)
    for j in range(1, BLOCK + 1):
        product = product * _shifted(c_padded, j - 1, size)
        total = total + esp[:, j : j + 1] * product
    mant = jax.lax.optimization_barrier(jnp.where(k <= r, total, 0.0))  # (B, size)
    # switched-on entries: the step-by-step recurrence on entries r − R … r + R, whose
    # mantissas start at 1 where present (after the renormalisation) and 0 elsewhere
    flags = jnp.concatenate([jnp.zeros((BLOCK,), dtype), jnp.where(k <= r, 1.0, 0.0)])
    window = jax.lax.dynamic_slice_in_dim(flags, r, 2 * BLOCK + 1)  # (2R+1,)
    window = jnp.broadcast_to(window.astype(dtype), (rows, 2 * BLOCK + 1))  # (B, 2R+1)
    c_window = jax.lax.dynamic_slice_in_dim(c_padded, r, BLOCK + 1, axis=1)  # (B, R+1)
    # entry m of the block is multiplied by exp(u_step − u_m) ≤ 1 from its own step on
    # (earlier steps meet a zero left neighbour: any finite multiplier will do)
    jj = jnp.arange(BLOCK)
    d = block[:, :, None] - block[:, None, :]  # (B, step, entry)
    own = jnp.where(jj[:, None] >= jj[None, :], jnp.exp(jnp.where(d > 0.0, 0.0, d)), 0.0)
    for step in range(BLOCK):
        mult = jnp.concatenate([c_window * ratios[:, step : step + 1], own[:, step]], -1)
        prev = jnp.concatenate([jnp.zeros((rows, 1), dtype), window[:, :-1]], -1)
        window = window + mult * prev
    mant = jax.lax.dynamic_update_slice(mant, window[:, BLOCK + 1 :], (0, r + 1))
    return (mant, offset), None


def _ratios(decreasing: Array) -> Array:
    """`ρ − u` `(B, n)` of rows `u` `(B, n)` sorted decreasingly (module docstring).

    The scales are kept as offsets `D_k − u_k` from the inputs, so that the result
    carries the rounding of O(1) corrections instead of that of `|u|` (in float32 at
    `|u| ≈ 40`, `ρ` is then within 2e-6 of float64 instead of 1.3e-5); the derivatives'
    multipliers `exp(u_i − ρ_k)` need it.
    """
    rows, n = decreasing.shape
    dtype = decreasing.dtype
    blocks = -(-n // BLOCK)
    pad = blocks * BLOCK - n
    inputs = jnp.concatenate([decreasing, jnp.full((rows, pad), _neg(dtype), dtype)], -1)
    size = blocks * BLOCK + 1
    mant = jnp.zeros((rows, size), dtype).at[:, 0].set(1.0)
    levels = jnp.concatenate([jnp.zeros((rows, 1), dtype), inputs], -1)  # (B, size)
    # D_k = u_k until entry k is switched on (by input k)
    offset = jnp.zeros((rows, size), dtype)

    def body(carry, start):
        return _add_block(carry, start, inputs, levels)

    starts = jnp.arange(blocks) * BLOCK
    (mant, offset), _ = jax.lax.scan(body, (mant, offset), starts)
    log_m = jnp.log(jnp.maximum(mant, jnp.finfo(dtype).tiny))
    return (offset[:, 1:] + (log_m[:, 1:] - log_m[:, :-1]))[:, :n]


def _multipliers(u: Array, level: Array, offset: Array, sign: float):
    """Whether a block of `k` is wide, and the two ways of building the multipliers
    `min(exp(sign · (u_i − ρ_s)), 1)` `(B, n)` of its steps `s`, whose `ρ = level + offset`
    (`(B, R)` each).

    The exponent is formed as `(u_i − u_s) − δ_s`, exact for close inputs. In a narrow
    block (`separable`) it is split into `sign · (u_i − ρ_ref)` and `sign · (ρ_ref − ρ_s)`,
    one exponential per input and one per step, with `ρ_ref` the block's largest
    (`sign = 1`) or smallest `ρ`; where `ρ` falls by more than `_WIDE` within the block
    (`per_entry`), one exponential per entry. Each builder, called inside its branch of
    the block's `lax.cond`, returns `s ↦ multipliers`, which build a step's multipliers
    where they are used, so that they fuse into that step's update instead of being
    stored for the whole block."""
    j = 0 if sign > 0 else BLOCK - 1
    rho = level + offset
    wide = jnp.any(rho[:, 0] - rho[:, -1] > _WIDE)

    def per_entry():
        def mult(s: int) -> Array:
            exponent = sign * ((u - level[:, s : s + 1]) - offset[:, s : s + 1])
            return jnp.exp(jnp.minimum(exponent, 0.0))

        return mult

    def separable():
        to_ref = (u - level[:, j : j + 1]) - offset[:, j : j + 1]  # (B, n)
        per_input = jnp.exp(jnp.minimum(sign * to_ref, 0.0))
        from_ref = (level[:, j : j + 1] - level) + (offset[:, j : j + 1] - offset)  # (B, R)
        per_step = jnp.exp(sign * from_ref)  # (B, R)
        return lambda s: jnp.minimum(per_input * per_step[:, s : s + 1], 1.0)

    return wide, per_entry, separable


def _at_or_below(u: Array, level: Array, offset: Array) -> Array:
    """`u_i ≤ ρ_k`, decided as `u_i − u_k ≤ ρ_k − u_k`: exact for close inputs, where the
    rounded `ρ_k` (1e-5 off at `|u| ≈ 40` in float32, and equal to `u_k` at 1e30) cannot
    tell the sides apart. As `ρ` falls by at least `log(1 + 1/k)` per step (Newton's
    inequalities), each input's `k` at or above it form a prefix."""
    return (u - level) <= offset


def _inclusion_map(decreasing: Array, offset: Array, v: Array, transpose: bool) -> Array:
    """`Σ_k π_{k,i} v_k` `(B, n)` over `k` (`transpose`) or `Σ_i π_{k,i} v_i` `(B, n)` over
    `i`, for rows `(B, n)` sorted decreasingly and their `ρ − u` `offset` (module
    docstring: `π` by a forward scan where `ρ_k ≥ u_i`, by a backward one elsewhere)."""
    rows, n = decreasing.shape
    dtype = decreasing.dtype
    blocks = -(-n // BLOCK)
    pad = blocks * BLOCK - n
    u = decreasing

    def padded(a: Array, fill: float) -> Array:  # (B, n) -> (B, N)
        return jnp.concatenate([a, jnp.full((rows, pad), fill, dtype)], -1)

    def by_block(a: Array) -> Array:  # (B, N) -> (blocks, B, R)
        return a.reshape(rows, blocks, BLOCK).transpose(1, 0, 2)

    levels = padded(decreasing, _neg(dtype))
    offsets = padded(offset, 0.0)

    def collect(terms: Array, k_weight: Array, acc: Array):
        # transpose: accumulate v_k · π over k; else reduce π · v over i for this k
        if transpose:
            return acc + k_weight * terms, None
        return acc, jnp.sum(terms * v, -1)

    def forward(carry, xs):
        level, off, weight = xs  # (B, R) each
        wide, per_entry, separable = _multipliers(u, level, off, 1.0)

        def steps(multipliers, carry):
            mult = multipliers()
            pi, acc = carry  # (B, n) π_{k−1}, accumulator
            out = []
            for s in range(BLOCK):
                inside = _at_or_below(u, level[:, s : s + 1], off[:, s : s + 1])
                pi = jnp.where(inside, mult(s) * (1.0 - pi), pi)
                acc, y = collect(jnp.where(inside, pi, 0.0), weight[:, s : s + 1], acc)
                out.append(y)
            return (pi, acc), (None if transpose else jnp.stack(out, -1))

        return jax.lax.cond(wide, partial(steps, per_entry), partial(steps, separable), carry)

    def backward(carry, xs):
        level, off, weight = xs
        wide, per_entry, separable = _multipliers(u, level, off, -1.0)

        def steps(multipliers, carry):
            mult = multipliers()
            rest, acc = carry  # (B, n) 1 − π_k, accumulator
            out = [None] * BLOCK
            for s in reversed(range(BLOCK)):
                inside = ~_at_or_below(u, level[:, s : s + 1], off[:, s : s + 1])
                acc, out[s] = collect(jnp.where(inside, 1.0 - rest, 0.0), weight[:, s : s + 1], acc)
                rest = (1.0 - rest) * mult(s)
            return (rest, acc), (None if transpose else jnp.stack(out, -1))

        return jax.lax.cond(wide, partial(steps, per_entry), partial(steps, separable), carry)

    weights = padded(v, 0.0) if transpose else jnp.zeros((rows, blocks * BLOCK), dtype)
    xs = tuple(by_block(a) for a in (levels, offsets, weights))
    zeros = jnp.zeros_like(u)
    (_, acc_f), ys_f = jax.lax.scan(forward, (zeros, zeros), xs)
    (_, acc_b), ys_b = jax.lax.scan(backward, (zeros, zeros), xs, reverse=True)
    if transpose:
        return acc_f + acc_b
    sums = (ys_f + ys_b).transpose(1, 0, 2).reshape(rows, blocks * BLOCK)[:, :n]  # Σ_i π_k v
    return sums - jnp.concatenate([jnp.zeros((rows, 1), dtype), sums[:, :-1]], -1)


@jax.custom_jvp
def _sorted_log_ratios(decreasing: Array) -> Array:
    """`ρ` `(B, n)` of rows `(B, n)` sorted decreasingly."""
    return decreasing + _ratios(decreasing)


@_sorted_log_ratios.defjvp
def _sorted_log_ratios_jvp(primals, tangents):
    (decreasing,), (tangent,) = primals, tangents
    offset = _ratios(decreasing)

    def apply(_, v):  # ρ̇ = Σ_i (π_k − π_{k−1}) v_i
        return _inclusion_map(decreasing, offset, v, transpose=False)

    def apply_transpose(_, g):  # ū_i = Σ_k π_{k,i} (g_k − g_{k+1})
        h = g - jnp.concatenate([g[:, 1:], jnp.zeros_like(g[:, :1])], -1)
        return _inclusion_map(decreasing, offset, h, transpose=True)

    # a linear map with its own transpose: the "solve" of the identity is the map
    drho = jax.lax.custom_linear_solve(lambda v: v, tangent, apply, transpose_solve=apply_transpose)
    return decreasing + offset, drho


def log_ratios(u: Array) -> Array:
    """`log(e_k(exp(u)) / e_{k−1}(exp(u)))` for `k = 1 … n`, `(..., n)`, of rows `u`
    `(..., n)`.

    Differentiable in `u` (forward and reverse mode; the inputs are ordered by a sort
    whose permutation carries no derivative).
    """
    n = u.shape[-1]
    decreasing = -jnp.sort(-u.reshape(-1, n), axis=-1)  # (B, n)
    return _sorted_log_ratios(decreasing).reshape(u.shape)


def geometric_log_ratios(n: int, step: Array) -> Array:
    """`log(e_k / e_{k−1})` of `exp(u)` for the evenly spaced row `u = (0, a, …, (n−1)·a)`,
    `a = step > 0`, in closed form: `(..., n)` for `step` `(..., 1)` (or `(n,)` for a
    scalar), O(n) instead of the O(n²) recurrence.

    With `q = e^a`, Cauchy's q-binomial theorem `Π_{i<n} (1 + q^i x) = Σ_k q^{k(k−1)/2}
    [n, k]_q x^k` gives `e_k = q^{k(k−1)/2} [n, k]_q`, and the ratio of consecutive
    Gaussian binomials is `(q^{n−k+1} − 1) / (q^k − 1)`. With `ℓ(m) = log(1 − e^{−m a})`
    (`log(q^m − 1) = m a + ℓ(m)`, by `expm1`, exact for small and large `m a`):

        log(e_k / e_{k−1}) = (n − k)·a + ℓ(n − k + 1) − ℓ(k),   k = 1 … n.

    Differentiable in `step`.

    Reference: G. E. Andrews, *The Theory of Partitions* (1976), Thm. 3.3.
    """
    k = jnp.arange(1, n + 1, dtype=step.dtype)  # (n,)
    return (n - k) * step + geometric_excess(n, step)


def geometric_excess(n: int, step: Array) -> Array:
    """`ℓ(n − k + 1) − ℓ(k)`, `k = 1 … n`: `geometric_log_ratios` less its linear part
    `(n − k)·a`, kept apart so that a caller can scale the two separately without
    cancellation (the linear part reaches 1e9 for small softnesses, the excess is O(1))."""
    k = jnp.arange(1, n + 1, dtype=step.dtype)  # (n,)

    def ell(m: Array) -> Array:  # log(1 − e^{−m a}) ≤ 0
        return jnp.log(-jnp.expm1(-m * step))

    return ell(n - k + 1) - ell(k)

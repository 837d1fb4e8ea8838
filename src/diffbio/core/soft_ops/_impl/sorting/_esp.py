"""Log-ratios of elementary symmetric polynomials, `log(e_k / e_{k−1})` of `exp(u)`.

For `t_i = exp(u_i)`, `i = 1 … n`, the elementary symmetric polynomials are the
coefficients of `Π_i (1 + t_i x) = Σ_k e_k x^k`; `τ log e_k(exp(w/τ))` is the
log-sum-exp over all k-subsets of `Σ_{i ∈ S} w_i`, a C∞ relaxation of the sum of the k
largest `w` (the bounds of `smooth_sort`). This module returns the first differences
`ρ_k = log e_k − log e_{k−1}`, `k = 1 … n` (the bounds are `τ cumsum(ρ)`): they are
what the `smooth_sort` dual needs (second differences of the bounds), and unlike
`log e_k`, which grows like `k · max u`, they are O(max u) numbers that keep float32
precision.

**Algorithm.** The recurrence `e_k ← e_k + t_j e_{k−1}` adds the inputs one at a time,
O(n²) in total. In the log domain each step costs an `exp` and a `log1p` per entry;
here it runs in the linear domain (one multiply-add per entry) on mantissas
`E_k = e_k / exp(L_k)`, with the scales stored as differences `D_k = L_k − L_{k−1}`.
Inputs are added in decreasing order, `R` at a time; before each block the mantissas
are renormalised to 1 (`D_k += log E_k − log E_{k−1}`), which costs `n` logarithms and
`n` exponentials per block instead of per step. This is safe in float32:

- an entry `k ≤ r` (already present after `r` inputs) has `e_k / e_{k−1} ≥
  t_r (r − k + 1) / k`, so its multiplier `t_j exp(−D_k) ≤ k` within the block;
- an entry switched on inside the block (`k = r + 1 … r + R`) starts with scale
  `D_k = u_k`, i.e. mantissa equal to its left neighbour's, and is multiplied by
  `exp(u_j − u_k) ≤ 1` afterwards (computed directly, `R²/2` exponentials per block);
- over `R` steps a mantissa grows by at most `C(n + R, R)` (≤ 10²⁵ for n ≤ 4096 and
  R = 8), far from overflow, and never falls below 1.

Reverse mode differentiates through the blocks, rematerialising each block's steps,
so memory is O(n² / R) per row.

References: the recurrence is the standard one (e.g. R. P. Stanley, *Enumerative
Combinatorics*, Vol. 2, ch. 7); block rescaling of a recursion is the classical
remedy of scaled forward recursions (L. R. Rabiner, "A tutorial on hidden Markov
models", Proc. IEEE 1989, §V.A).
"""

import jax
import jax.numpy as jnp
from jax import Array

BLOCK = 8
"""Inputs added between two renormalisations."""

def _neg(dtype: jnp.dtype) -> float:
    """Stand-in for log 0 of padded inputs (keeps gradients finite): a quarter of the
    most negative float, below any input (`u = w / τ` reaches 1e30 and more in float32),
    with room for the differences taken of it."""
    return -float(jnp.finfo(dtype).max) / 4


def _block(carry: tuple[Array, Array, Array], block_start: Array, u: Array):
    """Add the `BLOCK` inputs `u[block_start : block_start + BLOCK]` (sorted decreasing)."""
    mant, scale, _ = carry  # (n+1,), (n+1,): E_k and D_k (k = 0 … n)
    size = mant.shape[0]
    k = jnp.arange(size)
    r = block_start  # inputs already added
    tiny = jnp.finfo(mant.dtype).tiny
    on = (k >= 1) & (k <= r)
    # renormalise the present entries to mantissa 1
    log_m = jnp.log(jnp.maximum(mant, tiny))  # (n+1,)
    log_prev = jnp.concatenate([jnp.zeros((1,), mant.dtype), log_m[:-1]])
    scale = jnp.where(on, scale + log_m - log_prev, scale)
    mant = jnp.where(k <= r, 1.0, 0.0).astype(mant.dtype)
    u_blk = jax.lax.dynamic_slice(u, (r,), (BLOCK,))  # (R,)
    u_ref = u_blk[0]
    # entries switched on in this block start at the scale of their own input
    new = (k > r) & (k <= r + BLOCK)
    u_k = jax.lax.dynamic_slice(
        jnp.concatenate([u, jnp.full((BLOCK,), _neg(u.dtype), u.dtype)]), (r,), (BLOCK,)
    )
    scale = jax.lax.dynamic_update_slice(scale, u_k, (r + 1,))
    # present entries: multiplier exp(u_j − u_ref) · exp(u_ref − D_k), the second ≤ k
    gap = u_ref - scale
    c = jnp.where(on, jnp.exp(jnp.where(gap < 80.0, gap, 80.0)), 0.0)  # (n+1,)
    # new entries: exp(u_j − u_k) for k ≤ j (R × R, lower triangle)
    jj = jnp.arange(BLOCK)
    # (the clamps are `where`s, not `minimum`s, so that tied inputs keep the full slope)
    d = u_blk[:, None] - u_k[None, :]  # (R step, R entry)
    tri = jnp.where(jj[:, None] >= jj[None, :], jnp.exp(jnp.where(d > 0.0, 0.0, d)), 0.0)
    for step in range(BLOCK):
        mult = c * jnp.exp(u_blk[step] - u_ref)  # (n+1,)
        mult = jax.lax.dynamic_update_slice(mult, tri[step], (r + 1,))
        mult = jnp.where(new | on, mult, 0.0)
        mant = mant + mult * jnp.concatenate([jnp.zeros((1,), mant.dtype), mant[:-1]])
    return (mant, scale, u_ref), None


def log_ratios(u: Array) -> Array:
    """`log(e_k(exp(u)) / e_{k−1}(exp(u)))` for `k = 1 … n`, `(n,)`, of one row `u` `(n,)`.

    Differentiable in `u` (the inputs are ordered by a sort whose permutation carries
    no derivative).
    """
    n = u.shape[0]
    us = -jnp.sort(-u)  # (n,) decreasing
    blocks = -(-n // BLOCK)
    pad = blocks * BLOCK - n
    us = jnp.concatenate([us, jnp.full((pad,), _neg(u.dtype), u.dtype)])  # (nb·R,)
    size = blocks * BLOCK + 1
    mant = jnp.zeros((size,), u.dtype).at[0].set(1.0)
    scale = jnp.zeros((size,), u.dtype)
    body = jax.checkpoint(lambda carry, start: _block(carry, start, us))
    starts = jnp.arange(blocks) * BLOCK
    (mant, scale, _), _ = jax.lax.scan(body, (mant, scale, us[0]), starts)
    tiny = jnp.finfo(u.dtype).tiny
    log_m = jnp.log(jnp.maximum(mant, tiny))
    ratios = scale[1:] + log_m[1:] - log_m[:-1]  # (nb·R,)
    return ratios[:n]


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

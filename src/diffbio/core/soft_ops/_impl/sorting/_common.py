"""Helpers shared by the soft ordering kernels (all along the last axis).

- `standardize` / `unstandardize`: the squashing map of SEMANTICS "standardize".
- `soft_index`: simplex projection of scores divided by the softness;
  `soft_combination`: those rows applied to values, without normalising them in smooth mode.
- `row_sums`: several sums over the last axis in one pass.
- `map_row_blocks` / `sum_row_blocks` / `fold_row_blocks`: evaluate an n-row soft
  permutation a block of rows at a time (`lax.map` or `lax.scan` over rematerialised
  blocks), so the forward and backward passes hold O(n · block) values per batch row
  instead of n².
- `sorted_positions` / `stable_argsort` / `sort_rows`: sorting along the last axis, by
  counting pairs for short rows.
- `hard_*`: the exact jnp / scipy results every kernel returns in `mode="hard"`.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array, lax

from diffbio.core.soft_ops._impl.simplex import project_simplex

STANDARDIZE_EPS = 1e-6
"""Added to the variance before the square root in `standardize`."""

_BLOCK_ELEMENTS = 1 << 21
"""Target size of one (batch, rows, n) block: 2²¹ entries (8 MiB in float32)."""
_MAX_BLOCK_ROWS = 128
_PAIRWISE_RANK_MAX = 128
"""Largest n for which `hard_rank` counts pairs instead of sorting."""
_PAIRWISE_SORT_MAX = 128
"""Largest n for which `sorted_positions`, `stable_argsort` and `sort_rows` count pairs
(about 1.5x faster than jnp.argsort at n = 64, as fast as jnp.sort at 128)."""
_MIN_BLOCK_ROWS = 8
_VARIADIC_SUM_MIN = 1 << 21
"""`row_sums` reduces larger arrays in one variadic pass (see there)."""


# --- dtypes ---------------------------------------------------------------------------


def compute_dtype(x: Array) -> jnp.dtype:
    """Float dtype the soft kernels compute in: float32 for 16-bit floats and integers."""
    if not jnp.issubdtype(x.dtype, jnp.floating):
        return jnp.result_type(float)
    return x.dtype if jnp.finfo(x.dtype).bits >= 32 else jnp.dtype(jnp.float32)


def output_dtype(x: Array) -> jnp.dtype:
    """Float dtype the kernels return: the input's own dtype when it is a float."""
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)


def prepare(x: Array, softness: float | Array) -> tuple[Array, Array]:
    """Cast `x` and `softness` to the compute dtype (differentiably)."""
    dtype = compute_dtype(x)
    return x.astype(dtype), jnp.asarray(softness).astype(dtype)


# --- standardisation -----------------------------------------------------------------


def _row_scale(x: Array) -> Array:
    """`max |x|` along the last axis `(..., 1)`, at least 1, held constant for the
    derivative (it cancels out of every quantity it scales)."""
    scale = jnp.max(jnp.abs(lax.stop_gradient(x)), axis=-1, keepdims=True)
    return jnp.where(jnp.isfinite(scale) & (scale > 1.0), scale, 1.0)


def row_center(x: Array) -> Array:
    """The entry nearest zero along the last axis `(..., 1)`, under `stop_gradient`.

    A centre for shifting a row before cancelling sums. On a constant row it equals
    every entry exactly, so `x - centre` is exactly 0 there (a mean is not: under `jit`
    the sum may be reassociated and miss the common value by an ulp, 5e21 at 6.5e28 in
    float32, which `1 / std` then magnifies). And as `|centre| <= |x_j|` for every j,
    `x - centre` loses no more precision than `x` itself: a midrange or a mean would
    wipe out the small entries of a row such as `[3, 0, -9, 1e30]` in float32.
    """
    x = lax.stop_gradient(x)
    # one unsigned minimum of (bits of |x|, sign bit): the bits of a non-negative float
    # order as the float does (NaN after inf), and of ±v the minimum takes +v. A third
    # of the time of argmin and a gather at n = 64.
    bits = 8 * x.dtype.itemsize
    unsigned = jnp.dtype(f"uint{bits}")
    magnitude = lax.bitcast_convert_type(jnp.abs(x), unsigned)  # (..., n)
    sign = lax.bitcast_convert_type(x, unsigned) >> (bits - 1)  # (..., n) 1 if negative
    key = jnp.min((magnitude << 1) | sign, axis=-1, keepdims=True)  # (..., 1)
    nearest = lax.bitcast_convert_type(key >> 1, x.dtype)  # (..., 1)
    return jnp.where((key & 1) == 1, -nearest, nearest)


def standardize_with_stats(x: Array) -> tuple[Array, Array, Array]:
    """`(z, mean, std)` with `z = sigmoid((x - mean) / std)`, `std = sqrt(var + 1e-6)`.

    The moments are taken of `x / c` with `c = max(1, max |x|)` and scaled back,
    `std = max(c · sqrt(var(x / c) + 1e-6 / c²), 1e-3)`: the same numbers, but `var`
    no longer overflows for |x| beyond 1e19 in float32 (which made every `z` equal and the
    derivatives NaN).
    """
    c = _row_scale(x)  # (..., 1)
    # the mean as an offset from an entry r of the row (the first): exactly r (and
    # x - mean exactly 0) on a constant row, which a plain mean is not under jit. Any
    # entry does; the first costs no reduction (finding the one nearest zero, as
    # `row_center` does, doubled the time of this function at n = 64).
    r = lax.stop_gradient(x[..., :1])  # (..., 1)
    mean = r + c * jnp.mean((x - r) / c, axis=-1, keepdims=True)  # (..., 1)
    var = jnp.mean(jnp.square((x - mean) / c), axis=-1, keepdims=True)  # (..., 1)
    # the floor sqrt(1e-6) is the exact value for a constant row when 1e-6 / c²
    # underflows (c > 1e16 in float32)
    # (selected by a double `where`, so that the discarded branch's infinite slope at
    # 0 never meets the derivative)
    floor = jnp.sqrt(jnp.asarray(STANDARDIZE_EPS, x.dtype))
    inner = var + STANDARDIZE_EPS / jnp.square(c)  # (..., 1)
    small = lax.stop_gradient(c * jnp.sqrt(inner)) <= floor
    std = jnp.where(small, floor, c * jnp.sqrt(jnp.where(small, 1.0, inner)))  # (..., 1)
    return jax.nn.sigmoid((x - mean) / std), mean, std  # (..., n), (..., 1), (..., 1)


def standardize(x: Array) -> Array:
    """Squash `x` into (0, 1) along the last axis: `sigmoid((x - mean) / sqrt(var + 1e-6))`.

    Softness then acts on a unit scale whatever the units of `x`; the map is strictly
    increasing, so it changes no order.
    """
    return standardize_with_stats(x)[0]


def unstandardize(z: Array, mean: Array, std: Array) -> Array:
    """Inverse of `standardize`: `logit(z) · std + mean`, with `z` kept inside (0, 1)."""
    eps = max(1e-10, 10.0 * float(jnp.finfo(z.dtype).eps))
    z = jnp.clip(z, eps, 1.0 - eps)
    return (jnp.log(z) - jnp.log1p(-z)) * std + mean


def maybe_standardize(x: Array, enabled: bool) -> Array:
    return standardize(x) if enabled else x


# --- projections and weighted sums ----------------------------------------------------


def soft_index(scores: Array, softness: Array, mode: str) -> Array:
    """Project `scores / softness` onto the simplex along the last axis."""
    return project_simplex(scores / softness, mode)


def weighted_sum(p: Array, x: Array) -> Array:
    """`Σ_j p[..., r, j] x[..., j]` for any weights `p` (rows need not sum to 1)."""
    return jnp.einsum("...rn,...n->...r", p, x, precision=jax.lax.Precision.HIGHEST)


def convex_combination(p: Array, x: Array) -> Array:
    """`Σ_j p[..., r, j] x[..., j]` for soft index rows `p` (each sums to 1), taken as
    `Σ_j p_rj (x_j - m) + m` with `m = row_center(x)` under `stop_gradient`.

    Both are the same function (and the same derivative: `Σ_j ∂p_rj = 0`), but the
    derivative through `p`, `Σ_j ∂p_rj x_j`, is then summed over `x - m` instead of `x`:
    for a (near-)constant row of large values (1e25 in float32) the uncentred sum is the
    rounding error of cancelling terms of size |x| / softness, which overflowed to ±inf.
    """
    m = row_center(x)  # (..., 1)
    return weighted_sum(p, x - m) + m  # (..., r)


def soft_combination(
    scores: Array, softness: Array, mode: str, x: Array, gated_grad: bool = True
) -> Array:
    """`convex_combination(soft_index(scores, softness, mode), x)` `(..., r)`, for scores
    `(..., r, n)` and values `(..., n)`.

    In smooth mode the rows are never normalised: with `e = exp(v − max_j v)`
    (`v = scores / softness`), one product `e @ [x − m, 1]` gives both `Σ_j e_rj (x_j − m)`
    and `Σ_j e_rj`, and the value is their ratio (`_softmax_weighted_sum`). That saves the
    pass that divides the n × n weights by their sums (NeuralSort's forward `sort` at
    B = 32, n = 64 on CPU: 173 against 250 µs). `gated_grad=False` stops the gradient
    through the soft index.
    """
    v = scores / softness  # (..., r, n)
    if not gated_grad:
        v = lax.stop_gradient(v)
    if mode != "smooth":
        return convex_combination(project_simplex(v, mode), x)
    m = row_center(x)  # (..., 1)
    return _softmax_weighted_sum(v, x - m) + m  # (..., r)


def _exp_sums(v: Array, y: Array) -> tuple[Array, Array, Array]:
    """`e = exp(v − max_j v)` `(..., r, n)` and its sums `Σ_j e_rj y_j`, `Σ_j e_rj`
    `(..., r)` in one product."""
    e = jnp.exp(v - lax.stop_gradient(jnp.max(v, axis=-1, keepdims=True)))  # (..., r, n)
    pair = jnp.stack([y, jnp.ones_like(y)], axis=-1)  # (..., n, 2)
    sums = jnp.einsum("...rn,...nk->...rk", e, pair, precision=lax.Precision.HIGHEST)
    return e, sums[..., 0], sums[..., 1]  # (..., r, n), (..., r), (..., r)


@jax.custom_jvp
def _softmax_weighted_sum(v: Array, y: Array) -> Array:
    """`Σ_j softmax(v_r)_j y_j` `(..., r)` for `v` `(..., r, n)` and `y` `(..., n)`."""
    _, weighted, total = _exp_sums(v, y)
    return weighted / total  # (..., r)


@_softmax_weighted_sum.defjvp
def _softmax_weighted_sum_jvp(primals, tangents):
    """With `p = softmax(v_r)` and `o_r = Σ_j p_rj y_j`:
    `do_r = Σ_j p_rj dv_rj (y_j − o_r) + Σ_j p_rj dy_j`."""
    (v, y), (dv, dy) = primals, tangents
    e, weighted, total = _exp_sums(v, y)
    out = weighted / total  # (..., r)
    p = e / total[..., None]  # (..., r, n)
    p_dv = p * dv  # (..., r, n)
    tangent = weighted_sum(p_dv, y) - out * jnp.sum(p_dv, axis=-1) + weighted_sum(p, dy)
    return out, tangent


@jax.custom_jvp
def row_sums(*arrays: Array) -> tuple[Array, ...]:
    """The sums of several arrays `(..., m)` of one shape over their last axis.

    XLA's CPU backend writes expressions that share a subexpression to memory before
    summing each of them. Beyond the cache that doubles the cost, and a variadic
    reduction (one pass over the tuple) is used instead: at 4096 × 4096, the row sums of
    the p-norm plan and its weights take 10 against 62 ms. Within the cache the separate
    sums vectorise better (4 × 512 × 512: 0.95 against 1.5 ms), so arrays of up to
    `_VARIADIC_SUM_MIN` entries keep them (measured equal at 2²⁰).
    Differentiable (the tangents are summed with `jnp.sum`).
    """
    if arrays[0].size <= _VARIADIC_SUM_MIN:
        return tuple(jnp.sum(a, axis=-1) for a in arrays)
    axis = arrays[0].ndim - 1
    zeros = tuple(jnp.zeros((), a.dtype) for a in arrays)
    return tuple(
        lax.reduce(
            arrays, zeros, lambda x, y: tuple(a + b for a, b in zip(x, y, strict=True)), (axis,)
        )
    )


@row_sums.defjvp
def _row_sums_jvp(primals: tuple, tangents: tuple) -> tuple:
    return row_sums(*primals), tuple(jnp.sum(t, axis=-1) for t in tangents)


# --- block-wise evaluation of n-row soft permutations -----------------------------------


def block_rows(batch_shape: tuple[int, ...], n: int) -> int:
    """Rows per block so that one `(batch, rows, n)` block holds about 2²¹ entries."""
    batch = 1
    for size in batch_shape:
        batch *= size
    rows = _BLOCK_ELEMENTS // max(batch * n, 1)
    return int(min(_MAX_BLOCK_ROWS, max(_MIN_BLOCK_ROWS, rows)))


def _to_blocks(rows: Array, block: int) -> Array:
    """`(..., m)` → `(num_blocks, ..., block)`, padding by repeating the last row."""
    m = rows.shape[-1]
    num_blocks = -(-m // block)
    pad = num_blocks * block - m
    rows = jnp.pad(rows, [(0, 0)] * (rows.ndim - 1) + [(0, pad)], mode="edge")  # (..., nb*c)
    rows = rows.reshape(*rows.shape[:-1], num_blocks, block)  # (..., nb, c)
    return jnp.moveaxis(rows, -2, 0)  # (nb, ..., c)


def map_row_blocks(f: Callable[..., Array], rows: tuple[Array, ...], block: int) -> Array:
    """Evaluate `f(*rows)` (row parameters `(..., m)` → outputs `(..., m)`) block by block.

    `f` must treat the last axis of its arguments as independent rows. Each block is
    rematerialised in the backward pass, so neither pass stores more than one block of
    the `(..., m, n)` intermediate.
    """
    m = rows[0].shape[-1]
    if m <= block:
        return f(*rows)
    blocked = tuple(_to_blocks(r, block) for r in rows)  # (nb, ..., c) each
    remat = jax.checkpoint(f)
    out = jax.lax.map(lambda args: remat(*args), blocked)  # (nb, ..., c)
    out = jnp.moveaxis(out, 0, -2)  # (..., nb, c)
    out = out.reshape(*out.shape[:-2], -1)  # (..., nb*c)
    return out[..., :m]  # (..., m)


def fold_row_blocks(
    f: Callable[..., tuple[Array, ...]],
    rows: tuple[Array, ...],
    block: int,
    combine: Callable[[tuple[Array, ...], tuple[Array, ...]], tuple[Array, ...]],
) -> tuple[Array, ...]:
    """Fold `f(*row_block, mask)` over blocks of rows with `combine(acc, part)`.

    `f(*row_block, mask)` gets the row parameters `(..., c)` and a `(c,)` float mask that
    is 0 on padding rows, and returns a tuple of per-column partial results `(..., n)`
    (which must ignore the masked rows); the first block's result starts the fold.
    Blocks are rematerialised in the backward pass.
    """
    m = rows[0].shape[-1]
    mask = jnp.ones((m,), dtype=rows[0].dtype)  # (m,)
    if m <= block:
        return f(*rows, mask)
    blocked = tuple(_to_blocks(r, block) for r in rows)  # (nb, ..., c) each
    mask_blocks = jnp.pad(mask, (0, blocked[0].shape[0] * block - m)).reshape(-1, block)
    remat = jax.checkpoint(f)
    init = remat(*(b[0] for b in blocked), mask_blocks[0])

    def step(acc: tuple[Array, ...], args: tuple[Array, ...]) -> tuple[tuple[Array, ...], None]:
        return combine(acc, remat(*args)), None

    rest = tuple(b[1:] for b in (*blocked, mask_blocks))
    total, _ = jax.lax.scan(step, init, rest)
    return total


def sum_row_blocks(
    f: Callable[..., tuple[Array, ...]], rows: tuple[Array, ...], block: int
) -> tuple[Array, ...]:
    """`Σ_blocks f(*row_block, mask)`: accumulate per-column sums over blocks of rows
    (`fold_row_blocks` with addition; `f` weights its sums by the mask)."""

    def add(acc: tuple[Array, ...], part: tuple[Array, ...]) -> tuple[Array, ...]:
        return tuple(a + p for a, p in zip(acc, part, strict=True))

    return fold_row_blocks(f, rows, block, add)


# --- sorting short rows ----------------------------------------------------------------


def _order_key(x: Array) -> Array:
    """Integers `(..., n)` in the order of `jnp.sort` for a float `x`: `-0` equal to `+0`,
    NaN after `+inf` (every NaN alike)."""
    bits = 8 * x.dtype.itemsize
    x = jnp.where(x == 0, jnp.zeros_like(x), x)
    x = jnp.where(jnp.isnan(x), jnp.full_like(x, jnp.nan), x)  # one positive NaN
    signed = lax.bitcast_convert_type(x, jnp.dtype(f"int{bits}"))  # (..., n)
    # negative floats count down as their bits count up: flip all but the sign bit
    return signed ^ ((signed >> (bits - 1)) & jnp.iinfo(signed.dtype).max)


def _counts_pairs(x: Array) -> bool:
    return x.shape[-1] <= _PAIRWISE_SORT_MAX and jnp.issubdtype(x.dtype, jnp.floating)


def sorted_positions(x: Array, descending: bool = False) -> Array:
    """0-based position `(..., n)` of each entry in the stable sort of `x` (ascending, or
    descending with ties still in input order), by counting the entries placed before it.

    For a float row of at most `_PAIRWISE_SORT_MAX` (128) entries this is an `O(n²)`
    count of the pairs in one fused reduction, which on CPU takes about half the time of
    `jnp.argsort` at n = 64.
    """
    n = x.shape[-1]
    if not _counts_pairs(x):
        return inverse_permutation(stable_argsort(x, descending))
    key = _order_key(lax.stop_gradient(x))  # (..., n)
    key = ~key if descending else key  # ~ reverses the order of signed integers
    key_i, key_j = key[..., None, :], key[..., :, None]  # (..., 1, n), (..., n, 1): j counts i
    earlier = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]  # (n, n): i < j
    before = (key_i < key_j) | ((key_i == key_j) & earlier)  # (..., n, n)
    return jnp.sum(before, axis=-1, dtype=jnp.int32)  # (..., n)


def stable_argsort(x: Array, descending: bool = False) -> Array:
    """`jnp.argsort(x, axis=-1, stable=True, descending=descending)`, by counting pairs
    for short float rows (`sorted_positions`)."""
    if not _counts_pairs(x):
        return jnp.argsort(x, axis=-1, stable=True, descending=descending)  # (..., n)
    n = x.shape[-1]
    positions = sorted_positions(x, descending)  # (..., n)
    # order[k] = the j at position k, as a one-hot sum rather than a scatter (which
    # XLA's partitioner gathers across devices when the batch is sharded)
    at = positions[..., None, :] == jnp.arange(n, dtype=positions.dtype)[:, None]  # (..., k, j)
    return jnp.sum(jnp.where(at, jnp.arange(n, dtype=positions.dtype), 0), axis=-1)  # (..., n)


def sort_rows(x: Array, descending: bool = False) -> Array:
    """`jnp.sort(x, axis=-1, descending=descending)` (differentiable, as `jnp.sort`), by
    counting pairs for short float rows (`sorted_positions`)."""
    if not _counts_pairs(x):
        return jnp.sort(x, axis=-1, descending=descending)  # (..., n)
    return jnp.take_along_axis(x, stable_argsort(x, descending), axis=-1)  # (..., n)


# --- hard (exact) results ------------------------------------------------------------


def one_hot(indices: Array, n: int, dtype: jnp.dtype) -> Array:
    return jax.nn.one_hot(indices, n, dtype=dtype)  # (..., n)


def hard_sort(x: Array, descending: bool) -> Array:
    return sort_rows(x, descending)  # (..., n)


def hard_argsort(x: Array, descending: bool) -> Array:
    order = stable_argsort(x, descending)  # (..., n)
    return one_hot(order, x.shape[-1], output_dtype(x))  # (..., n, n)


def hard_argmax(x: Array) -> Array:
    return one_hot(jnp.argmax(x, axis=-1), x.shape[-1], output_dtype(x))  # (..., n)


def hard_top_k(x: Array, k: int) -> tuple[Array, Array]:
    values, indices = jax.lax.top_k(x, k)  # (..., k), (..., k)
    return values, one_hot(indices, x.shape[-1], output_dtype(x))  # (..., k), (..., k, n)


def _pairwise_rank(x: Array) -> Array:
    """`hard_rank` by counting pairs: `1 + #{i: x_i < x_j} + #{i ≠ j: x_i = x_j} / 2`,
    with NaN after every number and NaNs in their input order (as the stable sort)."""
    n = x.shape[-1]
    x_j, x_i = x[..., :, None], x[..., None, :]  # (..., n, 1), (..., 1, n): j counts i
    nan_j, nan_i = jnp.isnan(x_j), jnp.isnan(x_i)
    earlier = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]  # (n, n): i < j
    less = (x_i < x_j) | (nan_j & ~nan_i) | (nan_i & nan_j & earlier)  # (..., n, n)
    dtype = compute_dtype(x)
    # one sum over the contiguous axis: 1 per smaller, 1/2 per equal (j itself included)
    score = jnp.where(less, 1.0, jnp.where(x_i == x_j, 0.5, 0.0)).astype(dtype)
    return jnp.sum(score, axis=-1) + 1 - 0.5 * (x == x).astype(dtype)  # (..., n)


def hard_rank(x: Array, descending: bool) -> Array:
    """Average ranks in [1, n] (ties share the mean of their positions), as
    `scipy.stats.rankdata(x, axis=-1)`; `descending` ranks the largest first.

    Up to n = 128 the ranks are counted from the n² pairs, which on CPU takes a fraction
    of the two sorts the general path needs.
    """
    n = x.shape[-1]
    if n <= _PAIRWISE_RANK_MAX:
        ranks = _pairwise_rank(x)
        return ((n + 1 - ranks) if descending else ranks).astype(output_dtype(x))
    order = stable_argsort(x)  # (..., n)
    return ranks_from_order(x, order, inverse_permutation(order), descending)


def inverse_permutation(order: Array) -> Array:
    """The inverse of each permutation `order` `(..., n)` along the last axis (a scatter,
    cheaper than a second sort)."""
    positions = jnp.broadcast_to(jnp.arange(order.shape[-1], dtype=order.dtype), order.shape)
    return jnp.put_along_axis(jnp.zeros_like(order), order, positions, axis=-1, inplace=False)


def ranks_from_order(x: Array, order: Array, inverse: Array, descending: bool) -> Array:
    """`hard_rank(x)` from the stable ascending permutation `order` of `x` `(..., n)` and
    its `inverse`."""
    n = x.shape[-1]
    ordered = jnp.take_along_axis(x, order, axis=-1)  # (..., n)
    pos = jnp.broadcast_to(jnp.arange(n), x.shape)  # (..., n)
    change = ordered[..., 1:] != ordered[..., :-1]  # (..., n-1)
    true = jnp.ones((*x.shape[:-1], 1), dtype=bool)  # (..., 1)
    starts = jnp.concatenate([true, change], axis=-1)  # (..., n)
    ends = jnp.concatenate([change, true], axis=-1)  # (..., n)
    first = jax.lax.cummax(jnp.where(starts, pos, 0), axis=pos.ndim - 1)  # (..., n)
    last = jax.lax.cummin(jnp.where(ends, pos, n - 1), axis=pos.ndim - 1, reverse=True)
    mean_rank = (first + last).astype(compute_dtype(x)) / 2 + 1  # (..., n)
    ranks = jnp.take_along_axis(mean_rank, inverse, axis=-1)  # (..., n)
    ranks = (n + 1 - ranks) if descending else ranks
    return ranks.astype(output_dtype(x))

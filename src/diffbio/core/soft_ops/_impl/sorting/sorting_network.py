"""Differentiable bitonic sorting network (Petersen et al. 2021), along the last axis.

A bitonic network sorts `N = 2^m` values with `m (m + 1) / 2` layers of disjoint
compare-swaps. Each compare-swap of `a` (here) against `b` (its partner) is relaxed with
`σ = sigmoidal(a - b)` of the mode:

    min = σ · b + (1 - σ) · a,    max = σ · a + (1 - σ) · b.

Both outputs are `(1 - mix) · a + mix · b` with `mix = σ` at the position that takes the
minimum and `1 - σ` at the one that takes the maximum; the same mixing of the rows of an
identity matrix tracks the soft permutation `P` (row = sorted position, column = input),
so `P @ z` equals the network's output. Inputs are padded to a power of two with values
so far above the rest that every comparison with them is exactly (or, in `smooth` mode,
to ~1e-26) decided, sorted last and cropped; `P` is cropped and its rows renormalised.

With `standardize`, the network runs on `z = standardize(x)` and `sort` maps its output
back with `logit(z) · std + mean`; the soft indices are built from `z`.

Only `argsort` builds the `n × n` permutation. `argmax`, `argmin`, `rank`, `top_k` and
the quantile rows run the network forward once, keep each layer's mixing weights
(`O(n log² n)` in total) and push just the row vectors they need back through the
transposed layers (`uᵀ P = uᵀ L_m ⋯ L_1`, each `L_lᵀ` as cheap as `L_l`): one vector for
`argmax`, `k` for `top_k`, two for a quantile and two for `rank`. The rows equal those of
the tracked permutation up to float round-off.

Reference: F. Petersen, C. Borgelt, H. Kuehne and O. Deussen, "Differentiable Sorting
Networks for Scalable Sorting and Ranking Supervision", ICML 2021, arXiv:2105.04019.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffbio.core.soft_ops._impl.sigmoidal import sigmoidal
from diffbio.core.soft_ops._impl.sorting._common import (
    hard_argmax,
    hard_argsort,
    hard_rank,
    hard_sort,
    hard_top_k,
    output_dtype,
    prepare,
    standardize_with_stats,
    unstandardize,
)


def _layers(size: int) -> list[tuple[int, np.ndarray]]:
    """`(distance d, ascending mask (N / 2d, d))` for each layer of the ascending
    bitonic network of `size` inputs.

    In a layer with distance `d`, position `i` (with bit `d` clear) is compared with
    `i + d`: the pair sits at `[block, 0, offset]` and `[block, 1, offset]` of the
    `(N / 2d, 2, d)` view. In an ascending block the lower position receives the
    minimum, in a descending block the maximum.
    """
    layers = []
    for phase in range(size.bit_length() - 1):
        for step in range(phase, -1, -1):
            d = 1 << step
            lower = np.arange(size).reshape(size // (2 * d), 2, d)[:, 0, :]  # (N/2d, d)
            layers.append((d, (lower & (2 << phase)) == 0))
    return layers


def _layer(
    v: Array, d: int, ascending: np.ndarray, softness: Array, mode: str
) -> tuple[Array, Array]:
    """One layer: `(new values (..., N), mix (..., N))` with `new = (1 - mix) v +
    mix v[i ^ d]`. Each pair is compared once, on the `(..., N / 2d, 2, d)` view (no
    gather, half the comparator evaluations of an elementwise form)."""
    shape = v.shape
    size = shape[-1]
    pairs = v.reshape(*shape[:-1], size // (2 * d), 2, d)
    a, b = pairs[..., 0, :], pairs[..., 1, :]  # (..., N/2d, d): lower and upper index
    sigma = sigmoidal(a - b, softness, mode)  # (..., N/2d, d): weight of b in the minimum
    # (1 - σ) a + σ b, not a + σ (b - a): exact when the comparison is decided
    # (σ = 0 or 1) however far apart a and b are.
    low = sigma * b + (1.0 - sigma) * a
    high = sigma * a + (1.0 - sigma) * b
    first = jnp.where(ascending, low, high)
    second = jnp.where(ascending, high, low)
    values = jnp.stack([first, second], axis=-2).reshape(shape)  # (..., N)
    mix = jnp.where(ascending, sigma, 1.0 - sigma)  # both positions take this from the other
    return values, jnp.stack([mix, mix], axis=-2).reshape(shape)  # (..., N), (..., N)


def _partner(a: Array, d: int, axis: int) -> Array:
    """`a` with entries `i` and `i ^ d` swapped along `axis` (a reshape and flip)."""
    axis = axis % a.ndim
    shape = a.shape
    size = shape[axis]
    split = a.reshape(*shape[:axis], size // (2 * d), 2, d, *shape[axis + 1 :])
    return jnp.flip(split, axis=axis + 1).reshape(shape)


def _pad(z: Array, softness: Array) -> Array:
    """Pad `(..., n)` to the next power of two with values that sort strictly last.

    The gap to the row maximum is `(|max| + 1)(1 + 60 s)` ≥ 60 s + 1: beyond the
    `[-5 s, 5 s]` support of the piecewise comparators and `sigmoid(-60) ≈ 1e-26` for
    `smooth`, so padding never mixes with real entries.
    """
    n = z.shape[-1]
    size = 1 << max(n - 1, 0).bit_length()
    if size == n:
        return z
    top = jnp.max(z, axis=-1, keepdims=True)  # (..., 1)
    fill = jax.lax.stop_gradient(top + (jnp.abs(top) + 1.0) * (1.0 + 60.0 * softness))
    fill = jnp.broadcast_to(fill, (*z.shape[:-1], size - n))  # (..., N - n)
    return jnp.concatenate([z, fill], axis=-1)  # (..., N)


def _network(z: Array, softness: Array, mode: str, track: bool) -> tuple[Array, Array | None]:
    """Run the ascending soft network on `(..., n)`; return the cropped values `(..., n)`
    and, if `track`, the cropped row-renormalised permutation `(..., n, n)`."""
    n = z.shape[-1]
    v = _pad(z, softness)  # (..., N)
    size = v.shape[-1]
    p = jnp.broadcast_to(jnp.eye(size, dtype=v.dtype), (*v.shape[:-1], size, size))  # (..., N, N)
    for d, ascending in _layers(size):
        v, mix = _layer(v, d, ascending, softness, mode)  # (..., N), (..., N)
        if track:
            row_mix = mix[..., :, None]  # (..., N, 1)
            p = (1.0 - row_mix) * p + row_mix * _partner(p, d, -2)  # (..., N, N)
    if not track:
        return v[..., :n], None
    p = p[..., :n, :n]  # (..., n, n)
    p = p / jnp.maximum(jnp.sum(p, axis=-1, keepdims=True), 1e-10)
    return v[..., :n], p


def _forward(z: Array, softness: Array, mode: str) -> tuple[Array, list[tuple[int, Array]]]:
    """Run the ascending soft network on `(..., n)`; return the padded values `(..., N)`
    and each layer's `(distance d, mix (..., N))`: `a ← (1 - mix) a + mix a[i ^ d]`."""
    v = _pad(z, softness)  # (..., N)
    mixes = []
    for d, ascending in _layers(v.shape[-1]):
        v, mix = _layer(v, d, ascending, softness, mode)  # (..., N), (..., N)
        mixes.append((d, mix))
    return v, mixes


def _pull_back(u: Array, mixes: list[tuple[int, Array]]) -> Array:
    """`u P` for row vectors `u (..., m, N)`: `u` through the transposed layers, last first.

    `(Lᵀ u)_j = (1 - mix_j) u_j + mix_{j^d} u_{j^d}`.
    """
    for d, mix in reversed(mixes):
        row_mix = mix[..., None, :]  # (..., 1, N)
        u = (1.0 - row_mix) * u + _partner(row_mix * u, d, -1)  # (..., m, N)
    return u


def _push_forward(c: Array, mixes: list[tuple[int, Array]]) -> Array:
    """`P c` for a column vector `c (..., N)`: `c` through the layers, first to last."""
    for d, mix in mixes:
        c = (1.0 - mix) * c + mix * _partner(c, d, -1)  # (..., N)
    return c


def _standardized(x: Array, softness: float | Array, standardize: bool):
    """`(xc, z, s, stats)`: the network's input `z` and `(mean, std)` or `None`."""
    xc, s = prepare(x, softness)
    if standardize:
        z, mean, std = standardize_with_stats(xc)  # (..., n), (..., 1), (..., 1)
        return xc, z, s, (mean, std)
    return xc, xc, s, None


def rows_and_values(
    x: Array, positions: Array, softness: float | Array, mode: str, standardize: bool
) -> tuple[Array, Array]:
    """`(rows (..., m, n), network values (..., n))`: rows `positions (m,)` (0-based,
    ascending) of the row-renormalised soft permutation, without building it.

    Memory is `O(n log² n)` for the layer weights plus `O(m n log² n)` for the pulled-back
    rows; the values are mapped back to the units of `x` when standardising.
    """
    xc, z, s, stats = _standardized(x, softness, standardize)
    n = z.shape[-1]
    v, mixes = _forward(z, s, mode)  # (..., N)
    size = v.shape[-1]
    start = jax.nn.one_hot(positions, size, dtype=v.dtype)  # (m, N)
    start = jnp.broadcast_to(start, (*v.shape[:-1], *start.shape))  # (..., m, N)
    rows = _pull_back(start, mixes)[..., :n]  # (..., m, n)
    rows = rows / jnp.maximum(jnp.sum(rows, axis=-1, keepdims=True), 1e-10)
    values = v[..., :n]  # (..., n)
    if stats is not None:
        values = unstandardize(values, *stats)
    return rows, values


def permutation_and_values(
    x: Array, softness: float | Array, mode: str, standardize: bool
) -> tuple[Array, Array, Array]:
    """`(xc, ascending soft permutation (..., n, n), network values (..., n))`, the values
    mapped back to the units of `x` when standardising."""
    xc, s = prepare(x, softness)
    if standardize:
        z, mean, std = standardize_with_stats(xc)  # (..., n), (..., 1), (..., 1)
        values, p = _network(z, s, mode, track=True)  # (..., n), (..., n, n)
        return xc, p, unstandardize(values, mean, std)
    values, p = _network(xc, s, mode, track=True)  # (..., n), (..., n, n)
    return xc, p, values


def sort(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    descending: bool = False,
    standardize: bool = True,
    *,
    gated_grad: bool = True,
) -> Array:
    """Soft sorted values `(..., n)` straight from the network (no permutation matrix).

    With `standardize` the network sorts `z` and the result is mapped back by
    `logit(z) · std + mean`. `gated_grad` is accepted for a uniform signature; the values
    do not go through a soft index.
    """
    del gated_grad
    if mode == "hard":
        return hard_sort(x, descending)
    xc, s = prepare(x, softness)
    if standardize:
        z, mean, std = standardize_with_stats(xc)  # (..., n), (..., 1), (..., 1)
        values = unstandardize(_network(z, s, mode, track=False)[0], mean, std)  # (..., n)
    else:
        values = _network(xc, s, mode, track=False)[0]  # (..., n)
    if descending:
        values = jnp.flip(values, axis=-1)
    return values.astype(output_dtype(x))


def argsort(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    descending: bool = False,
    standardize: bool = True,
) -> Array:
    """Soft permutation matrix `(..., n, n)` tracked through the network: row `i` is the
    distribution over positions of the i-th smallest input (largest if `descending`)."""
    if mode == "hard":
        return hard_argsort(x, descending)
    _, p, _ = permutation_and_values(x, softness, mode, standardize)  # (..., n, n)
    if descending:
        p = jnp.flip(p, axis=-2)
    return p.astype(output_dtype(x))


def rank(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    descending: bool = False,
    standardize: bool = True,
) -> Array:
    """Soft ranks `(..., n)` in [1, n]: `Σ_r r P[r, j] / Σ_r P[r, j]` over the columns of
    the network's permutation (1 = smallest, or largest if `descending`).

    The row sums come from pushing `1` forward through the layers, the weighted and plain
    column sums from pulling two vectors back (no `n × n` matrix)."""
    if mode == "hard":
        return hard_rank(x, descending)
    _, z, s, _ = _standardized(x, softness, standardize)
    n = z.shape[-1]
    v, mixes = _forward(z, s, mode)  # (..., N)
    size = v.shape[-1]
    inside = (jnp.arange(size) < n).astype(v.dtype)  # (N,)
    # Row sums of the cropped permutation, P 1_{j<n}, for the row renormalisation.
    row_sums = _push_forward(jnp.broadcast_to(inside, v.shape), mixes)  # (..., N)
    inv_sums = inside / jnp.maximum(row_sums, 1e-10)  # (..., N), 0 on padding rows
    positions = jnp.arange(1, size + 1, dtype=v.dtype)  # (N,)
    if descending:
        positions = n + 1 - positions
    start = jnp.stack([positions * inv_sums, inv_sums], axis=-2)  # (..., 2, N)
    weighted, col_sums = jnp.unstack(_pull_back(start, mixes)[..., :n], axis=-2)  # (..., n)
    return (weighted / jnp.maximum(col_sums, 1e-10)).astype(output_dtype(x))


def argmax(
    x: Array, softness: float | Array = 0.1, mode: str = "smooth", standardize: bool = True
) -> Array:
    """Soft argmax `(..., n)`: the last row of the ascending network permutation, pulled
    back through the layers as one vector."""
    if mode == "hard":
        return hard_argmax(x)
    last = jnp.array([x.shape[-1] - 1])  # (1,)
    rows, _ = rows_and_values(x, last, softness, mode, standardize)  # (..., 1, n)
    return rows[..., 0, :].astype(output_dtype(x))  # (..., n)


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
    """The k largest values `(..., k)` (the network's own values, as `sort`), descending,
    and the SoftIndex `(..., k, n)` of the top k rows of the permutation."""
    del gated_grad
    if mode == "hard":
        return hard_top_k(x, k)
    n = x.shape[-1]
    positions = jnp.arange(n - 1, n - 1 - k, -1)  # (k,) descending
    top_index, values = rows_and_values(x, positions, softness, mode, standardize)
    dtype = output_dtype(x)
    top_values = jnp.flip(values, axis=-1)[..., :k]  # (..., k)
    return top_values.astype(dtype), top_index.astype(dtype)

"""Selection by index: a hard (integer) index selects, a SoftIndex mixes.

A SoftIndex is an array whose last axis is a probability distribution over the
positions of the indexed axis; selecting with it returns the expectation of the
selected value, ``sum_j p_j x_j``. With a one-hot SoftIndex every function here equals
its `jnp` / `lax` counterpart exactly (including `lax`'s clamping of slice starts).
"""

from collections.abc import Sequence

import jax.numpy as jnp
from jax import Array, lax


def is_hard(index: Array) -> bool:
    """An integer (or boolean) index selects; a floating one is a SoftIndex."""
    return not jnp.issubdtype(jnp.asarray(index).dtype, jnp.inexact)


def _mix_dtype(x: Array, index: Array) -> jnp.dtype:
    dtype = jnp.result_type(x, index)
    return dtype if jnp.issubdtype(dtype, jnp.inexact) else jnp.result_type(dtype, float)


def _check_last(op: str, index: Array, n: int, what: str) -> None:
    if index.ndim == 0 or index.shape[-1] != n:
        raise ValueError(
            f"{op}: the SoftIndex's last axis must have the length of {what} ({n}), "
            f"got a SoftIndex of shape {tuple(index.shape)}"
        )


def take_along_axis(x: Array, index: Array, axis: int | None) -> Array:
    """``sum_j index[..., k, ..., j] * x[..., j, ...]`` along ``axis``."""
    if is_hard(index):
        return jnp.take_along_axis(x, index, axis=axis)
    if axis is None:
        x, axis = jnp.ravel(x), 0  # (n,)
    n = x.shape[axis]
    _check_last("take_along_axis", index, n, f"axis {axis} of x")
    if index.ndim != x.ndim + 1:
        raise ValueError(
            f"take_along_axis: a SoftIndex needs x.ndim + 1 = {x.ndim + 1} dimensions "
            f"(the index dimensions of x, then the distribution), got shape {tuple(index.shape)}"
        )
    dtype = _mix_dtype(x, index)
    x_last = jnp.moveaxis(x, axis, -1)[..., None, :].astype(dtype)  # (..., 1, n)
    index_last = jnp.moveaxis(index, axis, -2).astype(dtype)  # (..., k, n)
    mixed = jnp.sum(x_last * index_last, axis=-1)  # (..., k)
    return jnp.moveaxis(mixed, -1, axis)  # (..., k, ...)


def take(x: Array, index: Array, axis: int | None) -> Array:
    """``jnp.take`` with a SoftIndex of shape ``(*I, n)``: the result has the shape of
    ``x`` with ``axis`` replaced by ``I`` (``x`` is flattened when ``axis`` is None)."""
    if is_hard(index):
        return jnp.take(x, index, axis=axis)
    if axis is None:
        x, axis = jnp.ravel(x), 0  # (n,)
    n = x.shape[axis]
    _check_last("take", index, n, f"axis {axis} of x")
    dtype = _mix_dtype(x, index)
    x_last = jnp.moveaxis(x, axis, -1).astype(dtype)  # (*A, *B, n)
    mixed = jnp.tensordot(x_last, index.astype(dtype), axes=((-1,), (-1,)))  # (*A, *B, *I)
    batch = x.ndim - 1  # len(A) + len(B)
    index_dims = list(range(batch, mixed.ndim))
    return jnp.moveaxis(mixed, index_dims, list(range(axis, axis + len(index_dims))))


def choose(index: Array, choices: Array | Sequence[Array]) -> Array:
    """``sum_j index[..., j] * choices[j]`` (broadcast), a soft ``jnp.choose``."""
    if is_hard(index):
        return jnp.choose(index, choices)
    if isinstance(choices, list | tuple):
        stacked = jnp.stack(jnp.broadcast_arrays(*choices))  # (n, *S)
    else:
        stacked = jnp.asarray(choices)  # (n, *S)
    _check_last("choose", index, stacked.shape[0], "choices")
    dtype = _mix_dtype(stacked, index)
    last = jnp.moveaxis(stacked, 0, -1).astype(dtype)  # (*S, n)
    return jnp.sum(last * index.astype(dtype), axis=-1)  # broadcast(S, I)


def dynamic_index_in_dim(x: Array, index: Array, axis: int, keepdims: bool) -> Array:
    """``sum_j index[j] * x[..., j, ...]`` along ``axis``."""
    if is_hard(index):
        return lax.dynamic_index_in_dim(x, index, axis=axis, keepdims=keepdims)
    _check_last("dynamic_index_in_dim", index, x.shape[axis], f"axis {axis} of x")
    if index.ndim != 1:
        raise ValueError(
            "dynamic_index_in_dim: the SoftIndex must be one distribution of shape (n,), "
            f"got shape {tuple(index.shape)}"
        )
    dtype = _mix_dtype(x, index)
    mixed = jnp.tensordot(jnp.moveaxis(x, axis, -1).astype(dtype), index.astype(dtype), axes=1)
    return jnp.expand_dims(mixed, axis) if keepdims else mixed  # (..., {1}, ...)


def _clamped_starts(start: Array, n: int, size: int) -> Array:
    """Move the probability of starts past ``n - size`` onto ``n - size``, as
    `lax.dynamic_slice` clamps a start so that the window fits."""
    last = n - size
    head = start[: last + 1]  # (last + 1,)
    return head.at[last].add(jnp.sum(start[last + 1 :]))


def dynamic_slice_in_dim(x: Array, start: Array, slice_size: int, axis: int) -> Array:
    """Window of ``slice_size`` along ``axis`` whose start is a SoftIndex: the
    expectation of ``lax.dynamic_slice_in_dim`` over the start (no wrap-around)."""
    n = x.shape[axis]
    if not 1 <= slice_size <= n:
        raise ValueError(
            f"dynamic_slice_in_dim: slice_size must be in [1, {n}] (the length of axis "
            f"{axis}), got {slice_size}"
        )
    if is_hard(start):
        return lax.dynamic_slice_in_dim(x, start, slice_size, axis=axis)
    _check_last("dynamic_slice_in_dim", start, n, f"axis {axis} of x")
    if start.ndim != 1:
        raise ValueError(
            "dynamic_slice_in_dim: the SoftIndex must be one distribution of shape (n,), "
            f"got shape {tuple(start.shape)}"
        )
    dtype = _mix_dtype(x, start)
    weights = _clamped_starts(start.astype(dtype), n, slice_size)  # (n - size + 1,)
    x_last = jnp.moveaxis(x, axis, -1).astype(dtype)  # (..., n)
    offsets = jnp.arange(slice_size)[:, None] + jnp.arange(n - slice_size + 1)[None, :]
    windows = x_last[..., offsets]  # (..., size, n - size + 1)
    mixed = jnp.sum(windows * weights, axis=-1)  # (..., size)
    return jnp.moveaxis(mixed, -1, axis)  # (..., size, ...)


def dynamic_slice(x: Array, starts: Sequence[Array], slice_sizes: Sequence[int]) -> Array:
    """`dynamic_slice_in_dim` along every axis in turn (hard or soft start per axis)."""
    if not len(starts) == len(slice_sizes) == x.ndim:
        raise ValueError(
            "dynamic_slice: need one start index and one slice size per axis of x "
            f"(x.ndim = {x.ndim}), got {len(starts)} starts and {len(slice_sizes)} sizes"
        )
    result = x
    for axis, (start, size) in enumerate(zip(starts, slice_sizes, strict=True)):
        result = dynamic_slice_in_dim(result, jnp.asarray(start), size, axis)
    return result

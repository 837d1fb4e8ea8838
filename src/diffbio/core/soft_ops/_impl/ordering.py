"""Ordering and quantile operations on any axis: axis layout and method dispatch.

The kernels under `sorting/` work on the last axis; this module moves the requested
axis there, checks the arguments that depend on its length (``k``, ``q``), calls the
method's kernel, and puts the result back in the layout `jnp` uses (SoftIndex
distributions always on the last axis).
"""

import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from diffbio.core.soft_ops._generated.methods import VALUES_ONLY

from .sorting import KERNELS
from .sorting import quantile as _quantile
from .sorting import solver_options as _options
from .sorting._common import convex_combination


def _to_last(x: Array, axis: int | None) -> tuple[Array, int]:
    """``x`` with ``axis`` moved last (flattened when None); returns the original axis
    position in the moved array's batch layout (0 after flattening)."""
    if axis is None:
        return jnp.ravel(x), 0  # (n,)
    axis = axis % x.ndim
    return jnp.moveaxis(x, axis, -1), axis  # (..., n)


def _check_k(op: str, k: int, n: int) -> None:
    if not 1 <= k <= n:
        raise ValueError(f"{op}: k must be in [1, {n}] (the length of the axis), got k={k}")


def _check_q(op: str, q: Array, low: float, high: float, name: str) -> None:
    """Reject a concrete q outside [low, high] (a traced q cannot be inspected)."""
    try:
        values = np.asarray(q)
    except Exception:  # noqa: BLE001 - a tracer: nothing to check now
        return
    if values.ndim > 1:
        raise ValueError(f"{op}: {name} must be a scalar or a 1-D array, got shape {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < low) or np.any(values > high):
        raise ValueError(f"{op}: {name} must lie in [{low:g}, {high:g}], got {values.tolist()!r}")


def _keep(result: Array, axis: int | None, ndim: int, keepdims: bool, lead: int = 0) -> Array:
    """Re-insert the reduced axis with size 1 (all ``ndim`` axes when it was None) after
    ``lead`` leading (quantile) axes; a trailing SoftIndex axis stays last."""
    if not keepdims:
        return result
    if axis is None:
        tail = result.shape[lead:]
        return jnp.reshape(result, result.shape[:lead] + (1,) * ndim + tail)
    return jnp.expand_dims(result, lead + axis)


def sort(x, axis, descending, softness, mode, method, standardize, ot_kwargs, gated_grad):
    x_last, axis = _to_last(x, axis)
    values = KERNELS[method].sort(
        x_last, softness, mode, descending, standardize, gated_grad=gated_grad,
        **_options(method, ot_kwargs),
    )  # (..., n)
    return jnp.moveaxis(values, -1, axis)


def argsort(x, axis, descending, softness, mode, method, standardize, ot_kwargs):
    x_last, axis = _to_last(x, axis)
    index = KERNELS[method].argsort(
        x_last, softness, mode, descending, standardize, **_options(method, ot_kwargs)
    )  # (..., n, n)
    return jnp.moveaxis(index, -2, axis)  # rows where the axis was, distribution last


def rank(x, axis, descending, softness, mode, method, standardize, ot_kwargs):
    x_last, axis = _to_last(x, axis)
    ranks = KERNELS[method].rank(
        x_last, softness, mode, descending, standardize, **_options(method, ot_kwargs)
    )  # (..., n)
    return jnp.moveaxis(ranks, -1, axis)


def _arg_extreme(name, x, axis, keepdims, softness, mode, method, standardize, ot_kwargs):
    x_last, position = _to_last(x, axis)
    index = getattr(KERNELS[method], name)(
        x_last, softness, mode, standardize, **_options(method, ot_kwargs)
    )  # (..., n)
    return _keep(index, None if axis is None else position, x.ndim, keepdims)


def argmax(x, axis, keepdims, softness, mode, method, standardize, ot_kwargs):
    return _arg_extreme("argmax", x, axis, keepdims, softness, mode, method, standardize, ot_kwargs)


def argmin(x, axis, keepdims, softness, mode, method, standardize, ot_kwargs):
    return _arg_extreme("argmin", x, axis, keepdims, softness, mode, method, standardize, ot_kwargs)


def _extreme(name, x, axis, keepdims, softness, mode, method, standardize, ot_kwargs, gated_grad):
    if mode == "hard":
        reduce = jnp.max if name == "argmax" else jnp.min
        return reduce(x, axis=axis, keepdims=keepdims)
    x_last, position = _to_last(x, axis)
    if method in VALUES_ONLY:
        # No soft index: the first of the method's soft sorted values, largest first for max.
        values = KERNELS[method].sort(
            x_last, softness, mode, name == "argmax", standardize, gated_grad=gated_grad,
            **_options(method, ot_kwargs),
        )  # (..., n)
        value = values[..., 0].astype(x.dtype)  # (...)
    else:
        index = getattr(KERNELS[method], name)(
            x_last, softness, mode, standardize, **_options(method, ot_kwargs)
        )  # (..., n)
        if not gated_grad:
            index = lax.stop_gradient(index)
        value = convex_combination(index[..., None, :], x_last)[..., 0].astype(x.dtype)  # (...)
    return _keep(value, None if axis is None else position, x.ndim, keepdims)


def max(x, axis, keepdims, softness, mode, method, standardize, ot_kwargs, gated_grad):  # noqa: A001
    return _extreme(
        "argmax", x, axis, keepdims, softness, mode, method, standardize, ot_kwargs, gated_grad
    )


def min(x, axis, keepdims, softness, mode, method, standardize, ot_kwargs, gated_grad):  # noqa: A001
    return _extreme(
        "argmin", x, axis, keepdims, softness, mode, method, standardize, ot_kwargs, gated_grad
    )


def top_k(x, k, axis, softness, mode, method, standardize, ot_kwargs, gated_grad):
    x_last, axis = _to_last(x, axis)
    _check_k("top_k", k, x_last.shape[-1])
    values, index = KERNELS[method].top_k(
        x_last, k, softness, mode, standardize, gated_grad=gated_grad,
        **_options(method, ot_kwargs),
    )  # (..., k), (..., k, n) or None for a values-only method
    values = jnp.moveaxis(values, -1, axis)
    index = None if index is None else jnp.moveaxis(index, -2, axis)
    return values, index


def quantile(
    x, q, axis, keepdims, softness, mode, method, quantile_method, standardize, ot_kwargs,
    gated_grad,
):
    q = jnp.asarray(q)
    _check_q("quantile", q, 0.0, 1.0, "q")
    x_last, position = _to_last(x, axis)
    axis = None if axis is None else position
    values = _quantile.quantile(
        x_last, q, softness, mode, method, standardize, quantile_method, gated_grad=gated_grad,
        options=ot_kwargs,
    )  # (Q..., ...)
    return _keep(values.astype(x.dtype), axis, x.ndim, keepdims, lead=q.ndim)


def percentile(
    x, p, axis, keepdims, softness, mode, method, quantile_method, standardize, ot_kwargs,
    gated_grad,
):
    p = jnp.asarray(p)
    _check_q("percentile", p, 0.0, 100.0, "p")
    return quantile(
        x, p / 100.0, axis, keepdims, softness, mode, method, quantile_method, standardize,
        ot_kwargs, gated_grad,
    )


def median(x, axis, keepdims, softness, mode, method, standardize, ot_kwargs, gated_grad):
    return quantile(
        x, 0.5, axis, keepdims, softness, mode, method, "midpoint", standardize, ot_kwargs,
        gated_grad,
    )


def argquantile(
    x, q, axis, keepdims, softness, mode, method, quantile_method, standardize, ot_kwargs
):
    q = jnp.asarray(q)
    _check_q("argquantile", q, 0.0, 1.0, "q")
    x_last, position = _to_last(x, axis)
    axis = None if axis is None else position
    index = _quantile.argquantile(
        x_last, q, softness, mode, method, standardize, quantile_method, options=ot_kwargs
    )  # (Q..., ..., n)
    return _keep(index, axis, x.ndim, keepdims, lead=q.ndim)


def argpercentile(
    x, p, axis, keepdims, softness, mode, method, quantile_method, standardize, ot_kwargs
):
    p = jnp.asarray(p)
    _check_q("argpercentile", p, 0.0, 100.0, "p")
    return argquantile(
        x, p / 100.0, axis, keepdims, softness, mode, method, quantile_method, standardize,
        ot_kwargs,
    )


def argmedian(x, axis, keepdims, softness, mode, method, standardize, ot_kwargs):
    return argquantile(
        x, 0.5, axis, keepdims, softness, mode, method, "midpoint", standardize, ot_kwargs
    )


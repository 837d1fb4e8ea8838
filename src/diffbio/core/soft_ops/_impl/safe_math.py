"""Autograd-safe math through the double-where trick.

The unsafe function only ever sees inputs inside its domain (the outer ``where``
picks a harmless stand-in elsewhere), so neither the value nor the gradient of the
branch that is not taken can be NaN.
"""

import jax
import jax.numpy as jnp
from jax import Array


def sqrt(x: Array) -> Array:
    """``sqrt(x)`` for ``x > 0``, ``0`` otherwise; gradient 0 at ``x <= 0``."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0).astype(x.dtype)


def log(x: Array) -> Array:
    """``log(x)`` for ``x > 0``, ``0`` otherwise; gradient 0 at ``x <= 0``."""
    positive = x > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, x, 1.0)), 0.0).astype(x.dtype)


@jax.custom_jvp
def _quotient(x: Array, y: Array) -> Array:
    """``x / y`` for ``y != 0``."""
    return x / y


@_quotient.defjvp
def _quotient_jvp(primals, tangents):
    # d(x/y) = (dx - q dy) / y with q = x / y: never forms y², which underflows to 0 for
    # tiny y (float32 y = 1e-30) and turned the y-gradient of 0 / y into 0 · inf = NaN.
    x, y = primals
    dx, dy = tangents
    q = x / y
    return q, (dx - q * dy) / y


def div(x: Array, y: Array) -> Array:
    """``x / y`` where ``y != 0``, ``0`` where ``y == 0``; finite gradients at ``y = 0``
    and for tiny ``y``."""
    x, y = jnp.broadcast_arrays(x, y)
    nonzero = y != 0
    quotient = _quotient(x, jnp.where(nonzero, y, 1.0))
    return jnp.where(nonzero, quotient, 0.0).astype(jnp.result_type(x, y))


def arcsin(x: Array) -> Array:
    """``arcsin(x)`` on (-1, 1), ``±pi/2`` at and beyond ``±1``; finite gradient at ``±1``."""
    inside = jnp.abs(x) < 1
    value = jnp.arcsin(jnp.where(inside, x, 0.0))
    return jnp.where(inside, value, jnp.sign(x) * (jnp.pi / 2)).astype(x.dtype)


def arccos(x: Array) -> Array:
    """``arccos(x)`` on (-1, 1), ``0`` at ``x >= 1`` and ``pi`` at ``x <= -1``."""
    inside = jnp.abs(x) < 1
    value = jnp.arccos(jnp.where(inside, x, 0.0))
    return jnp.where(inside, value, jnp.where(x >= 1, 0.0, jnp.pi)).astype(x.dtype)


def norm(x: Array, axis: int | tuple[int, ...] | None, keepdims: bool) -> Array:
    """Euclidean norm ``sqrt(sum(x^2))`` with the safe `sqrt`: gradient 0 at the zero vector.

    Computed as ``m · sqrt(sum((x / m)^2))`` with ``m = max |x|`` held constant for the
    derivative (the norm is homogeneous, so the result and its gradient ``x / |x|`` are
    unchanged): ``x^2`` alone overflows for ``|x| > 1.8e19`` in float32.
    """
    magnitude = jnp.abs(x)
    scale = jax.lax.stop_gradient(jnp.max(magnitude, axis=axis, keepdims=True))  # kept dims
    scale = jnp.where(scale > 0, scale, 1.0)
    scaled = x / scale
    total = jnp.sum(scaled * scaled, axis=axis, keepdims=keepdims)
    out_scale = scale if keepdims else jnp.reshape(scale, total.shape)
    return (out_scale * sqrt(total)).astype(x.dtype)

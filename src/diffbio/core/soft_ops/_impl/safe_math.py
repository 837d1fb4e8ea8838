"""Autograd-safe math through the double-where trick.

The unsafe function only ever sees inputs inside its domain (the outer ``where``
picks a harmless stand-in elsewhere), so neither the value nor the gradient of the
branch that is not taken can be NaN.
"""

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


def div(x: Array, y: Array) -> Array:
    """``x / y`` where ``y != 0``, ``0`` where ``y == 0``; finite gradients at ``y = 0``."""
    nonzero = y != 0
    return jnp.where(nonzero, x / jnp.where(nonzero, y, 1.0), 0.0).astype(jnp.result_type(x, y))


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
    """Euclidean norm ``sqrt(sum(x^2))`` with the safe `sqrt`: gradient 0 at the zero vector."""
    return sqrt(jnp.sum(x * x, axis=axis, keepdims=keepdims))

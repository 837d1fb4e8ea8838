"""Soft elementwise comparisons; each returns a SoftBool in [0, 1].

``greater = sigmoidal(x - y - eps)``, ``greater_equal = sigmoidal(x - y + eps)``; the
small ``eps`` decides the value at equality as softness goes to 0. Equality tests use
the soft absolute difference (Paulus et al. 2026, arXiv:2603.08824).
"""

import jax.numpy as jnp
from jax import Array

from .sigmoidal import sigmoidal, softabs


def greater(x: Array, y: Array, softness: float | Array, mode: str, epsilon: float) -> Array:
    """Soft ``x > y``."""
    return sigmoidal(x - y - epsilon, softness, mode)


def greater_equal(x: Array, y: Array, softness: float | Array, mode: str, epsilon: float) -> Array:
    """Soft ``x >= y``."""
    return sigmoidal(x - y + epsilon, softness, mode)


def less(x: Array, y: Array, softness: float | Array, mode: str, epsilon: float) -> Array:
    """Soft ``x < y`` = ``1 - greater_equal(x, y)``."""
    return 1.0 - greater_equal(x, y, softness, mode, epsilon)


def less_equal(x: Array, y: Array, softness: float | Array, mode: str, epsilon: float) -> Array:
    """Soft ``x <= y`` = ``1 - greater(x, y)``."""
    return 1.0 - greater(x, y, softness, mode, epsilon)


def _within(
    distance: Array, tolerance: Array | float, softness: float | Array, mode: str, epsilon: float
) -> Array:
    """Soft ``distance <= tolerance`` rescaled to [0, 1] for a non-negative distance.

    ``less_equal(d, t)`` lies in [0, 1/2] once ``d >= t`` and the soft distance is
    never below the tolerance's soft value at 0, so ``2 *`` maps it onto [0, 1]; the
    final clip only guards the last bit of round-off.
    """
    value = 2.0 * less_equal(distance, tolerance, softness, mode, epsilon)
    return jnp.clip(value, 0.0, 1.0)


def equal(x: Array, y: Array, softness: float | Array, mode: str, epsilon: float) -> Array:
    """Soft ``x == y`` = ``2 less_equal(|x - y|, 0)`` with the soft abs."""
    return _within(softabs(x - y, softness, mode), 0.0, softness, mode, epsilon)


def not_equal(x: Array, y: Array, softness: float | Array, mode: str, epsilon: float) -> Array:
    """Soft ``x != y`` = ``1 - equal(x, y)``."""
    return 1.0 - equal(x, y, softness, mode, epsilon)


def isclose(
    x: Array,
    y: Array,
    softness: float | Array,
    rtol: float,
    atol: float,
    mode: str,
    epsilon: float,
) -> Array:
    """Soft ``|x - y| <= atol + rtol |y|`` (``jnp.isclose``) with soft absolute values."""
    tolerance = atol + rtol * softabs(y, softness, mode)
    return _within(softabs(x - y, softness, mode), tolerance, softness, mode, epsilon)

"""Fuzzy logic on SoftBool arrays (product t-norm), with no softness parameter.

NOT ``1 - x``; AND ``x y``; OR ``1 - (1 - x)(1 - y)``; XOR from AND/OR/NOT. The
optional geometric mean replaces the product of n terms by its n-th root, which keeps
long conjunctions from collapsing to 0.
"""

import jax.numpy as jnp
from jax import Array


def logical_not(x: Array) -> Array:
    """Soft NOT: ``1 - x``."""
    return 1.0 - x


def all(  # noqa: A001
    x: Array, axis: int | tuple[int, ...] | None, epsilon: float, use_geometric_mean: bool
) -> Array:
    """Soft ALL along ``axis``: the product (or the geometric mean) of the values."""
    if use_geometric_mean:
        return jnp.exp(jnp.mean(jnp.log(jnp.clip(x, epsilon, None)), axis=axis))
    return jnp.prod(x, axis=axis)


def any(  # noqa: A001
    x: Array, axis: int | tuple[int, ...] | None, use_geometric_mean: bool
) -> Array:
    """Soft ANY along ``axis``: ``1 - all(1 - x)``."""
    return 1.0 - all(1.0 - x, axis, 1e-10, use_geometric_mean)


def logical_and(x: Array, y: Array, use_geometric_mean: bool) -> Array:
    """Soft AND: ``x y`` (or ``sqrt(x y)`` with the geometric mean)."""
    x, y = jnp.broadcast_arrays(x, y)
    return all(jnp.stack([x, y], axis=-1), -1, 1e-10, use_geometric_mean)


def logical_or(x: Array, y: Array, use_geometric_mean: bool) -> Array:
    """Soft OR: ``1 - (1 - x)(1 - y)``."""
    x, y = jnp.broadcast_arrays(x, y)
    return any(jnp.stack([x, y], axis=-1), -1, use_geometric_mean)


def logical_xor(x: Array, y: Array, use_geometric_mean: bool) -> Array:
    """Soft XOR: ``(x AND NOT y) OR (NOT x AND y)``."""
    only_x = logical_and(x, logical_not(y), use_geometric_mean)
    only_y = logical_and(logical_not(x), y, use_geometric_mean)
    return logical_or(only_x, only_y, use_geometric_mean)

"""Argument checks and dtype promotion shared by every public wrapper.

Errors are raised while tracing (so also under `jax.jit`) and name the operation,
the argument, the bad value and the valid choices.
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array


def check_choice(op: str, argument: str, value: object, choices: Sequence[str]) -> None:
    """Raise a ValueError unless ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{op}: invalid {argument} {value!r}; valid {argument}s are {valid}")


def check_softness(op: str, softness: object) -> None:
    """Raise a ValueError when a concrete ``softness`` is not a finite positive number.

    A traced softness (a learnable temperature inside `jax.grad`/`jax.jit`) cannot be
    inspected and is accepted as it is.
    """
    if isinstance(softness, jax.core.Tracer):
        return
    try:
        values = np.asarray(softness, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{op}: softness must be a positive finite number, got {softness!r}"
        ) from error
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        shown = softness if np.ndim(softness) == 0 else values.tolist()
        raise ValueError(f"{op}: softness must be a positive finite number, got {shown!r}")


def as_inexact(*arrays: object) -> list[Array]:
    """Convert to arrays of one common floating dtype, promoting integers and booleans
    as ``jnp`` does (to the default float dtype); Python scalars stay weakly typed."""
    dtype = jnp.result_type(*arrays)
    if not jnp.issubdtype(dtype, jnp.inexact):
        dtype = jnp.result_type(dtype, float)
    return [jnp.asarray(a, dtype=dtype) for a in arrays]


def cast_softness(softness: float | Array, dtype: np.dtype) -> float | Array:
    """Keep Python floats as they are (weakly typed); cast arrays to the input dtype so
    that a float32 temperature does not promote a bfloat16 computation."""
    if isinstance(softness, int | float):
        return float(softness)
    return jnp.asarray(softness).astype(dtype)


def check_axis(
    op: str, axis: int | Sequence[int] | None, ndim: int
) -> int | tuple[int, ...] | None:
    """Canonicalise ``axis`` (an int, a sequence of ints, or None) for an array of rank
    ``ndim``; raise a ValueError naming the valid range when it is out of bounds."""
    if axis is None:
        return None
    if isinstance(axis, Sequence) and not isinstance(axis, str):
        axes = tuple(check_axis(op, a, ndim) for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"{op}: repeated axis in axis={tuple(axis)!r}")
        return axes
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
        raise ValueError(f"{op}: axis must be an int, a tuple of ints or None, got {axis!r}")
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        low, high = -max(ndim, 1), max(ndim, 1) - 1
        raise ValueError(
            f"{op}: axis {axis} is out of bounds for an array of rank {ndim}; "
            f"valid axes are {low}..{high}"
        )
    return int(axis) % max(ndim, 1)


def check_positive_int(op: str, argument: str, value: object) -> int:
    """Return ``value`` as an int, or raise a ValueError unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{op}: {argument} must be an integer >= 1, got {value!r}")
    return int(value)


def check_nonnegative_int(op: str, argument: str, value: object) -> int:
    """Return ``value`` as an int, or raise a ValueError unless it is an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{op}: {argument} must be an integer >= 0, got {value!r}")
    return int(value)


def check_finite_float(op: str, argument: str, value: object) -> None:
    """Raise a ValueError when a concrete Python number is NaN or infinite."""
    if isinstance(value, int | float) and not math.isfinite(value):
        raise ValueError(f"{op}: {argument} must be finite, got {value!r}")

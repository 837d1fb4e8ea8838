"""Argument checks and dtype promotion shared by every public wrapper.

Errors are raised while tracing (so also under `jax.jit`) and name the operation,
the argument, the bad value and the valid choices. Only concrete values are checked:
a traced softness or quantile level (a learned parameter inside `jax.jit`) cannot be
inspected and is passed on as it is.

Policies the wrappers follow (tested in `tests/validation/`):

- Integer and boolean arrays are promoted to the default float dtype, as `jnp.mean`
  promotes them; floating dtypes (bfloat16, float16, float32, float64) are kept.
- NaN inputs are not rejected (they are data, and may be traced): a NaN propagates to
  the outputs that depend on it (for an ordering operation, the row along the sorted
  axis that holds it) and never into other outputs or their gradients.
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


def check_method(op: str, method: object, mode: str, choices: Sequence[str]) -> None:
    """Raise a ValueError unless ``method`` serves ``op`` in ``mode``.

    A values-only method asked for an operation that returns a SoftIndex, and a method
    asked for a soft mode it does not implement, get messages that name the methods or
    modes that work.
    """
    from diffbio.core.soft_ops._generated.methods import METHOD_MODES, VALUES_ONLY

    if isinstance(method, str) and method not in choices and method in VALUES_ONLY:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(
            f"{op}: method {method!r} produces sorted values only and no SoftIndex, which "
            f"{op} needs; methods that give one are {valid}"
        )
    check_choice(op, "method", method, choices)
    supported = METHOD_MODES.get(method, ())
    if mode != "hard" and mode not in supported:
        valid = ", ".join(repr(m) for m in ("hard", *supported))
        raise ValueError(
            f"{op}: method {method!r} does not implement mode {mode!r}; its modes are {valid} "
            "(or choose another method)"
        )


def check_softness(op: str, softness: object) -> None:
    """Raise a ValueError when a concrete ``softness`` is not a finite positive number.

    A traced softness (a learnable temperature inside `jax.grad`/`jax.jit`) cannot be
    inspected and is accepted as it is.
    """
    if isinstance(softness, jax.core.Tracer):
        return
    if isinstance(softness, str | bytes):
        raise ValueError(f"{op}: softness must be a positive finite number, got {softness!r}")
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


def axis_length(shape: tuple[int, ...], axis: int | None) -> int:
    """The length of the axis an operation works along (the size of the flattened array
    when ``axis`` is None; ``axis`` already canonicalised by `check_axis`)."""
    if axis is None or len(shape) == 0:
        return math.prod(shape)
    return shape[axis]


def check_k(op: str, argument: str, value: object, n: int) -> int:
    """Return ``value`` as an int, or raise a ValueError unless it is an integer in
    ``[1, n]`` (``n`` the length of the axis the operation selects along)."""
    value = check_positive_int(op, argument, value)
    if value > n:
        raise ValueError(
            f"{op}: {argument} must be in [1, {n}] (the length of the axis), got {value}"
        )
    return value


def check_level(op: str, argument: str, value: object, high: float) -> None:
    """Raise a ValueError unless a concrete quantile level (``high`` = 1) or percentile
    (``high`` = 100) is a finite scalar or 1-D array in ``[0, high]``.

    A traced level cannot be inspected and is accepted as it is.
    """
    if isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, str | bytes):
        raise ValueError(
            f"{op}: {argument} must be a number or a 1-D array in [0, {high:g}], got {value!r}"
        )
    try:
        values = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{op}: {argument} must be a number or a 1-D array in [0, {high:g}], got {value!r}"
        ) from error
    if values.ndim > 1:
        raise ValueError(
            f"{op}: {argument} must be a scalar or a 1-D array, got shape {values.shape}"
        )
    if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values > high):
        shown = values.item() if values.ndim == 0 else values.tolist()
        raise ValueError(f"{op}: {argument} must lie in [0, {high:g}], got {shown!r}")


def _is_soft(index: object) -> bool:
    """A floating index is a SoftIndex; an integer or boolean one selects (as in `jnp`)."""
    return jnp.issubdtype(jnp.result_type(index), jnp.inexact)


def check_soft_index(op: str, argument: str, index: object, n: int, what: str) -> None:
    """Raise a ValueError when a SoftIndex's last dimension is not ``n``, the length of
    ``what`` (the indexed axis, or the number of choices). Hard (integer) indices follow
    the `jnp` / `lax` rules and are not checked here."""
    if not _is_soft(index):
        return
    shape = tuple(np.shape(index))
    if len(shape) == 0 or shape[-1] != n:
        raise ValueError(
            f"{op}: the SoftIndex's last axis must have the length of {what} ({n}), "
            f"got a SoftIndex of shape {shape} as {argument}"
        )


def check_soft_index_along(
    op: str, argument: str, index: object, shape: tuple[int, ...], axis: int | None
) -> None:
    """`check_soft_index` against the axis ``axis`` (canonical, or None: the flattened
    array) of an array of ``shape``."""
    what = "the flattened x" if axis is None or len(shape) == 0 else f"axis {axis} of x"
    check_soft_index(op, argument, index, axis_length(shape, axis), what)


def number_of_choices(choices: object) -> int:
    """How many arrays `choose` chooses among (a sequence, or the leading axis of an array)."""
    if isinstance(choices, list | tuple):
        return len(choices)
    return int(np.shape(choices)[0]) if np.ndim(choices) else 0


def check_soft_starts(op: str, argument: str, starts: object, shape: tuple[int, ...]) -> None:
    """Raise a ValueError unless ``starts`` holds one start per axis of an array of
    ``shape``, each SoftIndex among them of last dimension the length of its axis (an
    array of starts counts along its leading axis, as `lax.dynamic_slice` reads it)."""
    if not isinstance(starts, Sequence) and np.ndim(starts) >= 1:
        starts = list(starts)
    if not isinstance(starts, Sequence) or len(starts) != len(shape):
        got = f"{len(starts)} starts" if isinstance(starts, Sequence) else repr(starts)
        raise ValueError(
            f"{op}: {argument} must hold one start per axis of x ({len(shape)}), got {got}"
        )
    for axis, start in enumerate(starts):
        check_soft_index(op, f"{argument}[{axis}]", start, shape[axis], f"axis {axis} of x")


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

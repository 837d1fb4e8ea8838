"""Hypothesis strategies built from the catalogue rows of `tests/generated/cases.py`.

One strategy per entry draws a whole call: array arguments (shapes with n = 1, 2 and odd
sizes, ties, constants, huge and tiny values), an axis, a dtype, a softness over
1e-6 … 1e6, and every mode × method the entry declares. Shapes come from a small pool so
that jit compiles each (shape, dtype, static arguments) once and the examples after
that only change values.
"""

import os
from dataclasses import dataclass, field, replace

import numpy as np
from hypothesis import strategies as st

from tests.generated.cases import METHODS, OPS

DTYPES = ("float32", "float64", "bfloat16")
FUZZED_CATEGORIES = (
    "elementwise", "comparison", "logical", "safe_math", "selection", "sorting", "quantile"
)
SHAPES = ((1,), (2,), (5,), (3, 4))
"""Array shapes: n = 1, 2, an odd n, and a batch of rows."""

_SPECIAL = (0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, -1e-30, 1e-6, 1e30, -1e30, 3.0, -7.5)


@dataclass(frozen=True)
class Call:
    """One drawn call of a public op: arrays, static keyword arguments and the softness."""

    name: str
    dtype: str
    arrays: dict[str, np.ndarray]
    static: dict[str, object] = field(default_factory=dict)
    softness: float | np.ndarray | None = None
    rows: int | None = None
    """None for one call; else every array (and the softness) has a leading axis of this
    many independent inputs, evaluated in one vmapped call."""

    def __repr__(self) -> str:  # what a shrunk failure prints: enough to replay it
        arrays = {k: v.tolist() for k, v in self.arrays.items()}
        softness = self.softness.tolist() if isinstance(self.softness, np.ndarray) else (
            self.softness
        )
        return (
            f"Call(name={self.name!r}, dtype={self.dtype!r}, arrays={arrays!r}, "
            f"static={self.static!r}, softness={softness!r}, rows={self.rows!r})"
        )

    def row(self, i: int) -> "Call":
        """Input `i` of a batched call, as a call of its own (to replay a failure)."""
        softness = self.softness
        if isinstance(softness, np.ndarray):
            softness = float(softness[i])
        arrays = {k: v[i] for k, v in self.arrays.items()}
        return replace(self, arrays=arrays, softness=softness, rows=None)


def fuzzed_ops() -> list[str]:
    return [
        name
        for name, info in OPS.items()
        if info["category"] in FUZZED_CATEGORIES and info["conformance"] == "generic"
    ]


def _values(draw, shape: tuple[int, ...], binary: bool) -> np.ndarray:
    size = int(np.prod(shape))
    if binary:  # SoftBools: 0, 1 and probabilities in between
        element = st.one_of(st.sampled_from((0.0, 1.0)), st.floats(0.0, 1.0))
    else:
        element = st.one_of(
            st.sampled_from(_SPECIAL),
            st.floats(-1e30, 1e30, allow_nan=False, allow_infinity=False).map(float),
            st.floats(-10.0, 10.0),
        )
    kind = draw(st.sampled_from(("free", "ties", "constant")))
    if kind == "constant":
        return np.full(shape, draw(element), dtype=np.float64)
    if kind == "ties":  # a few distinct values, repeated
        pool = draw(st.lists(element, min_size=1, max_size=3))
        picks = draw(st.lists(st.integers(0, len(pool) - 1), min_size=size, max_size=size))
        return np.asarray([pool[i] for i in picks], dtype=np.float64).reshape(shape)
    return np.asarray(
        draw(st.lists(element, min_size=size, max_size=size)), dtype=np.float64
    ).reshape(shape)


SKIPPED_METHODS = tuple(filter(None, os.environ.get("FUZZ_SKIP_METHODS", "").split(",")))
"""Methods left out of the draws (`FUZZ_SKIP_METHODS=smooth_sort`), to fuzz the others
past a known open failure of one."""


def _mode_and_method(draw, info: dict) -> dict[str, object]:
    static: dict[str, object] = {}
    if info["methods"]:
        methods = [m for m in info["methods"] if m not in SKIPPED_METHODS]
        method = draw(st.sampled_from(methods))
        static["method"] = method
        modes = ["hard", *METHODS[method]["modes"]]
        static["mode"] = draw(st.sampled_from([m for m in info["modes"] if m in modes]))
    elif info["modes"]:
        static["mode"] = draw(st.sampled_from(info["modes"]))
    return static


def _values_batch(
    rng: np.random.Generator, rows: int, shape: tuple[int, ...], binary: bool
) -> np.ndarray:
    """`rows` independent arrays of `shape`, drawn like `_values`: free, tied or constant
    rows of special values, values spread over ±1e30 (log-uniform magnitude) and ±10."""
    size = int(np.prod(shape))
    if binary:
        pool = np.where(rng.random((rows, size)) < 0.3, rng.integers(0, 2, (rows, size)),
                        rng.random((rows, size)))
    else:
        special = rng.choice(np.asarray(_SPECIAL), size=(rows, size))
        wide = rng.choice((-1.0, 1.0), size=(rows, size)) * 10.0 ** rng.uniform(-30, 30, (
            rows, size))
        small = rng.uniform(-10.0, 10.0, size=(rows, size))
        which = rng.integers(0, 3, size=(rows, size))
        pool = np.choose(which, (special, wide, small))
    kind = rng.integers(0, 3, size=rows)  # 0 free, 1 ties, 2 constant
    ties = np.take_along_axis(pool, rng.integers(0, 3, size=(rows, size)) % max(size, 1), -1)
    constant = np.repeat(pool[:, :1], size, axis=1)
    out = np.where((kind == 1)[:, None], ties, np.where((kind == 2)[:, None], constant, pool))
    return out.astype(np.float64).reshape((rows, *shape))


@st.composite
def calls(draw, name: str, rows: int | None = None) -> Call:
    """A valid call of op `name` (the catalogue decides what varies).

    With `rows`, the static arguments (shape, dtype, axis, mode, method, k, q …) are
    drawn once and `rows` independent inputs and softnesses are drawn by NumPy from a
    drawn seed, for one vmapped call.
    """
    info = OPS[name]
    params = dict(zip(info["params"], info["kinds"], strict=True))
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.sampled_from(SHAPES))
    ordering = info["category"] in ("sorting", "quantile")
    static = _mode_and_method(draw, info)
    rng = None if rows is None else np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    arrays = {}
    for param in info["array_params"]:
        if param in info["fixed"]:
            arrays[param] = np.full(() if rows is None else (rows,), info["fixed"][param])
            continue
        binary = params[param] == "softbool" or info["binary_inputs"]
        arrays[param] = (
            _values(draw, shape, binary) if rng is None
            else _values_batch(rng, rows, shape, binary)
        )
    if "axis" in params and ordering:
        choices = list(range(-len(shape), len(shape)))
        static["axis"] = draw(st.sampled_from(choices if name == "top_k" else [None, *choices]))
    n = _axis_length(shape, static.get("axis"))
    for param, kind in params.items():
        if kind == "k":
            static[param] = draw(st.integers(1, n))
        elif kind == "q":
            scale = 100.0 if "percentile" in name else 1.0
            q = draw(st.one_of(st.sampled_from((0.0, 0.5, 1.0)), st.floats(0.0, 1.0)))
            static[param] = float(q * scale)
        elif kind == "bool" and param in ("descending", "keepdims"):
            static[param] = draw(st.booleans())
    softness = None
    if "softness" in params:
        softness = (
            float(10.0 ** draw(st.floats(-6.0, 6.0))) if rng is None
            else 10.0 ** rng.uniform(-6.0, 6.0, size=rows)
        )
    return Call(name=name, dtype=dtype, arrays=arrays, static=static, softness=softness,
                rows=rows)


def _axis_length(shape: tuple[int, ...], axis: int | None) -> int:
    return int(np.prod(shape)) if axis is None else shape[axis]

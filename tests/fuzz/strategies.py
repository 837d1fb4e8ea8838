"""Hypothesis strategies built from the catalogue rows of `tests/generated/cases.py`.

One strategy per entry draws a whole call: array arguments (shapes with n = 1, 2 and odd
sizes, ties, constants, huge and tiny values), an axis, a dtype, a softness over
1e-6 … 1e6, and every mode × method the entry declares. Shapes come from a small pool so
that jit compiles each (shape, dtype, static arguments) once and the examples after
that only change values.
"""

from dataclasses import dataclass, field

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
    softness: float | None = None

    def __repr__(self) -> str:  # what a shrunk failure prints: enough to replay it
        arrays = {k: v.tolist() for k, v in self.arrays.items()}
        return (
            f"Call(name={self.name!r}, dtype={self.dtype!r}, arrays={arrays!r}, "
            f"static={self.static!r}, softness={self.softness!r})"
        )


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


def _mode_and_method(draw, info: dict) -> dict[str, object]:
    static: dict[str, object] = {}
    if info["methods"]:
        method = draw(st.sampled_from(info["methods"]))
        static["method"] = method
        modes = ["hard", *METHODS[method]["modes"]]
        static["mode"] = draw(st.sampled_from([m for m in info["modes"] if m in modes]))
    elif info["modes"]:
        static["mode"] = draw(st.sampled_from(info["modes"]))
    return static


@st.composite
def calls(draw, name: str) -> Call:
    """A valid call of op `name` (the catalogue decides what varies)."""
    info = OPS[name]
    params = dict(zip(info["params"], info["kinds"], strict=True))
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.sampled_from(SHAPES))
    ordering = info["category"] in ("sorting", "quantile")
    static = _mode_and_method(draw, info)
    arrays = {}
    for param in info["array_params"]:
        if param in info["fixed"]:
            arrays[param] = np.full((), info["fixed"][param])
            continue
        binary = params[param] == "softbool" or info["binary_inputs"]
        arrays[param] = _values(draw, shape, binary)
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
        softness = float(10.0 ** draw(st.floats(-6.0, 6.0)))
    return Call(name=name, dtype=dtype, arrays=arrays, static=static, softness=softness)


def _axis_length(shape: tuple[int, ...], axis: int | None) -> int:
    return int(np.prod(shape)) if axis is None else shape[axis]

"""Valid calls of every catalogue operation, from which each rule's test breaks one argument.

`valid_args(name)` builds a valid keyword set for an op from its parameter kinds; the
selection ops, whose index arguments need shapes the generic builder cannot infer, are
listed in `SELECTION_ARGS` (a test fails when a new op has such a kind and no entry).
`traced_call(name, **args)` runs the op under `jax.jit` with every array argument traced
and the rest static, which is where the wrappers must raise: while tracing.
"""

import jax
import jax.numpy as jnp
import numpy as np

from diffbio.core import soft_ops
from diffbio.core.soft_ops._impl.sorting import KERNELS
from tests.generated.cases import METHODS, OPS

SHAPE = (2, 3)
X = jnp.asarray(np.linspace(0.1, 0.9, 6).reshape(SHAPE), dtype=jnp.float32)  # in (0, 1)
ARRAY_KINDS = ("array", "softbool", "values", "softindex")


def _uniform(*shape: int) -> jax.Array:
    return jnp.full(shape, 1.0 / shape[-1], dtype=jnp.float32)


SELECTION_ARGS = {
    "take_along_axis": lambda: {"x": X, "soft_index": _uniform(2, 1, 3), "axis": 1},
    "take": lambda: {"x": X, "soft_index": _uniform(2, 3), "axis": 1},
    "choose": lambda: {"soft_index": _uniform(3, 2), "choices": [X[0], X[1]]},
    "dynamic_index_in_dim": lambda: {"x": X, "soft_index": _uniform(3), "axis": 1},
    "dynamic_slice_in_dim": lambda: {
        "x": X, "soft_start_index": _uniform(3), "slice_size": 2, "axis": 1
    },
    "dynamic_slice": lambda: {
        "x": X, "soft_start_indices": [0, _uniform(3)], "slice_sizes": [1, 2]
    },
}


def kinds(name: str) -> dict[str, str]:
    """Parameter name -> kind, in signature order."""
    return dict(zip(OPS[name]["params"], OPS[name]["kinds"], strict=True))


def params_of_kind(kind: str) -> list[tuple[str, str]]:
    """(op, parameter) for every parameter of ``kind`` in the catalogue."""
    return [(op, p) for op in OPS for p, k in kinds(op).items() if k == kind]


def ops_with_kind(*wanted: str) -> list[str]:
    return [op for op in OPS if set(kinds(op).values()) & set(wanted)]


def valid_args(name: str) -> dict:
    """A valid keyword set for ``name``: arrays of shape (2, 3), k = 1, a mid level."""
    if name in SELECTION_ARGS:
        return SELECTION_ARGS[name]()
    args = {}
    for param, kind in kinds(name).items():
        if kind in ("array", "softbool", "values"):
            args[param] = X
        elif kind == "k":
            args[param] = 1
        elif kind == "q":
            args[param] = 50.0 if param == "p" else 0.5
        elif kind in ("softindex", "sequence"):
            raise KeyError(f"{name}: add a valid call to SELECTION_ARGS in {__file__}")
    return args


def traced_call(name: str, **args):
    """``soft_ops.<name>(**args)`` under `jax.jit`, array arguments traced; the result."""
    fn = getattr(soft_ops, name)
    base = name.removesuffix("_st")
    arrays = {k: v for k, v in args.items() if kinds(base).get(k) in ARRAY_KINDS}
    static = {k: v for k, v in args.items() if k not in arrays}
    return jax.jit(lambda arrays: fn(**arrays, **static))(arrays)


def trace_only(name: str, **args) -> None:
    """Trace ``soft_ops.<name>(**args)`` under `jax.jit` without compiling it."""
    fn = getattr(soft_ops, name)
    base = name.removesuffix("_st")
    arrays = {k: v for k, v in args.items() if kinds(base).get(k) in ARRAY_KINDS}
    static = {k: v for k, v in args.items() if k not in arrays}
    jax.jit(lambda arrays: fn(**arrays, **static)).trace(arrays)


def importable(method: str) -> bool:
    """Whether the method's kernel module exists in this checkout."""
    try:
        KERNELS[method]
    except ModuleNotFoundError:
        return False
    return True


def method_cases(categories: tuple[str, ...]) -> list[tuple[str, str]]:
    """(op, method) for every method each op of ``categories`` declares, whose kernel
    imports; each method the catalogue declares appears once its module exists."""
    return [
        (op, method)
        for op, info in OPS.items()
        if info["category"] in categories
        for method in info["methods"]
        if method in METHODS and importable(method)
    ]

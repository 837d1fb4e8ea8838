"""Input builders for the generic conformance checks, driven by the catalogue rows."""

import contextlib
import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np

from diffbio.core import soft_ops
from tests.generated.cases import OPS

TRANSITION = 5.0  # piecewise modes are exact outside [-5 softness, 5 softness]


def dtype_scope(dtype: str):
    """Context in which ``dtype`` exists: float64 needs x64 switched on."""
    return jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()


def tolerance(dtype: str) -> float:
    return {"float32": 1e-5, "float64": 1e-10, "bfloat16": 1e-2}[dtype]


def kinks(name: str, low: float, high: float) -> list[float]:
    """Points where the hard operation jumps or bends, in the probe variable."""
    info = OPS[name]
    points = list(info["kinks"])
    if info["periodic_kinks"] is not None:
        offset = info["periodic_kinks"]
        points += [n + offset for n in range(math.floor(low) - 1, math.ceil(high) + 2)]
    return sorted(points)


def probe_points(name: str, count: int, margin: float, avoid: list[float] = ()) -> np.ndarray:
    """``count`` points of the op's test domain at least ``margin`` from every kink and
    from every point in ``avoid``."""
    low, high = OPS[name]["domain"]
    grid = np.linspace(low, high, 8 * count + 1)
    bad = np.array(kinks(name, low, high) + list(avoid))
    if bad.size:
        grid = grid[np.min(np.abs(grid[:, None] - bad[None, :]), axis=1) >= margin]
    step = max(1, len(grid) // count)
    return grid[::step][:count]


def is_probe_op(name: str) -> bool:
    """Elementwise and comparison ops are probed along x (x - y for comparisons)."""
    return OPS[name]["category"] in ("elementwise", "comparison")


def array_args(name: str, t: np.ndarray, dtype: str, seed: int = 0) -> dict[str, jax.Array]:
    """The op's array arguments for probe offsets ``t`` (the soft variable)."""
    info = OPS[name]
    rng = np.random.default_rng(seed)
    args: dict[str, jax.Array] = {}
    free = [p for p in info["array_params"] if p not in info["fixed"]]
    if is_probe_op(name):
        base = rng.uniform(-2.0, 2.0, size=t.shape).round(1) if len(free) > 1 else 0.0
        values = {free[0]: base + t}
        if len(free) > 1:
            values[free[1]] = base + 0.0 * t
    else:
        low, high = info["domain"]
        values = {}
        for p in free:
            values[p] = rng.uniform(low, high, size=t.shape)
    for p, v in info["fixed"].items():
        values[p] = np.full((), v)
    for p in info["array_params"]:
        args[p] = jnp.asarray(values[p], dtype=dtype)
    return args


def binary_args(name: str, shape: tuple[int, ...], dtype: str, seed: int = 0) -> dict:
    """0/1 inputs for logic ops (and the condition of `where`)."""
    info = OPS[name]
    rng = np.random.default_rng(seed)
    args = {}
    for p in info["array_params"]:
        if info["kinds"][info["params"].index(p)] == "softbool":
            args[p] = jnp.asarray(rng.integers(0, 2, size=shape), dtype=dtype)
        else:
            args[p] = jnp.asarray(rng.normal(size=shape), dtype=dtype)
    return args


def call(name: str, args: dict, **options):
    """Call the public op with keyword arguments."""
    return getattr(soft_ops, name)(**args, **options)


def hard_function(name: str):
    module, _, attribute = OPS[name]["hard"].rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def call_hard(name: str, args: dict, **options):
    """Call the hard equivalent the catalogue names, with its argument mapping."""
    info = OPS[name]
    positional = info["hard_args"] if info["hard_args"] is not None else info["array_params"]
    values = [args[a] if a in args else float(a) for a in positional]
    keywords = {k: options.get(k, info["defaults"][k]) for k in info["hard_kwargs"]}
    return hard_function(name)(*values, **keywords)


def default_options(name: str, mode: str | None = None, softness: float | None = None) -> dict:
    info = OPS[name]
    options = {}
    if mode is not None:
        options["mode"] = mode
    if softness is not None:
        options["softness"] = softness
    return {k: v for k, v in options.items() if k in info["params"]}

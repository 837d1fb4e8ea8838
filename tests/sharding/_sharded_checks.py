"""Sharded against unsharded: values, gradients and collectives of the ordering ops.

Run in a fresh process (the device count is fixed when jax initialises):

    XLA_FLAGS=--xla_force_host_platform_device_count=8 \\
        python -m tests.sharding._sharded_checks [--cases op:method ...] [--json PATH]

For every (op, method) case, smooth mode, float32, x of shape (8, 16) with the op along
the last axis, the script compiles one function that returns the op's outputs and the
gradient `vjp(op)(w)` for fixed cotangents `w`, and runs it three ways:

- ``reference``: on one device, nothing sharded;
- ``batch``: x sharded over its batch axis, `NamedSharding(Mesh(devices, ("batch",)),
  P("batch", None))`, the cotangents likewise;
- ``sorted``: x sharded over the sorted axis itself, `P(None, "x")` (cotangents
  replicated), which XLA can only serve by moving data between devices.

It prints (or writes) one JSON object: the device count, and per case the largest
absolute difference of values and of gradients against the reference for each placement,
the collectives in each compiled program (from its HLO: kind, count, bytes moved) and
the run time of each. `--cost` instead times a larger input for a few ops (see
docs/guide/scaling-out.md).
"""

import argparse
import json
import re
import sys
import time

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from diffbio.core import soft_ops
from diffbio.core.soft_ops._impl.sorting import KERNELS
from tests.generated.cases import OPS

SHAPE = (8, 16)
CATEGORIES = ("sorting", "quantile")
COLLECTIVES = ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter")
_HLO_OP = re.compile(
    r"=\s*(?P<type>\(?[a-z0-9]+\[[0-9,]*\][^=]*?)\s+"
    r"(?P<kind>" + "|".join(COLLECTIVES) + r")(?:-start)?\("
)
_ARRAY = re.compile(r"(?P<dtype>[a-z]+[0-9]*)\[(?P<dims>[0-9,]*)\]")
_BYTES = {"f32": 4, "f64": 8, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "pred": 1, "s64": 8}
# Compiling dominates these small checks: XLA's cheap CPU pipeline is enough for numbers.
CHEAP = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def importable(method: str) -> bool:
    try:
        KERNELS[method]
    except ModuleNotFoundError:
        return False
    return True


QUICK = (
    ("sort", "smooth_sort"),
    ("rank", "softsort"),
    ("argsort", "neuralsort"),
    ("top_k", "sorting_network"),
    ("sort", "fast_soft_sort"),
    ("quantile", "ot"),
)
"""The always-run subset: every method once, and between them `sort`, `argsort`, `rank`,
`top_k` and `quantile` (in an order whose alternate cases take about equal times)."""


def quick_cases() -> list[tuple[str, str]]:
    """`QUICK`, less the methods whose optional dependency is missing."""
    available = set(all_cases())
    return [case for case in QUICK if case in available]


def all_cases() -> list[tuple[str, str]]:
    """Every (op, method) of the sorting and quantile categories whose kernel imports."""
    return [
        (op, method)
        for op, info in OPS.items()
        if info["category"] in CATEGORIES
        for method in info["methods"]
        if importable(method)
    ]


def op_function(name: str, method: str):
    """``x -> soft_ops.<name>(x, ...)`` along the last axis, smooth mode."""
    kinds = dict(zip(OPS[name]["params"], OPS[name]["kinds"], strict=True))
    extra = {}
    for param, kind in kinds.items():
        if kind == "k":
            extra[param] = 3
        elif kind == "q":
            extra[param] = 30.0 if param == "p" else 0.3
    fn = getattr(soft_ops, name)
    return lambda x: fn(x, axis=-1, mode="smooth", method=method, **extra)


def forward_and_gradient(f):
    """``(x, w) -> (f(x), vjp(f)(w))``, the outputs as a list (a `None` SoftIndex dropped)."""

    def run(x, w):
        out, pullback = jax.vjp(lambda x: [leaf for leaf in jax.tree.leaves(f(x))], x)
        (grad,) = pullback(w)
        return out, grad

    return run


def collectives(hlo: str) -> dict[str, dict[str, int]]:
    """Kind -> {count, bytes} of the collectives in an HLO module (bytes of their results)."""
    found: dict[str, dict[str, int]] = {}
    for match in _HLO_OP.finditer(hlo):
        entry = found.setdefault(match["kind"], {"count": 0, "bytes": 0})
        entry["count"] += 1
        for array in _ARRAY.finditer(match["type"]):
            dims = [int(d) for d in array["dims"].split(",") if d]
            entry["bytes"] += int(np.prod(dims, dtype=np.int64)) * _BYTES.get(array["dtype"], 4)
    return found


def _time(compiled, *args, repeats: int = 5) -> float:
    jax.block_until_ready(compiled(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
    return best


def _max_diff(a, b) -> float:
    return max(
        (float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) if np.size(x) else 0.0)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def placements(devices) -> dict[str, tuple[NamedSharding, callable]]:
    """Placement name -> (sharding of x, sharding of a cotangent leaf of rank r)."""
    batch_mesh = Mesh(np.array(devices), ("batch",))
    sorted_mesh = Mesh(np.array(devices), ("x",))
    return {
        "batch": (
            NamedSharding(batch_mesh, P("batch", None)),
            lambda ndim: NamedSharding(batch_mesh, P("batch", *([None] * (ndim - 1)))),
        ),
        "sorted": (
            NamedSharding(sorted_mesh, P(None, "x")),
            lambda ndim: NamedSharding(sorted_mesh, P()),
        ),
    }


def float32_error(run, x, w, ref_out, options) -> dict[str, float]:
    """How far the unsharded float32 result is from the same computation in float64: the
    rounding error any float32 evaluation (sharded or not) carries."""
    with jax.enable_x64(True):
        x64 = jax.device_put(x.astype(np.float64), jax.devices()[0])
        w64 = [jax.device_put(leaf.astype(np.float64), jax.devices()[0]) for leaf in w]
        out64 = run.lower(x64, w64).compile(compiler_options=options)(x64, w64)
    return {
        "values": _max_diff(ref_out[0], out64[0]),
        "gradients": _max_diff(ref_out[1], out64[1]),
    }


def check_case(name: str, method: str, x: np.ndarray, options=CHEAP, exact=True) -> dict:
    f = op_function(name, method)
    run = jax.jit(forward_and_gradient(f))
    shapes = jax.eval_shape(lambda x: jax.tree.leaves(f(x)), x)
    w = [
        np.cos(np.arange(s.size, dtype=np.float32)).reshape(s.shape).astype(s.dtype)
        for s in shapes
    ]
    one = jax.devices()[0]
    x_ref, w_ref = jax.device_put(x, one), jax.device_put(w, one)
    reference = run.lower(x_ref, w_ref).compile(compiler_options=options)
    ref_out = reference(x_ref, w_ref)
    result = {
        "reference": {
            "seconds": _time(reference, x_ref, w_ref),
            "collectives": collectives(reference.as_text()),
        }
    }
    if exact:
        result["reference"]["float32_error"] = float32_error(run, x, w, ref_out, options)
    for placement, (x_sharding, w_sharding) in placements(jax.devices()).items():
        x_sh = jax.device_put(x, x_sharding)
        w_sh = [jax.device_put(leaf, w_sharding(leaf.ndim)) for leaf in w]
        compiled = run.lower(x_sh, w_sh).compile(compiler_options=options)
        out, grad = compiled(x_sh, w_sh)
        result[placement] = {
            "values": _max_diff(out, ref_out[0]),
            "gradients": _max_diff(grad, ref_out[1]),
            "scale": float(max(np.max(np.abs(np.asarray(v))) for v in ref_out[0])),
            "gradient_scale": float(max(np.max(np.abs(np.asarray(g))) for g in ref_out[1])),
            "input_sharded": not x_sh.sharding.is_fully_replicated,
            "output_shardings": [str(leaf.sharding.spec) for leaf in out],
            "collectives": collectives(compiled.as_text()),
            "seconds": _time(compiled, x_sh, w_sh),
        }
    return result


def run_checks(cases: list[tuple[str, str]]) -> dict:
    x = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    report = {"devices": jax.device_count(), "shape": list(SHAPE), "cases": {}}
    for name, method in cases:
        try:
            report["cases"][f"{name}:{method}"] = check_case(name, method, x)
        except ImportError as error:  # an optional dependency of the method is missing
            report["cases"][f"{name}:{method}"] = {"skipped": str(error)}
    return report


def run_cost(shape: tuple[int, int], cases: list[tuple[str, str]]) -> dict:
    """Run time (best of 5) and collectives of forward + gradient at a larger shape."""
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    report = {"devices": jax.device_count(), "shape": list(shape), "cases": {}}
    for name, method in cases:
        result = check_case(name, method, x, options=None, exact=False)
        report["cases"][f"{name}:{method}"] = result
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", help="op:method pairs (default: all)")
    parser.add_argument("--quick", action="store_true", help="the always-run subset only")
    parser.add_argument("--json", help="write the report here instead of stdout")
    parser.add_argument("--cost", nargs=2, type=int, metavar=("ROWS", "N"),
                        help="time the cases at this larger shape instead")
    args = parser.parse_args(argv)
    if args.cases:
        cases = [tuple(c.split(":")) for c in args.cases]
    else:
        cases = quick_cases() if args.quick else all_cases()
    report = run_cost(tuple(args.cost), cases) if args.cost else run_checks(cases)
    text = json.dumps(report, indent=1, sort_keys=True)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()

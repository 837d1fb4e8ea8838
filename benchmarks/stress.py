"""`make stress`: how far each ordering method and mode holds up in float32.

For every soft method × mode of the catalogue's methods table and for `sort` and
`rank`, at growing n (B = 4 rows of `normal(seed = n)` data, softness 0.1, the
defaults otherwise):

- forward and forward+backward (the gradient of a fixed weighted sum) in float32 and
  in float64 on the same input (the float32 input, widened);
- **finite**: every float32 value and gradient is finite;
- **float32 error**: max |f32 − f64| / max(1, max |f64|) for the values; for the
  gradient, |f32 − f64| relative to the largest float64 gradient entry, both its 99.9th
  percentile over the entries and its maximum, with the number of entries beyond
  `TOLERANCE`. The methods' Jacobians jump where two standardised inputs tie (softsort's
  anchors are hard-sorted, fast_soft_sort's blocks are chosen by comparisons), and at
  n in the thousands some inputs tie in float32 that do not in float64 (normal samples
  1e-7 apart): the gradients of those few entries differ by O(1) however exact the
  arithmetic, so the percentile is what judges the arithmetic;
- the largest n at which the case is finite, the value error and the gradient's 99.9th
  percentile error are within `TOLERANCE`;
- **error to hard** at softness 1e-3 (n = 64, float64): max |soft − hard| / max(1,
  max |hard|), how close the method gets to the exact result at a small softness.

Sizes grow while the previous size ran within the time budget (its time, scaled by
n² for the O(n²) methods and by n·log n otherwise, predicts the next). The table goes
to `benchmarks/results/stress-cpu.md` (with the raw records next to it, `.jsonl`) and
is printed.

Usage: `python -m benchmarks.stress [--sizes 64 512 4096 16384] [--max-seconds 30]`.
"""

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from codegen.load import load
from diffbio.core import soft_ops

RESULTS = Path(__file__).resolve().parent / "results"
CATALOGUE = Path(__file__).resolve().parents[1] / "spec" / "soft_ops.yaml"
SIZES = (64, 512, 4096, 16384)
OPS = ("sort", "rank")
TOLERANCE = 1e-3
"""Largest float32 error (relative to max(1, max |float64|)) that counts as holding up."""
QUADRATIC = {"softsort", "neuralsort", "ot", "smooth_sort"}
"""Methods whose cost grows like n² (the others like n log n)."""
BATCH = 4


def _inputs(n: int, dtype) -> jax.Array:
    rng = np.random.default_rng(n)
    return jnp.asarray(rng.normal(size=(BATCH, n)), dtype)


def _weights(n: int, dtype) -> jax.Array:
    return jnp.asarray(np.cos(np.arange(BATCH * n)).reshape(BATCH, n), dtype)


def _functions(op: str, method: str, mode: str, softness: float):
    def forward(x):
        return getattr(soft_ops, op)(x, axis=-1, softness=softness, mode=mode, method=method)

    def gradient(x, w):
        return jax.grad(lambda x: jnp.sum(w * forward(x)))(x)

    return jax.jit(forward), jax.jit(gradient)


def _error(low: np.ndarray, high: np.ndarray) -> float:
    return float(np.max(np.abs(low - high)) / max(1.0, float(np.max(np.abs(high)))))


def _measure(op: str, method: str, mode: str, n: int) -> dict:
    """Float32 against float64 at size n (values and gradients), with timings."""
    forward, gradient = _functions(op, method, mode, 0.1)
    record = {"op": op, "method": method, "mode": mode, "n": n}
    start = time.perf_counter()
    x32, w32 = _inputs(n, jnp.float32), _weights(n, jnp.float32)
    v32 = np.asarray(jax.block_until_ready(forward(x32)), np.float64)
    g32 = np.asarray(jax.block_until_ready(gradient(x32, w32)), np.float64)
    record["seconds_f32"] = time.perf_counter() - start
    again = time.perf_counter()  # a compiled call: what grows with n
    jax.block_until_ready((forward(x32), gradient(x32, w32)))
    record["seconds_run"] = time.perf_counter() - again
    with jax.enable_x64(True):
        forward, gradient = _functions(op, method, mode, 0.1)
        x64, w64 = jnp.asarray(x32, jnp.float64), jnp.asarray(w32, jnp.float64)
        v64 = np.asarray(forward(x64))
        g64 = np.asarray(gradient(x64, w64))
    record["seconds"] = time.perf_counter() - start
    record["finite"] = bool(np.all(np.isfinite(v32)) and np.all(np.isfinite(g32)))
    record["value_error"] = _error(v32, v64) if record["finite"] else math.inf
    gap = np.abs(g32 - g64) / max(float(np.max(np.abs(g64))), 1e-30)
    finite = record["finite"]
    record["grad_error_max"] = float(np.max(gap)) if finite else math.inf
    record["grad_error"] = float(np.quantile(gap, 0.999)) if finite else math.inf
    record["grad_entries_off"] = int(np.sum(gap > TOLERANCE)) if finite else gap.size
    record["grad_entries"] = int(gap.size)
    record["ok"] = (
        record["finite"]
        and record["value_error"] <= TOLERANCE
        and record["grad_error"] <= TOLERANCE
    )
    return record


def _hard_error(op: str, method: str, mode: str) -> float:
    """max |soft − hard| / max(1, max |hard|) at softness 1e-3, n = 64, float64."""
    with jax.enable_x64(True):
        x = _inputs(64, jnp.float64)
        soft = getattr(soft_ops, op)(x, axis=-1, softness=1e-3, mode=mode, method=method)
        hard = getattr(soft_ops, op)(x, axis=-1, mode="hard")
        return _error(np.asarray(soft), np.asarray(hard))


def _next_seconds(record: dict, n_next: int) -> float:
    """Predicted seconds at `n_next`: the compiled calls (float32 and float64, about
    twice the float32 run) scaled by the method's cost, plus compiling as at n."""
    n = record["n"]
    if record["method"] in QUADRATIC:
        scale = (n_next / n) ** 2
    else:
        scale = (n_next * math.log2(n_next)) / (n * math.log2(n))
    run = 2.0 * record.get("seconds_run", record["seconds"] / 2.0)
    return max(record["seconds"] - run, 0.0) + run * scale


def run(
    sizes: list[int],
    max_seconds: float,
    methods: list[str] | None = None,
    modes: list[str] | None = None,
) -> list[dict]:
    catalogue = load(CATALOGUE)
    rows = []
    for spec in catalogue.methods:
        if methods and spec.name not in methods:
            continue
        for mode in spec.modes:
            if modes and mode not in modes:
                continue
            for op in OPS:
                row = {"op": op, "method": spec.name, "mode": mode, "sizes": []}
                for n in sizes:
                    previous = row["sizes"][-1] if row["sizes"] else None
                    if previous and _next_seconds(previous, n) > max_seconds:
                        row["stopped"] = (
                            f"n = {n} skipped: about {_next_seconds(previous, n):.0f} s "
                            f"predicted from n = {previous['n']}"
                        )
                        break
                    record = _measure(op, spec.name, mode, n)
                    row["sizes"].append(record)
                    print(
                        f"{op:5s} {spec.name:16s} {mode:6s} n={n:6d} "
                        f"finite={record['finite']} value {record['value_error']:.1e} "
                        f"grad {record['grad_error']:.1e} ({record['seconds']:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
                row["hard_error"] = _hard_error(op, spec.name, mode)
                rows.append(row)
    return rows


def _largest(row: dict) -> str:
    good = [r["n"] for r in row["sizes"] if r["ok"]]
    tried = [r["n"] for r in row["sizes"]]
    if not good:
        return "none"
    # every size tried holds: the limit lies beyond the sizes tried
    return f"≥ {max(good)}" if max(good) == max(tried) else str(max(good))


def table(rows: list[dict], sizes: list[int]) -> str:
    lines = [
        "# Numerical stress: float32 against float64, and the distance to hard",
        "",
        f"B = {BATCH} rows of normal(seed = n) data, softness 0.1 (default standardize); "
        f"forward and the gradient of a fixed weighted sum, float32 against float64 on the "
        f"same (float32) input. Holds = finite, value error ≤ {TOLERANCE:g} (relative to "
        "max(1, max |float64|)) and the gradient's 99.9th-percentile error ≤ "
        f"{TOLERANCE:g} (relative to max |float64 gradient|). Each cell: value error / "
        "gradient error at the 99.9th percentile (its maximum; entries beyond the "
        "tolerance of all B·n). The maximum is set by inputs that tie in float32 but not "
        "in float64, where the Jacobian jumps (see `benchmarks/stress.py`). Error to hard: "
        "max |soft − hard| / max(1, max |hard|) at softness 1e-3, n = 64, float64.",
        "",
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"jax {jax.__version__}, {jax.devices()[0].platform}.",
        "",
        "| op | method | mode | largest n that holds | "
        + " | ".join(f"n = {n}: value / grad error" for n in sizes)
        + " | error to hard (s = 1e-3) | note |",
        "|---|---|---|---|" + "---|" * len(sizes) + "---|---|",
    ]
    for row in rows:
        cells = []
        by_n = {r["n"]: r for r in row["sizes"]}
        for n in sizes:
            r = by_n.get(n)
            if r is None:
                cells.append("–")
            elif not r["finite"]:
                cells.append("**not finite**")
            else:
                mark = "" if r["ok"] else " ✗"
                cells.append(
                    f"{r['value_error']:.1e} / {r['grad_error']:.1e} "
                    f"({r['grad_error_max']:.1e}; {r['grad_entries_off']} of "
                    f"{r['grad_entries']}){mark}"
                )
        lines.append(
            f"| {row['op']} | {row['method']} | {row['mode']} | {_largest(row)} | "
            + " | ".join(cells)
            + f" | {row['hard_error']:.1e} | {row.get('stopped', '')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stress", description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--max-seconds", type=float, default=30.0, help="per size and case")
    p.add_argument("--methods", nargs="+", default=None)
    p.add_argument("--modes", nargs="+", default=None)
    p.add_argument("--name", default="stress-cpu")
    args = p.parse_args(argv)
    rows = run(sorted(args.sizes), args.max_seconds, args.methods, args.modes)
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = table(rows, sorted(args.sizes))
    (RESULTS / f"{args.name}.md").write_text(text)
    with (RESULTS / f"{args.name}.jsonl").open("w") as sink:
        for row in rows:
            sink.write(json.dumps(row) + "\n")
    print(text)


if __name__ == "__main__":
    main()

"""Measure one input size: our ordering operations and the peer's on the same input.

`run_size` is what one worker process does (and what the smoke test calls in-process):
it times the pure-JAX baselines, then for every (op, method, mode, pass) of the
catalogue selection prepares our function and the peer's (probe, compile, memory check,
warm-up), compares their outputs (the correctness guard), and times both. Every result
is one JSON record handed to ``sink``; the orchestrator (`benchmarks.__main__`) joins
them into the table.
"""

import contextlib
import inspect
import math
import os
import platform
import random
import re
import statistics
import sys
import threading
import time
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "spec" / "soft_ops.yaml"

BATCH = 32
K = 8
SOFTNESS = 0.1
DTYPE = jnp.float32
PASSES = ("fwd", "fwd+bwd")
DEFAULT_OPS = ("sort", "rank", "argmax", "top_k")
MAX_SECONDS = 20.0
MAX_BYTES = 8 * 2**30
COMPILE_LIMIT = 120.0
MIN_REPEATS = 5
BASELINE = "jnp.sort"
"""Timed in the same rounds as every case: the denominator of its ratios."""
MIN_SAMPLE_SECONDS = 0.001
MAX_RUN_CALLS = 50
SECONDS_PER_REPEAT = 0.01
"""Each library is sampled for at least `repeats × SECONDS_PER_REPEAT` per case (in
samples of about `MIN_SAMPLE_SECONDS`), and at least `repeats` times."""
MAX_SAMPLES = 1000
GUARD_TOL = 1e-3
# Growth of one call with n (exponent of n) used to extrapolate from the smaller size;
# conservative (an over-estimate only skips what is already close to the budget).
EXPONENT = {
    "softsort": 2.0,
    "neuralsort": 2.0,
    "sorting_network": 1.3,
    "fast_soft_sort": 1.3,
    "smooth_sort": 2.0,
    "ot": 2.0,
}
# Statuses that mean "not measured because it would be too slow or too large": a larger
# n of the same case is skipped without trying.
TOO_BIG = {
    "skip-time": "skipped for time",
    "skip-memory": "skipped for memory",
    "timeout": "stopped by the time limit",
    "crash": "ended by a crash",
}
WATCHDOG_EXIT = 75  # exit status of a worker ended by its watchdog


# ---------------------------------------------------------------------------- catalogue


def catalogue_ops() -> dict[str, Any]:
    """The ordering operations of the catalogue (those with a `method`), by name."""
    from codegen.load import load

    return {
        op.name: op
        for op in load(CATALOGUE).ops
        if op.methods and op.category in ("sorting", "quantile")
    }


def all_methods() -> tuple[str, ...]:
    """Every method the catalogue schema knows, in its order."""
    from codegen.model import METHODS

    return METHODS


def call_kwargs(spec, method: str, mode: str, n: int) -> dict[str, Any]:
    """Keyword arguments for ``spec``'s operation, every one given explicitly (so that a
    default that differs between the libraries, e.g. rank's `descending`, cannot differ
    between the two calls): the catalogue's defaults, the last axis, the benchmark's
    softness, ``k`` = min(8, n), ``q`` = 0.5 (``p`` = 50 for percentiles)."""
    kwargs: dict[str, Any] = {}
    for param in spec.params:
        if param.kind in ("array", "softbool", "values", "options"):
            continue
        if param.kind == "k":
            kwargs[param.name] = min(K, n)
        elif param.kind == "q":
            kwargs[param.name] = 50.0 if param.name == "p" else 0.5
        elif param.kind in ("axis", "axes"):
            kwargs[param.name] = -1
        elif param.kind == "softness":
            kwargs[param.name] = SOFTNESS
        elif param.kind == "mode":
            kwargs[param.name] = mode
        elif param.kind == "method":
            kwargs[param.name] = method
        elif "default" in param.model_fields_set and param.default is not None:
            kwargs[param.name] = param.default
    return kwargs


def first_output(out):
    """The array a benchmark measures: the values of a (values, index) pair."""
    return out[0] if isinstance(out, tuple) else out


# ---------------------------------------------------------------------------- libraries


@dataclass
class Lib:
    """A library under test: ours (`diffbio.core.soft_ops`) or the peer."""

    name: str  # "ours" or "peer"
    label: str  # shown in the report, e.g. "softjax 0.1.1"
    module: ModuleType
    scale: float = 1.0  # multiplies every output (1 + perturbation, for the guard's test)

    def method_choices(self, op: str) -> tuple[str, ...] | None:
        """Methods the signature of ``op`` allows (None when it does not say)."""
        fn = getattr(self.module, op, None)
        if fn is None:
            return ()
        param = inspect.signature(fn).parameters.get("method")
        if param is None:
            return ()
        args = typing.get_args(param.annotation)
        return tuple(args) if args else None

    def function(self, op: str, kwargs: dict[str, Any]) -> Callable:
        """x -> the measured output of ``op`` with ``kwargs`` (those its signature takes)."""
        fn = getattr(self.module, op)
        params = inspect.signature(fn).parameters
        accepted = {k: v for k, v in kwargs.items() if k in params}
        missing = [
            name
            for name, p in list(params.items())[1:]
            if p.default is inspect.Parameter.empty and name not in accepted
        ]
        if missing:
            raise TypeError(f"{op} needs {missing}, which the benchmark does not set")
        scale = self.scale

        def f(x):
            out = first_output(fn(x, **accepted))
            return out * scale if scale != 1.0 else out

        return f


def ours_lib(scale: float = 1.0) -> Lib:
    from diffbio.core import soft_ops

    return Lib("ours", "diffbio.core.soft_ops", soft_ops, scale)


def peer_lib() -> tuple[Lib | None, str]:
    """The peer (SoftJAX), or None and the reason it is missing."""
    try:
        import softjax
    except ImportError as error:
        return None, (
            f"softjax is not installed ({error}); install the bench extra: "
            "pip install -e '.[bench]'"
        )
    version = getattr(softjax, "__version__", "?")
    return Lib("peer", f"softjax {version}", softjax), ""


def kernels_have(method: str) -> bool:
    """Whether our kernel module for ``method`` exists and imports."""
    try:
        from diffbio.core.soft_ops._impl.sorting import KERNELS

        KERNELS[method]
    except Exception:  # noqa: BLE001 - missing, or failing to import: not there
        return False
    return True


# ---------------------------------------------------------------------------- measuring


def passes_of(f: Callable, pass_: str) -> Callable:
    """The function timed for ``pass_``: f itself, or the gradient of sum(w * f(x))."""
    if pass_ == "fwd":
        return lambda x, w: f(x)

    def loss(x, w):
        return jnp.sum(w * f(x))

    return jax.grad(loss)


def weights_for(shape, dtype) -> jax.Array:
    """The fixed weights of the forward+backward loss (same for every library)."""
    size = math.prod(shape)
    return jnp.cos(jnp.arange(size, dtype=jnp.float32)).reshape(shape).astype(dtype)


def peak_bytes(compiled) -> int:
    """XLA's estimate of the memory an executable needs: arguments + outputs + temps."""
    try:
        stats = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return -1
    if stats is None:
        return -1
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes)


def short(error: BaseException, limit: int = 160) -> str:
    """One line for an error; for an error that carries a traceback (a failed host
    callback), the last exception line inside it."""
    message = str(error)
    inner = re.findall(r"^\s*([\w.]*(?:Error|Exception)\w*: .+)$", message, re.MULTILINE)
    if "Traceback" in message and inner:
        text = inner[-1].strip()
        text = (
            f"{type(error).__name__}: {text.split(':', 1)[0].rsplit('.', 1)[-1]}:"
            + (text.split(":", 1)[1])
        )
    else:
        text = f"{type(error).__name__}: {message}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Watchdog:
    """Ends the process (after recording why) when a phase runs past its limit: an XLA
    call cannot be interrupted, so the orchestrator restarts the worker instead."""

    def __init__(self, enabled: bool, sink: Callable[[dict], None]):
        self.enabled = enabled
        self.sink = sink

    @contextlib.contextmanager
    def limit(self, seconds: float, record: dict, reason: str, bounds_call: bool = False):
        """Within the block, end the process after ``seconds``; ``bounds_call``: the block
        is one call, so the timeout is a lower bound of its time."""
        if not self.enabled:
            yield
            return

        def fire():
            lower = {"ms_lower": seconds * 1e3} if bounds_call else {}
            self.sink({**record, "status": "timeout", "reason": reason, **lower})
            sys.stderr.flush()
            os._exit(WATCHDOG_EXIT)

        timer = threading.Timer(seconds, fire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()


@dataclass
class Prepared:
    """A compiled function, its arguments and (once warmed up) its first output."""

    compiled: Any
    args: tuple
    output: np.ndarray | None
    first_seconds: float
    compile_seconds: float
    peak: int


def median_times(prepared: dict[str, Prepared], repeats: int, budget: float) -> dict:
    """Per library, (median seconds, number of samples, status, reason) of its calls.

    The libraries are timed in turn, one sample each per round and in a new (seeded
    random) order each round, so that a slow spell of the machine falls on all of them
    alike and none always pays for coming first. A sample is one call, or, for calls under
    `MIN_SAMPLE_SECONDS`, the mean of a run of calls that lasts about that long (each
    call still waited for with `block_until_ready`), so that timer resolution and
    scheduling jitter do not decide sub-millisecond cases. Each library takes at least
    `repeats` samples and at least `repeats × SECONDS_PER_REPEAT` of them in all: short
    calls give many short samples, spread evenly over the rounds, so that the libraries
    alternate every millisecond or so rather than every 10 ms. A single (warm-up) call
    stands for a library whose minimum number of samples would pass ``budget``.
    """
    min_repeats = min(MIN_REPEATS, repeats)
    results: dict[str, tuple] = {}
    runs: dict[str, tuple[Prepared, int, int]] = {}
    for name, ready in prepared.items():
        if ready.first_seconds * min_repeats > budget:
            results[name] = (
                ready.first_seconds,
                1,
                "approx",
                f"one call takes {ready.first_seconds:.1f} s; {min_repeats} repeats would "
                f"pass {budget:.0f} s: single (warm-up) call",
            )
            continue
        # a second call sizes the runs (the first one may include one-off work)
        start = time.perf_counter()
        jax.block_until_ready(ready.compiled(*ready.args))
        once = max(time.perf_counter() - start, 1e-7)
        calls = int(min(MAX_RUN_CALLS, max(1, MIN_SAMPLE_SECONDS // once)))
        wanted = math.ceil(repeats * SECONDS_PER_REPEAT / (calls * once))
        runs[name] = (ready, calls, int(min(MAX_SAMPLES, max(repeats, wanted))))
    rounds = max((count for _, _, count in runs.values()), default=0)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    spent = dict.fromkeys(runs, 0.0)
    order = list(runs)
    shuffle = random.Random(0).shuffle
    for i in range(rounds):
        shuffle(order)  # no library always comes first, or right after the same one
        for name in order:
            ready, calls, count = runs[name]
            # `count` samples spread evenly over the rounds
            if (i + 1) * count // rounds == i * count // rounds:
                continue
            if spent[name] > budget and len(samples[name]) >= min_repeats:
                continue
            start = time.perf_counter()
            for _ in range(calls):
                jax.block_until_ready(ready.compiled(*ready.args))
            elapsed = time.perf_counter() - start
            spent[name] += elapsed
            samples[name].append(elapsed / calls)
    for name, times in samples.items():
        results[name] = (statistics.median(times), len(times), "ok", "")
    return results


def median_time(ready: Prepared, repeats: int, budget: float):
    """`median_times` of one function."""
    return median_times({"one": ready}, repeats, budget)["one"]


# ---------------------------------------------------------------------------- one size


@dataclass
class Config:
    """What a worker measures (filters already resolved)."""

    ops: list[str]
    methods: list[str]
    modes: list[str]
    passes: list[str] = field(default_factory=lambda: list(PASSES))
    repeats: int = 7
    max_seconds: float = MAX_SECONDS
    max_bytes: int = MAX_BYTES
    compile_limit: float = COMPILE_LIMIT
    baselines: bool = True
    peer_alone: bool = False  # also time the peer where ours does not run the case
    watchdog: bool = False
    progress: bool = True


def machine_info() -> dict[str, Any]:
    """The backend the results belong to: CPU model and cores, or the accelerator."""
    device = jax.devices()[0]
    info: dict[str, Any] = {
        "platform": device.platform,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
    }
    info["device"] = info["cpu"] if device.platform == "cpu" else device.device_kind
    return info


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def case_key(record: dict) -> tuple:
    return (
        record["op"],
        record["method"],
        record["mode"],
        record["n"],
        record["pass"],
        record["lib"],
    )


def inputs(n: int) -> jax.Array:
    """The (B, n) float32 input of size n, the same for every library."""
    return jnp.asarray(np.random.default_rng(n).normal(size=(BATCH, n)), DTYPE)


def baseline_functions(n: int) -> dict[tuple[str, str], Callable]:
    k = min(K, n)
    sort = lambda x: jnp.sort(x, axis=-1)
    top = lambda x: lax.top_k(x, k)[0]
    return {
        ("jnp.sort", "fwd"): sort,
        ("jnp.sort", "fwd+bwd"): sort,
        ("jnp.argsort", "fwd"): lambda x: jnp.argsort(x, axis=-1),
        ("lax.top_k", "fwd"): top,
        ("lax.top_k", "fwd+bwd"): top,
    }


def estimate(prior: list[dict], record: dict, max_seconds: float, repeats: int):
    """A skip reason when the smaller sizes say one call of this case would pass the time
    budget (a call within it is run, and timed once if the repeats would not fit)."""
    same = [
        r
        for r in prior
        if r.get("kind") == "case"
        and (r["op"], r["method"], r["mode"], r["pass"], r["lib"])
        == (record["op"], record["method"], record["mode"], record["pass"], record["lib"])
        and r["n"] < record["n"]
    ]
    for r in sorted(same, key=lambda r: r["n"]):
        if r["status"] in TOO_BIG:
            return "skip-time", f"the same case at n = {r['n']} was {TOO_BIG[r['status']]}"
    timed = [r for r in same if r["status"] in ("ok", "approx") and r.get("ms")]
    if not timed:
        return None
    last = max(timed, key=lambda r: r["n"])
    exponent = EXPONENT.get(record["method"], 2.0)
    seconds = last["ms"] / 1e3 * (record["n"] / last["n"]) ** exponent
    if seconds > max_seconds:
        return "skip-time", (
            f"estimated {seconds:.1f} s a call (n = {last['n']}: {last['ms']:.0f} ms, "
            f"× (n ratio)^{exponent:g})"
        )
    return None


def run_size(
    n: int,
    config: Config,
    libs: list[Lib],
    sink: Callable[[dict], None],
    prior: Iterable[dict] = (),
) -> list[dict]:
    """Measure every selected case at size n; returns (and sinks) the records. ``prior``
    holds the records of smaller sizes (for the time estimates) and of this size from an
    earlier, interrupted worker (those cases are not measured again)."""
    prior = list(prior)
    done = {case_key(r): r for r in prior if r.get("kind") == "case" and r["n"] == n}
    records: list[dict] = []

    def emit(record: dict) -> None:
        records.append(record)
        sink(record)

    watchdog = Watchdog(config.watchdog, sink)
    emit(
        {
            "kind": "meta",
            "n": n,
            "pid": os.getpid(),
            **machine_info(),
            "libs": {lib.name: lib.label for lib in libs},
        }
    )
    x = inputs(n)

    # Baselines first. jnp.sort is timed again in the rounds of every case, and that case's
    # ratios divide by its time there; this one stands for cases that are not timed.
    base_ms: dict[str, float] = {}
    base_ready: dict[str, Prepared] = {}
    for (name, pass_), fn in baseline_functions(n).items():
        if pass_ not in config.passes or (name != "jnp.sort" and not config.baselines):
            continue
        ready = compile_and_warm(fn, pass_, x)
        seconds, count, _, _ = median_time(ready, config.repeats, math.inf)
        if name == "jnp.sort":
            base_ms[pass_] = seconds * 1e3
            base_ready[pass_] = ready
        emit(
            {
                "kind": "baseline",
                "n": n,
                "name": name,
                "pass": pass_,
                "ms": seconds * 1e3,
                "repeats": count,
                "compile_s": ready.compile_seconds,
                "peak_bytes": ready.peak,
                "pid": os.getpid(),
            }
        )

    specs = catalogue_ops()
    cases = [
        (op, method, mode, pass_)
        for op in config.ops
        for method in config.methods
        for mode in config.modes
        for pass_ in config.passes
    ]
    bar = progress(cases, f"n={n}", config.progress)
    said: set[str] = set()

    def note(text: str) -> None:
        if text not in said:
            said.add(text)
            bar.write(text)

    for op, method, mode, pass_ in bar:
        base = {
            "kind": "case",
            "op": op,
            "method": method,
            "mode": mode,
            "n": n,
            "pass": pass_,
            "pid": os.getpid(),
            "base_ms": base_ms.get(pass_),
        }
        prepared: dict[str, Prepared] = {}
        ours_missing = False
        for lib in libs:
            record = {**base, "lib": lib.name}
            if case_key(record) in done:
                ours_missing |= lib.name == "ours" and done[case_key(record)]["status"] == (
                    "unsupported"
                )
                continue
            if lib.name != "ours" and ours_missing and not config.peer_alone:
                outcome = ("unsupported", "not timed where ours does not run (--peer-alone)")
            else:
                outcome = prepare(
                    lib, specs.get(op), record, x, config, prior + records, watchdog, sink
                )
            if lib.name == "ours" and isinstance(outcome, tuple):
                ours_missing = outcome[0] == "unsupported"
            if isinstance(outcome, Prepared):
                prepared[lib.name] = outcome
                continue
            status, reason, *extra = outcome
            emit({**record, "status": status, "reason": reason, **(extra[0] if extra else {})})
            if lib.name != "ours" and ours_missing:
                continue  # said once for ours
            if status == "unsupported":
                note(f"skip {lib.name} {op} {method}: {reason}")
            else:
                note(f"skip {lib.name} {op} {method} {mode} n={n} {pass_}: {reason}")

        # The correctness guard, before anything is timed.
        delta = flagged = None
        if "ours" in prepared and "peer" in prepared:
            delta, flagged = guard(prepared["ours"].output, prepared["peer"].output)
            if flagged:
                note(
                    f"guard: {op} {method} {mode} n={n} {pass_}: max |Δ| = {delta:.3g} "
                    "between ours and the peer"
                )

        rounds = dict(prepared)
        if prepared and pass_ in base_ready:
            rounds[BASELINE] = base_ready[pass_]
        timings = median_times(rounds, config.repeats, config.max_seconds)
        if BASELINE in timings:
            base = {**base, "base_ms": timings[BASELINE][0] * 1e3}
        for name, ready in prepared.items():
            seconds, count, status, reason = timings[name]
            if status == "approx":
                note(f"{name} {op} {method} {mode} n={n} {pass_}: {reason}")
            emit(
                {
                    **base,
                    "lib": name,
                    "status": status,
                    "reason": reason,
                    "ms": seconds * 1e3,
                    "repeats": count,
                    "compile_s": ready.compile_seconds,
                    "peak_bytes": ready.peak,
                    "finite": bool(np.all(np.isfinite(ready.output))),
                    "delta": delta,
                    "delta_flag": flagged,
                }
            )
    bar.close()
    return records


class _Quiet:
    """Stands in for a tqdm bar when progress is off or tqdm is missing."""

    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)

    def write(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def progress(items, desc: str, enabled: bool):
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            print("(install tqdm for a progress bar)", file=sys.stderr)
        else:
            bar = tqdm(items, desc=desc, unit="case", file=sys.stderr, dynamic_ncols=True)
            write = bar.write
            bar.write = lambda text: write(text, file=sys.stderr)
            return bar
    return _Quiet(items)


def guard(ours: np.ndarray, peer: np.ndarray) -> tuple[float, bool]:
    """(max |ours - peer|, whether it is over the tolerance); the tolerance is 1e-3,
    relative to the output's magnitude where that is above 1 (ranks reach n, and the
    float32 spacing at 4096 is already 5e-4)."""
    if ours.shape != peer.shape:
        return math.inf, True
    diff = np.abs(ours.astype(np.float64) - peer.astype(np.float64))
    if not np.all(np.isfinite(diff)):
        return math.nan, True
    delta = float(diff.max()) if diff.size else 0.0
    scale = max(1.0, float(np.max(np.abs(peer))) if peer.size else 1.0)
    return delta, delta > GUARD_TOL * scale


def compile_and_warm(
    f: Callable, pass_: str, x, watchdog=None, record=None, config: Config | None = None
) -> Prepared:
    """Compile the ``pass_`` of ``f`` for ``x`` and run it once (under the watchdog)."""
    limits = config or Config([], [], [])
    guard_ = watchdog or Watchdog(False, lambda record: None)
    timed = passes_of(f, pass_)
    w = weights_for(jax.eval_shape(f, x).shape, x.dtype)
    with guard_.limit(
        limits.compile_limit, record, f"compiling took over {limits.compile_limit:g} s"
    ):
        start = time.perf_counter()
        compiled = jax.jit(timed).lower(x, w).compile()
        compile_seconds = time.perf_counter() - start
    peak = peak_bytes(compiled)
    ready = Prepared(compiled, (x, w), None, math.nan, compile_seconds, peak)
    if peak > limits.max_bytes:
        return ready
    with guard_.limit(
        limits.max_seconds,
        record,
        f"the first call ran over {limits.max_seconds:g} s",
        bounds_call=True,
    ):
        start = time.perf_counter()
        output = jax.block_until_ready(compiled(x, w))
        ready.first_seconds = time.perf_counter() - start
    ready.output = np.asarray(output)
    return ready


def prepare(lib, spec, record, x, config, history, watchdog, sink):
    """A `Prepared` function, or (status, reason) when it is not measured."""
    op, method, mode, n, pass_ = (record[k] for k in ("op", "method", "mode", "n", "pass"))
    if spec is None:
        return "unsupported", f"{op} is not an ordering operation of the catalogue"
    if lib.name == "ours":
        if method not in spec.methods:
            return "unsupported", f"the catalogue lists no method {method!r} for {op}"
        if mode not in spec.soft_modes:
            return "unsupported", f"the catalogue lists no mode {mode!r} for {op}"
    else:
        choices = lib.method_choices(op)
        if choices == ():
            return "unsupported", f"{lib.label} has no {op}"
        if choices is not None and method not in choices:
            return "unsupported", f"{lib.label} {op} has no method {method!r}"

    try:
        f = lib.function(op, call_kwargs(spec, method, mode, n))
        out = jax.eval_shape(f, x)
        jax.eval_shape(passes_of(f, pass_), x, weights_for(out.shape, x.dtype))
    except (ValueError, TypeError, ImportError, NotImplementedError, KeyError) as error:
        reason = short(error)
        missing = isinstance(error, ImportError) or "invalid method" in str(error)
        if lib.name == "ours" and missing and not kernels_have(method):
            reason += " (no kernel in sorting.KERNELS yet)"
        return "unsupported", reason
    except Exception as error:  # noqa: BLE001 - a library that fails to trace is a result
        return "error", short(error)

    skip = estimate(history, record, config.max_seconds, config.repeats)
    if skip is not None:
        return skip
    same_fwd = [
        r
        for r in history
        if r.get("kind") == "case"
        and r["n"] == n
        and r["pass"] == "fwd"
        and (r["op"], r["method"], r["mode"], r["lib"]) == (op, method, mode, lib.name)
    ]
    too_big = [r for r in same_fwd if r["status"] in TOO_BIG]
    if pass_ != "fwd" and too_big:
        # Backward includes the forward: its first call is at least as long.
        bound = {"ms_lower": too_big[-1]["ms_lower"]} if too_big[-1].get("ms_lower") else {}
        return "skip-time", "the forward pass alone was over the budget", bound

    sink({**record, "kind": "start"})
    try:
        ready = compile_and_warm(f, pass_, x, watchdog, record, config)
    except Exception as error:  # noqa: BLE001 - a failing library is a result, not a crash
        return "error", short(error)
    if ready.output is None:
        return "skip-memory", (
            f"needs {ready.peak / 2**30:.1f} GiB (memory_analysis) > "
            f"{config.max_bytes / 2**30:.0f} GiB"
        )
    return ready

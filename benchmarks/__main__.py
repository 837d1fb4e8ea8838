"""`make bench`: our soft ordering operations against SoftJAX and hard `jnp`, side by side.

For B = 32 rows of float32 and each n, every (operation, method, mode) of the catalogue
selection is run by both libraries on the same input, forward and forward+backward (the
gradient of a fixed weighted sum of the output), jit-compiled, warmed up and timed with
`block_until_ready` (median of the repeats). Each size runs in its own worker process,
which also times `jnp.sort` (the denominator of every ratio), `jnp.argsort` and
`lax.top_k`. Before timing, our output is compared with the peer's (max |Δ|, flagged
over 1e-3). Cases that would take over 20 s or need over 8 GiB are skipped with the
reason. The table, the targets of the issue and a log-log plot are written to
`benchmarks/results/` and the table is printed. See `benchmarks/README.md`.
"""

import argparse
import importlib.metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

from benchmarks import harness, report

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (64, 512, 4096, 32768)
MODES = ("smooth", "c0", "c1", "c2")
MAX_RESTARTS = 200  # each restart records one more case, so this ends
WATCHDOG_EXIT = harness.WATCHDOG_EXIT


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="row lengths n")
    p.add_argument(
        "--repeats",
        type=int,
        default=7,
        help="least samples per library and case (median); also sampled for repeats x 10 ms",
    )
    p.add_argument(
        "--ops",
        nargs="+",
        default=list(harness.DEFAULT_OPS),
        help="operations (catalogue names), or 'all' for every ordering operation",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="methods (default: every method of the catalogue schema)",
    )
    p.add_argument("--modes", nargs="+", default=list(MODES), help="soft modes")
    p.add_argument("--passes", nargs="+", default=list(harness.PASSES), choices=harness.PASSES)
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "gpu"),
        default="auto",
        help="JAX backend of the workers (auto: JAX's default)",
    )
    p.add_argument("--no-peer", action="store_true", help="measure ours only")
    p.add_argument(
        "--peer-alone", action="store_true", help="also time the peer on cases ours does not run"
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=harness.MAX_SECONDS,
        help="time budget of one case (and limit of its first call)",
    )
    p.add_argument(
        "--max-gib",
        type=float,
        default=harness.MAX_BYTES / 2**30,
        help="memory limit of one case (memory_analysis)",
    )
    p.add_argument("--name", default=None, help="results file stem (default from the run)")
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the records of an interrupted run with the same name",
    )
    p.add_argument(
        "--in-process", action="store_true", help="measure every size in this process (debugging)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="write the report and plot again from the records of an earlier run",
    )
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--records", type=Path, default=None, help=argparse.SUPPRESS)
    return p


def resolve(args: argparse.Namespace) -> None:
    """Check the filters against the catalogue; fill the method list."""
    ops = harness.catalogue_ops()
    if args.ops == ["all"]:
        args.ops = list(ops)
    unknown = [op for op in args.ops if op not in ops]
    if unknown:
        sys.exit(f"unknown operation(s) {unknown}; ordering operations: {', '.join(ops)}")
    methods = harness.all_methods()
    args.methods = args.methods or list(methods)
    unknown = [m for m in args.methods if m not in methods]
    if unknown:
        sys.exit(f"unknown method(s) {unknown}; methods: {', '.join(methods)}")
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        sys.exit(f"unknown mode(s) {unknown}; soft modes: {', '.join(MODES)}")


def config_of(args: argparse.Namespace, watchdog: bool) -> harness.Config:
    return harness.Config(
        ops=args.ops,
        methods=args.methods,
        modes=args.modes,
        passes=args.passes,
        repeats=args.repeats,
        max_seconds=args.max_seconds,
        max_bytes=int(args.max_gib * 2**30),
        peer_alone=args.peer_alone,
        watchdog=watchdog,
        progress=not args.no_progress,
    )


def libraries(no_peer: bool) -> list[harness.Lib]:
    libs = [harness.ours_lib()]
    if not no_peer:
        peer, why = harness.peer_lib()
        if peer is None:
            print(f"peer not measured: {why}", file=sys.stderr)
        else:
            libs.append(peer)
    return libs


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line cut by a killed worker
    return records


def appender(path: Path):
    def sink(record: dict) -> None:
        with path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    return sink


def worker(args: argparse.Namespace) -> None:
    """One size, in this process, appending records to --records."""
    # SoftJAX's OT asks for float64 without x64 (and gets float32): said once, not per case.
    warnings.filterwarnings("once", message="Explicitly requested dtype float64")
    sink = appender(args.records)
    harness.run_size(
        args.worker,
        config_of(args, watchdog=True),
        libraries(args.no_peer),
        sink,
        prior=read_records(args.records),
    )


def worker_command(args: argparse.Namespace, n: int, records: Path) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "benchmarks",
        "--worker",
        str(n),
        "--records",
        str(records),
        "--repeats",
        str(args.repeats),
        "--ops",
        *args.ops,
        "--methods",
        *args.methods,
        "--modes",
        *args.modes,
        "--passes",
        *args.passes,
        "--max-seconds",
        str(args.max_seconds),
        "--max-gib",
        str(args.max_gib),
    ]
    if args.no_peer:
        command.append("--no-peer")
    if args.peer_alone:
        command.append("--peer-alone")
    if args.no_progress:
        command.append("--no-progress")
    return command


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def run_worker(args: argparse.Namespace, n: int, records: Path) -> None:
    """Run size n in a fresh process; after a crash or a watchdog exit, record what was
    running and start again from the next case."""
    env = dict(os.environ)
    if args.device != "auto":
        # the GPU runs keep a CPU backend too: SoftJAX's ot evaluates through pure_callback
        env["JAX_PLATFORMS"] = "cuda,cpu" if args.device == "gpu" else "cpu"
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    for _ in range(MAX_RESTARTS):
        before = len(read_records(records))
        code = subprocess.call(worker_command(args, n, records), cwd=root, env=env)
        if code == 0:
            return
        fresh = read_records(records)[before:]
        if code == WATCHDOG_EXIT:  # the worker recorded the timeout itself
            print(f"n={n}: restarting the worker after a timeout", file=sys.stderr)
            continue
        # Killed from outside: the case it was preparing is the last one it started
        # (others it had prepared are measured again by the next worker).
        finished = {harness.case_key(r) for r in fresh if r.get("kind") == "case"}
        starts = [r for r in fresh if r.get("kind") == "start" and r["n"] == n]
        if not starts or harness.case_key(starts[-1]) in finished:
            print(
                f"n={n}: the worker failed ({describe_exit(code)}) outside a case; "
                "giving up on this size",
                file=sys.stderr,
            )
            return
        last = starts[-1]
        reason = f"worker {describe_exit(code)} during this case (out of memory?)"
        appender(records)({**last, "kind": "case", "status": "crash", "reason": reason})
        print(
            f"n={n}: {last['lib']} {last['op']} {last['method']} {last['mode']} "
            f"{last['pass']}: {reason}; restarting",
            file=sys.stderr,
        )
    print(f"n={n}: gave up after {MAX_RESTARTS} restarts", file=sys.stderr)


def default_name(args: argparse.Namespace, platform: str) -> str:
    parts = ["ordering", platform, *map(str, args.sizes)]
    if args.ops != list(harness.DEFAULT_OPS):
        parts += args.ops
    if args.methods != list(harness.all_methods()):
        parts += args.methods
    if args.modes != list(MODES):
        parts += args.modes
    if args.passes != list(harness.PASSES):
        parts += [p.replace("+", "") for p in args.passes]
    return "-".join(parts)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    resolve(args)
    if args.worker is not None:
        worker(args)
        return

    platform = args.device if args.device != "auto" else default_platform()
    name = args.name or default_name(args, platform)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    records_path = args.results_dir / f"{name}.jsonl"
    if args.report_only:
        if not records_path.exists():
            sys.exit(f"no records at {records_path}; give the options (or --name) of that run")
        write_report(args, name, read_records(records_path))
        return
    if not args.resume:
        records_path.write_text("")
    peer_version = installed_version("softjax")
    print(
        f"{name}: B = {harness.BATCH}, float32, sizes {args.sizes}, repeats {args.repeats}; "
        f"peer {'softjax ' + peer_version if peer_version else 'not installed'}",
        file=sys.stderr,
    )
    started = time.perf_counter()
    if args.in_process:
        sink = appender(records_path)
        libs = libraries(args.no_peer)
        for n in sorted(args.sizes):
            harness.run_size(
                n, config_of(args, watchdog=False), libs, sink, prior=read_records(records_path)
            )
    else:
        for n in sorted(args.sizes):
            run_worker(args, n, records_path)
    appender(records_path)({"kind": "run", "wall_s": time.perf_counter() - started})
    write_report(args, name, read_records(records_path))


def write_report(args: argparse.Namespace, name: str, records: list[dict]) -> None:
    """The Markdown report (printed too) and the plot of ``records``."""
    runs = [r for r in records if r.get("kind") == "run"]
    text = report.markdown(records, args, runs[-1]["wall_s"] if runs else None)
    md_path = args.results_dir / f"{name}.md"
    md_path.write_text(text)
    print(text)
    print(f"wrote {md_path}", file=sys.stderr)
    if not args.no_plot:
        png = report.plot(records, args.results_dir / f"{name}.png", args.ops)
        if png is not None:
            print(f"wrote {png}", file=sys.stderr)


def default_platform() -> str:
    """The backend the workers will get, without initialising one here."""
    forced = os.environ.get("JAX_PLATFORMS", "").split(",")[0].strip()
    if forced:
        return "gpu" if forced in ("cuda", "gpu", "rocm") else forced
    return "gpu" if importlib.util.find_spec("jax_cuda12_plugin") else "cpu"


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()

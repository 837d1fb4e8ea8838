"""Turn the JSON records of a run into the Markdown report, the target check and the plot."""

import math
from collections import defaultdict
from pathlib import Path

from benchmarks import harness

OK = ("ok", "approx")
FWDBWD = "fwd+bwd"


# ---------------------------------------------------------------------------- joining


def latest(records: list[dict], kind: str) -> list[dict]:
    """The last record of ``kind`` per key (a resumed run may repeat a case)."""
    out: dict[tuple, dict] = {}
    for record in records:
        if record.get("kind") != kind:
            continue
        if kind == "case":
            key = harness.case_key(record)
        elif kind == "baseline":
            key = (record["n"], record["name"], record["pass"])
        else:
            key = (record["n"],)
        out[key] = record
    return list(out.values())


def join(records: list[dict]) -> dict[tuple, dict[str, dict]]:
    """(op, method, mode, n, pass) -> {"ours": record, "peer": record}."""
    rows: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for record in latest(records, "case"):
        key = (record["op"], record["method"], record["mode"], record["n"], record["pass"])
        rows[key][record["lib"]] = record
    return rows


def timed(record: dict | None) -> float | None:
    """Milliseconds of a measured record, else None."""
    if record is None or record.get("status") not in OK:
        return None
    return record.get("ms")


def lower(record: dict | None) -> float | None:
    """The lower bound in ms of a call that the watchdog stopped (or of a forward+backward
    whose forward it stopped), else None."""
    if record is None or record.get("status") not in ("timeout", "skip-time"):
        return None
    return record.get("ms_lower")


Value = tuple[float, str]  # a number and "" (measured) or ">" (a lower bound)


# ---------------------------------------------------------------------------- formatting


def fmt_ms(record: dict | None) -> str:
    ms = timed(record)
    if ms is None:
        bound = lower(record)
        return "—" if bound is None else f"> {bound:.0f}"
    text = f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"
    return ("≈" + text) if record["status"] == "approx" else text


def fmt_ratio(value: Value | None) -> str:
    if value is None or not math.isfinite(value[0]):
        return "—"
    number, prefix = value
    digits = 2 if number < 10 else 1 if number < 100 else 0
    return f"{prefix}{number:.{digits}f}"


def pair(a: str, b: str) -> str:
    return f"{a} / {b}"


def fmt_compile(record: dict | None) -> str:
    if record is None or record.get("compile_s") is None:
        return "—"
    return f"{record['compile_s']:.2f}"


def fmt_mib(record: dict | None) -> str:
    if record is None or record.get("peak_bytes") in (None, -1):
        return "—"
    return f"{record['peak_bytes'] / 2**20:.1f}"


def fmt_delta(ours: dict | None) -> str:
    if ours is None or ours.get("delta") is None:
        return "—"
    delta = ours["delta"]
    text = "nan" if delta != delta else f"{delta:.1e}"
    return f"**{text}** ⚠" if ours.get("delta_flag") else text


def status_text(ours: dict | None, peer: dict | None) -> str:
    parts = []
    for name, record in (("ours", ours), ("peer", peer)):
        if record is None:
            continue
        status = record.get("status")
        if status == "ok" and record.get("finite") is False:
            parts.append(f"{name}: non-finite output")
        elif status != "ok":
            reason = record.get("reason", "").replace("|", "/")
            parts.append(f"{name}: {status}: {reason}" if reason else f"{name}: {status}")
    if ours is not None and ours.get("delta_flag"):
        parts.append("guard: outputs differ")
    return "; ".join(parts) or "ok"


def ratio(record: dict | None) -> Value | None:
    """Time over jnp.sort of the same pass, timed in the same rounds as the case."""
    if record is None or not record.get("base_ms"):
        return None
    if timed(record) is not None:
        return timed(record) / record["base_ms"], ""
    if lower(record) is not None:
        return lower(record) / record["base_ms"], ">"
    return None


def speedup(ours: dict | None, peer: dict | None) -> Value | None:
    """Peer time over ours (a lower bound when the peer's call was stopped)."""
    a = timed(ours)
    if not a:
        return None
    if timed(peer):
        return timed(peer) / a, ""
    if lower(peer):
        return lower(peer) / a, ">"
    return None


# ---------------------------------------------------------------------------- tables


def order_key(op_order: list[str], method_order: list[str]):
    modes = {"smooth": 0, "c0": 1, "c1": 2, "c2": 3}

    def key(item):
        op, method, mode, n, pass_ = item[0]
        return (
            op_order.index(op) if op in op_order else 99,
            method_order.index(method) if method in method_order else 99,
            modes.get(mode, 9),
            n,
            pass_ != "fwd",
        )

    return key


def results_table(rows, args) -> tuple[list[str], list[str]]:
    """The main table, and the lines of the cases neither library measured."""
    lines = [
        "| op | method | mode | n | pass | ours ms | peer ms | ours/jnp.sort | peer/jnp.sort "
        "| speed-up vs peer | compile s (ours / peer) | peak MiB (ours / peer) "
        "| max abs Δ vs peer | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    unmeasured: dict[tuple[str, str, str], dict[str, set]] = {}
    for (op, method, mode, n, pass_), libs in sorted(
        rows.items(), key=order_key(args.ops, args.methods)
    ):
        ours, peer = libs.get("ours"), libs.get("peer")
        if not any(r.get("status") not in ("unsupported",) for r in libs.values()):
            reason = (ours or peer or {}).get("reason", "")
            where = unmeasured.setdefault((op, method, reason), {"modes": set(), "n": set()})
            where["modes"].add(mode)
            where["n"].add(n)
            continue
        lines.append(
            f"| {op} | {method} | {mode} | {n} | {pass_} | {fmt_ms(ours)} | {fmt_ms(peer)} "
            f"| {fmt_ratio(ratio(ours))} | {fmt_ratio(ratio(peer))} "
            f"| {fmt_ratio(speedup(ours, peer))} | {pair(fmt_compile(ours), fmt_compile(peer))} "
            f"| {pair(fmt_mib(ours), fmt_mib(peer))} | {fmt_delta(ours)} "
            f"| {status_text(ours, peer)} |"
        )
    order = ["smooth", "c0", "c1", "c2"]
    skipped = [
        f"- {op} / {method} ({', '.join(sorted(w['modes'], key=order.index))}; "
        f"n = {', '.join(map(str, sorted(w['n'])))}): {reason}"
        for (op, method, reason), w in unmeasured.items()
    ]
    return lines, skipped


def baseline_table(records: list[dict]) -> list[str]:
    columns = [
        ("jnp.sort", "fwd"),
        ("jnp.sort", FWDBWD),
        ("jnp.argsort", "fwd"),
        ("lax.top_k", "fwd"),
        ("lax.top_k", FWDBWD),
    ]
    by_key = {(r["n"], r["name"], r["pass"]): r for r in latest(records, "baseline")}
    sizes = sorted({n for n, _, _ in by_key})
    lines = [
        "| n | " + " | ".join(f"{name} {p} ms" for name, p in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for n in sizes:
        cells = []
        for name, p in columns:
            record = by_key.get((n, name, p))
            cells.append(f"{record['ms']:.3g}" if record else "—")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


# ---------------------------------------------------------------------------- targets


def targets(rows, sizes: list[int]) -> list[tuple[str, str, str]]:
    """(target, measured, met) for each target of the issue, from the worst mode."""
    out: list[tuple[str, str, str]] = []

    def cases(method, op, n, pass_=FWDBWD):
        return [
            (mode, libs)
            for (o, m, mode, size, p), libs in rows.items()
            if (o, m, size, p) == (op, method, n, pass_)
        ]

    def check(target, n, values, bound, at_most, unit="×"):
        """values: (Value | None, label); at_most: the target is value <= bound."""
        if n not in sizes:
            out.append((target, f"n = {n} not in this run", "—"))
            return
        values = [(v, label) for v, label in values if v is not None]
        if not values:
            out.append((target, "not measured", "—"))
            return
        (number, prefix), label = (max if at_most else min)(values, key=lambda item: item[0][0])
        if at_most:
            met = "yes" if number <= bound and not prefix else "**no**" if number > bound else "?"
        else:
            met = "yes" if number >= bound else "**no**" if not prefix else "? (lower bound)"
        out.append((target, f"{prefix}{number:.2f}{unit} (worst: {label})", met))

    def speedups(method, op, n):
        return [
            (speedup(lb.get("ours"), lb.get("peer")), mode) for mode, lb in cases(method, op, n)
        ]

    for op in ("sort", "rank"):
        for n in (512, 4096, 32768):
            check(
                f"fast_soft_sort {op} fwd+bwd ≤ 2× jnp.sort fwd+bwd, n = {n}",
                n,
                [(ratio(lb.get("ours")), mode) for mode, lb in cases("fast_soft_sort", op, n)],
                2.0,
                at_most=True,
            )
        for n in [s for s in sizes if s >= 4096] or [4096]:
            check(
                f"fast_soft_sort {op} fwd+bwd ≥ 1.5× faster than SoftJAX, n = {n}",
                n,
                speedups("fast_soft_sort", op, n),
                1.5,
                at_most=False,
            )
    for method in ("softsort", "neuralsort"):
        for op in ("sort", "rank"):
            check(
                f"{method} {op} fwd+bwd ≥ 5× faster than SoftJAX, n = 4096",
                4096,
                speedups(method, op, 4096),
                5.0,
                at_most=False,
            )
            growth = []
            for mode, libs in cases(method, op, 4096):
                small = rows.get((op, method, mode, 512, FWDBWD), {}).get("ours")
                big = libs.get("ours")
                if timed(small) and timed(big) and small.get("peak_bytes", -1) > 0:
                    exponent = math.log(big["peak_bytes"] / small["peak_bytes"]) / math.log(8)
                    growth.append(((exponent, ""), mode))
            check(
                f"{method} {op} peak memory O(n·chunk): growth exponent 512 → 4096 ≤ 1.5",
                4096 if 512 in sizes else -1,
                growth,
                1.5,
                at_most=True,
                unit="",
            )
    check(
        "sorting_network rank fwd+bwd ≥ 100× faster than SoftJAX, n = 512",
        512,
        speedups("sorting_network", "rank", 512),
        100.0,
        at_most=False,
    )
    for method in ("ot", "smooth_sort"):
        for n in (512, 4096):
            found = [
                (f"{op} {mode}", libs.get("ours"))
                for op in ("sort", "rank")
                for mode, libs in cases(method, op, n)
            ]
            found = [(label, r) for label, r in found if r and r.get("status") != "unsupported"]
            target = f"{method} sort/rank fwd+bwd runs with finite gradients, n = {n}"
            if n not in sizes:
                out.append((target, f"n = {n} not in this run", "—"))
            elif not found:
                out.append((target, "not measured (method not available)", "—"))
            else:
                bad = [
                    f"{label}: {r['status']}" + ("" if r.get("finite", True) else ", non-finite")
                    for label, r in found
                    if r["status"] not in OK or not r.get("finite")
                ]
                out.append(
                    (
                        target,
                        "; ".join(bad) or f"{len(found)} cases, all finite",
                        "**no**" if bad else "yes",
                    )
                )
        values, peer_failed = [], []
        for op in ("sort", "rank"):
            for mode, libs in cases(method, op, 512):
                peer_fwd = rows.get((op, method, mode, 512, "fwd"), {}).get("peer")
                if timed(libs.get("ours")) is None:
                    continue
                if peer_fwd is not None and peer_fwd.get("status") == "error":
                    peer_failed.append(f"{op} {mode}")
                else:
                    values.append((speedup(libs.get("ours"), peer_fwd), f"{op} {mode}"))
        target = f"{method} fwd+bwd ≥ 3× faster than SoftJAX's forward, n = 512"
        check(target, 512, values, 3.0, at_most=False)
        if peer_failed:
            measured = out[-1][1] if values else ""
            met = out[-1][2] if values else "yes"
            note = f"SoftJAX's forward fails: {', '.join(peer_failed)}"
            out[-1] = (target, f"{measured}; {note}" if measured else note, met)
    slower = []
    both = 0
    for (op, method, mode, n, pass_), libs in rows.items():
        value = speedup(libs.get("ours"), libs.get("peer"))
        if value is None or value[1]:
            continue
        both += 1
        if value[0] < 1 / 1.1:
            slower.append((value[0], f"{op} {method} {mode} n={n} {pass_}"))
    slower.sort()
    text = f"{len(slower)} of {both} cases slower by > 10%"
    if slower:
        text += ": " + "; ".join(f"{name} ({1 / s:.2f}× slower)" for s, name in slower[:8])
        if len(slower) > 8:
            text += f"; … {len(slower) - 8} more"
    out.append(
        (
            "no case both support is slower than SoftJAX by > 10%",
            text,
            "—" if not both else ("yes" if not slower else "**no**"),
        )
    )
    return out


# ---------------------------------------------------------------------------- report


def markdown(records: list[dict], args, wall_seconds: float | None) -> str:
    metas = latest(records, "meta")
    meta = metas[-1] if metas else {}
    libs = meta.get("libs", {})
    peer = libs.get("peer", "not installed")
    rows = join(records)
    lines = [
        "# Soft ordering benchmark: diffbio.core.soft_ops vs SoftJAX "
        f"({meta.get('platform', '?')})",
        "",
        f"- Device: **{meta.get('device', '?')}** ({meta.get('platform', '?')}, "
        f"{meta.get('cores', '?')} cores visible; CPU {meta.get('cpu', '?')})",
        f"- jax {meta.get('jax', '?')}, Python {meta.get('python', '?')}, peer: {peer}; "
        "both libraries in the same process on the same jax",
        f"- B = {harness.BATCH} rows, float32, n ∈ {{{', '.join(map(str, args.sizes))}}}, "
        f"softness {harness.SOFTNESS}, standardize=True, ascending, last axis, "
        f"k = {harness.K} for top_k (its values are measured); one worker process per n",
        "- Each case: jit, compile, one warm-up call, then the median of the samples "
        "with `block_until_ready`, ours, the peer's and `jnp.sort`'s taken in turn, in a "
        "shuffled order each round; a sample is one "
        "call, or the mean of a run of calls lasting about "
        f"{harness.MIN_SAMPLE_SECONDS * 1e3:g} ms where one call is shorter; each library "
        f"takes at least {args.repeats} samples and at least "
        f"{args.repeats * harness.SECONDS_PER_REPEAT * 1e3:g} ms of them, spread evenly "
        "over the rounds; fwd+bwd is "
        "`jax.grad` of `sum(w * f(x))` for a fixed w. Ratios divide by `jnp.sort` of the "
        "same shape and pass, timed in the same rounds as the case (Baselines lists its "
        "time at the start of each worker). Peak memory is "
        "XLA's `memory_analysis()` (arguments + outputs + temporaries).",
        "- Correctness guard, before timing: max |ours − peer| on the same input (fwd: the "
        "output; fwd+bwd: the gradient); ⚠ when over 1e-3 × max(1, max |peer output|).",
        f"- Skips: a case over {args.max_seconds:g} s (estimated from the smaller n, or a "
        f"first call that runs longer) or over {args.max_gib:g} GiB; ≈ marks a time from "
        "a single call (the repeats would pass the budget).",
        f"- Run time: {wall_seconds / 60:.1f} min."
        if wall_seconds
        else "- Run time: not recorded.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    checks = targets(rows, sorted(args.sizes))
    kept = [c for c in checks if not c[1].endswith("not in this run")]
    lines += [f"| {t} | {m} | {ok} |" for t, m, ok in kept]
    if len(kept) < len(checks):
        lines += ["", f"({len(checks) - len(kept)} targets at sizes not in this run left out.)"]
    table, unmeasured = results_table(rows, args)
    lines += [
        "",
        "## Results",
        "",
        *table,
        "",
        "## Baselines (pure JAX)",
        "",
        *baseline_table(records),
    ]
    if unmeasured:
        lines += ["", "## Not measured by either library", "", *unmeasured]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- plot


def plot(records: list[dict], path: Path, op_order: list[str]) -> Path | None:
    """Time vs n (log-log): one panel per op and pass, one colour per method and mode,
    ours solid, the peer dashed, jnp.sort dotted black."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError:
        print("matplotlib is not installed: no plot")
        return None
    rows = join(records)
    ops = [op for op in op_order if any(key[0] == op for key in rows)]
    passes = [p for p in harness.PASSES if any(key[4] == p for key in rows)]
    if not ops or not passes:
        return None
    maps = ["Blues", "Oranges", "Greens", "Reds", "Purples", "Greys"]
    methods = list(harness.all_methods())
    shade = {"smooth": 0.9, "c0": 0.7, "c1": 0.55, "c2": 0.4}

    def colour(method, mode):
        cmap = plt.get_cmap(maps[methods.index(method) % len(maps)])
        return cmap(shade.get(mode, 0.6))

    fig, axes = plt.subplots(
        len(ops), len(passes), figsize=(6 * len(passes), 4 * len(ops)), squeeze=False
    )
    baselines = {
        (r["n"], r["pass"]): r["ms"] for r in latest(records, "baseline") if r["name"] == "jnp.sort"
    }
    seen = {}
    for i, op in enumerate(ops):
        for j, pass_ in enumerate(passes):
            ax = axes[i][j]
            series: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
            for (o, method, mode, n, p), libs in rows.items():
                if (o, p) != (op, pass_):
                    continue
                for lib, record in libs.items():
                    if timed(record) is not None:
                        series[(method, mode)][lib].append((n, timed(record)))
            for (method, mode), by_lib in sorted(series.items()):
                c = colour(method, mode)
                seen[(method, mode)] = c
                for lib, style in (("ours", "-"), ("peer", "--")):
                    points = sorted(by_lib.get(lib, []))
                    if points:
                        ax.plot(
                            *zip(*points, strict=True),
                            style,
                            color=c,
                            marker="o",
                            markersize=3,
                            linewidth=1.3,
                        )
            base = sorted((n, ms) for (n, p), ms in baselines.items() if p == pass_)
            if base:
                ax.plot(*zip(*base, strict=True), ":", color="black", linewidth=1.5)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            sizes = sorted({key[3] for key in rows})
            ax.set_xticks(sizes, [str(n) for n in sizes])
            ax.set_title(f"{op}, {pass_}")
            ax.set_xlabel("n")
            ax.set_ylabel("ms (B = 32)")
            ax.grid(True, which="both", alpha=0.3)
    handles = [
        Line2D([], [], color=c, label=f"{m} {mode}")
        for (m, mode), c in sorted(
            seen.items(), key=lambda kv: (methods.index(kv[0][0]), list(shade).index(kv[0][1]))
        )
    ]
    handles += [
        Line2D([], [], color="grey", linestyle="-", label="ours"),
        Line2D([], [], color="grey", linestyle="--", label="SoftJAX"),
        Line2D([], [], color="black", linestyle=":", label="jnp.sort"),
    ]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path

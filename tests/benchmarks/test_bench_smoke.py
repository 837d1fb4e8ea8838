"""Smoke test of the benchmark harness (`make bench`): one operation and method at n = 8,
one repeat, in this process; checks the table and that the correctness guard catches a
perturbed output."""

from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import harness, report
from diffbio.core import soft_ops

N = 8


def run(libs: list[harness.Lib]) -> list[dict]:
    config = harness.Config(
        ops=["sort"],
        methods=["softsort"],
        modes=["smooth"],
        repeats=1,
        baselines=False,
        progress=False,
    )
    return harness.run_size(N, config, libs, sink=lambda record: None)


def table(records: list[dict]) -> str:
    args = SimpleNamespace(
        sizes=[N],
        ops=["sort"],
        methods=["softsort"],
        repeats=1,
        max_seconds=harness.MAX_SECONDS,
        max_gib=8.0,
    )
    return report.markdown(records, args, wall_seconds=0.0)


def cases(records: list[dict], lib: str) -> dict[str, dict]:
    return {r["pass"]: r for r in records if r.get("kind") == "case" and r["lib"] == lib}


def stand_in_peer(scale: float = 1.0) -> harness.Lib:
    """Our own operations in the peer's place, so the guard is tested without SoftJAX."""
    return harness.Lib("peer", "soft_ops (stand-in)", soft_ops, scale)


@pytest.fixture(scope="module")
def perturbed() -> list[dict]:
    """Ours with every output scaled by 1.01, against the unperturbed stand-in peer."""
    return run([harness.ours_lib(scale=1.01), stand_in_peer()])


def test_the_harness_times_both_passes_and_writes_the_table(perturbed):
    for lib in ("ours", "peer"):
        timed = cases(perturbed, lib)
        assert set(timed) == {"fwd", "fwd+bwd"}
        for record in timed.values():
            assert record["status"] == "ok", record
            assert record["finite"] and record["ms"] > 0 and record["base_ms"] > 0
            assert record["peak_bytes"] > 0 and record["compile_s"] > 0
    # the ratios' jnp.sort is timed again in each case's rounds, the same for both libraries
    worker = {r["pass"]: r["ms"] for r in perturbed if r.get("kind") == "baseline"}
    for pass_, record in cases(perturbed, "ours").items():
        assert record["base_ms"] == cases(perturbed, "peer")[pass_]["base_ms"]
        assert record["base_ms"] != worker[pass_]
    text = table(perturbed)
    assert "| sort | softsort | smooth | 8 | fwd |" in text
    assert "| sort | softsort | smooth | 8 | fwd+bwd |" in text
    assert "## Targets" in text and "## Baselines (pure JAX)" in text


def test_guard_flags_a_perturbed_output(perturbed):
    for record in cases(perturbed, "ours").values():  # fwd: values, fwd+bwd: gradient
        assert record["delta"] > harness.GUARD_TOL and record["delta_flag"], record
    assert "guard: outputs differ" in table(perturbed)


def test_guard_tolerance():
    values = np.linspace(-2.0, 2.0, 16, dtype=np.float32)
    assert harness.guard(values, values) == (0.0, False)
    assert not harness.guard(values + 5e-4, values)[1]
    assert harness.guard(values + 5e-3, values)[1]
    ranks = np.arange(1.0, 4097.0, dtype=np.float32)  # 1e-3 relative above magnitude 1
    assert not harness.guard(ranks + 1.0, ranks)[1]
    assert harness.guard(ranks + 10.0, ranks)[1]
    assert harness.guard(values[:4], values)[1]  # a shape mismatch is flagged


@pytest.mark.peer
def test_softjax_agrees_on_the_same_input():
    peer, why = harness.peer_lib()
    assert peer is not None, why
    records = run([harness.ours_lib(), peer])
    timed = cases(records, "peer")
    assert {r["status"] for r in timed.values()} == {"ok"}
    for record in cases(records, "ours").values():
        assert record["delta"] is not None and not record["delta_flag"], record


def test_libraries_are_timed_in_turn_and_fast_calls_in_runs(monkeypatch):
    """`median_times` alternates the libraries round by round, in a seeded random order
    each round, times a call of 0.5 ms in runs of calls (1 ms samples) and takes
    `repeats × 10 ms` of them, spreads the three samples of a 12 ms call evenly over the
    rounds, and keeps to the budget. The harness reads a fake clock that each call
    advances by its own duration, so the counts are exact on any machine."""
    import random

    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(harness, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    calls = []

    def fake(name, seconds):
        def compiled(*args):
            calls.append(name)
            clock.now += seconds
            return np.zeros(1)

        return harness.Prepared(compiled, (), None, seconds, 0.0, 0)

    prepared = {"ours": fake("ours", 0.0005), "peer": fake("peer", 0.012)}
    timings = harness.median_times(prepared, repeats=3, budget=10.0)
    # one sizing call each, then `rounds` rounds of [a run of two calls of ours (1 ms),
    # and in three of them, evenly spaced, one call of the peer]
    # runs of 1 ms / 0.5 ms = 2 calls; 3 repeats x 10 ms of 1 ms samples = 30 rounds; the
    # peer's three samples fall in rounds 9, 19 and 29 (a third of the way apart)
    timed = calls[2:]
    run, rounds, peer_rounds = 2, 30, (9, 19, 29)
    assert (harness.MIN_SAMPLE_SECONDS, harness.SECONDS_PER_REPEAT) == (0.001, 0.01)
    assert timings["ours"][1] == rounds and timings["peer"][1] == 3
    expected, order = [], ["ours", "peer"]
    shuffle = random.Random(0).shuffle
    for i in range(rounds):
        shuffle(order)
        for name in order:
            if name == "ours":
                expected += ["ours"] * run
            elif i in peer_rounds:
                expected.append("peer")
    assert timed == expected
    assert timings["ours"][2] == "ok" and timings["peer"][2] == "ok"
    assert timings["ours"][0] == pytest.approx(0.0005)
    assert timings["peer"][0] == pytest.approx(0.012)
    # a call whose minimum number of samples would pass the budget stands alone
    slow = harness.median_times({"ours": fake("ours", 0.05)}, repeats=7, budget=0.1)
    assert slow["ours"][1:3] == (1, "approx")
    # a library stops at its first sample past the budget (0.1 s: the 9th of 12 ms) once
    # it has its minimum number of samples
    calls.clear()
    capped = harness.median_times({"ours": fake("ours", 0.012)}, repeats=20, budget=0.1)
    assert capped["ours"][1] == 9 and len(calls) == 1 + 9

"""Every ordering and quantile op gives the same values and gradients when sharded over 8
simulated CPU devices: over the batch axis (no communication at all) and over the
sorted axis itself (XLA moves the data it needs; the collectives are counted).

The device count is fixed when jax initialises, so the checks run in one subprocess
(`tests/sharding/_sharded_checks.py`) started with
`XLA_FLAGS=--xla_force_host_platform_device_count=8`, which reports per case as JSON.
`make test` runs a quick subset (every method once, between them `sort`, `argsort`,
`rank`, `top_k` and `quantile`); the slow run covers every op x method.

Tolerance: sharded and unsharded float32 results agree to 1e-6, or, where the op's
own float32 rounding error (the unsharded float32 result against the same computation
in float64) is larger, to twice that error, or to 16 float32 ulps of the largest entry
(of the values, or of the gradient). Three kinds of case need a looser bound than 1e-6:

- `rank` returns values up to n = 16, where one float32 ulp is 1.9e-6 (sorted-axis
  sharding: up to 2.9e-6 in values, 3.3e-6 in gradients for softsort and
  sorting_network);
- neuralsort (up to 2.9e-6 in values, 1.1e-5 in the gradients of `rank`): its scores
  are sums of n pairwise distances divided by the softness, so one rounding of a
  score moves the softmax by ~1e-6 and its own float32 error is 1e-6 to 1e-5. XLA
  rounds differently for a different per-device shape: the same op run row by row on
  one device, with no sharding at all, differs from the batched run by as much;
- fast_soft_sort `rank` with the sorted axis sharded: 1.5e-5 in values and 1.7e-5 in
  gradients, where the unsharded error happens to be small (5.2e-6 and 8.3e-6). The
  sharded result itself is within 1.4e-5 and 1.8e-5 of float64, on ranks up to 16
  (16 ulps: 3.1e-5). Two solvers that pool in different orders give the same
  differences, so they arise before the isotonic solve (likely in the standardisation's
  reductions over the sharded axis, whose scores are then divided by the softness).

Batch sharding of softsort and sorting_network is (nearly always) bit-identical.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.sharding._sharded_checks import all_cases, quick_cases

ROOT = Path(__file__).resolve().parents[2]
DEVICES = 8
TOLERANCE = 1e-6
ULPS = 16
"""Float32 ulps of the largest entry that a sharded result may differ by."""
# Cases ("op:method", or "*:method" for every op of a method) whose batch-sharded
# program still moves data, with the reason; the values and gradients are right, the
# communication is not needed. Remove an entry once its kernel is partitionable (the
# test fails while an entry is listed but no longer moves anything).
KNOWN_BATCH_COLLECTIVES = {
    # `lax.top_k` (the smooth softsort top_k's anchors) is not partitioned by XLA's SPMD
    # partitioner on CPU: it all-gathers the batch first.
    "top_k:softsort": "lax.top_k all-gathers the batch",
    # The isotonic-regression kernel flattens the batch into one (rows * n,) vector and
    # gathers / segment-sums with computed flat indices, which the partitioner cannot
    # keep per device: it all-gathers (9 to 11 gathers, ~5 KB at (8, 16)).
    "*:fast_soft_sort": "flat-index gathers and segment sums over the whole batch",
    # smooth_sort minimises the duals of all rows in one Newton loop (see
    # smooth_sort._solve_dual): its loop conditions test whether every row has stopped,
    # which reduces over the batch.
    "*:smooth_sort": "one Newton loop for the whole batch reduces scalars across it",
}


def known_batch_collectives(case: str) -> str | None:
    return KNOWN_BATCH_COLLECTIVES.get(case) or KNOWN_BATCH_COLLECTIVES.get(
        "*:" + case.split(":")[1]
    )
# Methods whose iterative solver stops when every row of the batch has converged: the
# loop condition is one boolean reduced across the devices at each iteration (a few
# bytes, no array data), and the only collective the batch-sharded program may have.
BATCH_CONVERGENCE_FLAG = {"ot"}


def unexpected_batch_collectives(case: str, moved: dict) -> str | None:
    """Why the batch-sharded program's collectives ``moved`` break the promise, or None."""
    method = case.split(":")[1]
    if known_batch_collectives(case):
        return None if moved else "none, yet it is listed as known: remove it from the list"
    if method in BATCH_CONVERGENCE_FLAG:
        flags_only = set(moved) <= {"all-reduce"} and all(
            entry["bytes"] <= entry["count"] for entry in moved.values()
        )
        return None if flags_only else f"{moved}: more than a boolean per loop test"
    return f"{moved}; expected none" if moved else None


def run_checks(tmp_path: Path, *flags: str, timeout: int) -> dict:
    """Run the checks in a fresh interpreter with 8 host devices; return its report."""
    out = tmp_path / "sharding.json"
    xla_flags = " ".join(
        flag
        for flag in os.environ.get("XLA_FLAGS", "").split()
        if not flag.startswith("--xla_force_host_platform_device_count")
    )
    # First: XLA stops reading XLA_FLAGS at a token that is not a `--flag`.
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES} {xla_flags}".strip(),
        "JAX_PLATFORMS": "cpu",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.sharding._sharded_checks", *flags, "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text())


def problems(report: dict) -> list[str]:
    """Every broken promise of the report, one line each."""
    found = []
    assert report["devices"] == DEVICES
    for case, result in report["cases"].items():
        if "skipped" in result:
            continue
        error = result["reference"]["float32_error"]
        if result["reference"]["collectives"]:
            found.append(f"{case}: the one-device reference has collectives")
        for placement in ("batch", "sorted"):
            got = result[placement]
            if not got["input_sharded"]:
                found.append(f"{case}/{placement}: the input was not sharded")
            for what, scale in (("values", "scale"), ("gradients", "gradient_scale")):
                ulps = ULPS * float(np.finfo(np.float32).eps) * got[scale]
                bound = max(TOLERANCE, 2 * error[what], ulps)
                if not got[what] <= bound:
                    found.append(
                        f"{case}/{placement}: {what} differ by {got[what]:.2e} > {bound:.2e} "
                        f"(float32 error of the unsharded op {error[what]:.2e})"
                    )
        why = unexpected_batch_collectives(case, result["batch"]["collectives"])
        if why:
            found.append(f"{case}/batch: collectives {why}")
        if not result["sorted"]["collectives"]:
            found.append(f"{case}/sorted: no collectives, yet the sorted axis was sharded")
    return found


def _check(report: dict, cases: list[tuple[str, str]]) -> None:
    assert sorted(report["cases"]) == sorted(f"{op}:{method}" for op, method in cases)
    found = problems(report)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("part", [0, 1])
def test_quick_subset_matches_unsharded_on_8_devices(tmp_path, part):
    # in two processes, so that the two test workers share them
    cases = quick_cases()[part::2]
    names = [f"{op}:{method}" for op, method in cases]
    _check(run_checks(tmp_path, "--cases", *names, timeout=300), cases)


@pytest.mark.slow
def test_every_ordering_op_and_method_matches_unsharded_on_8_devices(tmp_path):
    cases = all_cases()
    _check(run_checks(tmp_path, timeout=1800), cases)


def test_the_quick_subset_covers_every_method_and_the_main_ops():
    cases = quick_cases()
    assert {m for _, m in cases} == {m for _, m in all_cases()}
    assert {"sort", "argsort", "rank", "top_k", "quantile"} <= {op for op, _ in cases}

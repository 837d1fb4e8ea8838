"""The stress report (`make stress`) on two small sizes and one method: float32 stays
within tolerance of float64, the distance to hard is measured, and the table says so."""

import math

from benchmarks import stress


def test_stress_rows_and_table():
    rows = stress.run([8, 16], max_seconds=60.0, methods=["softsort"], modes=["c1"])
    assert {(r["op"], r["mode"]) for r in rows} == {(op, "c1") for op in stress.OPS}
    for row in rows:
        assert [r["n"] for r in row["sizes"]] == [8, 16]
        for record in row["sizes"]:
            assert record["finite"] and record["ok"], record
            assert record["value_error"] < 1e-5 and record["grad_error"] < 1e-4, record
            assert record["grad_error"] <= record["grad_error_max"] < 1e-3, record
            assert record["grad_entries"] == stress.BATCH * record["n"], record
            assert record["grad_entries_off"] == 0, record
        assert 0.0 <= row["hard_error"] < 0.05 and not math.isnan(row["hard_error"])
    text = stress.table(rows, [8, 16])
    assert "| sort | softsort | c1 | ≥ 16 |" in text
    assert text.count("\n| ") == 1 + len(rows)  # header and one line per row


def test_sizes_stop_at_the_time_budget():
    # 10 s in all, of which 2 × 1 s compiled calls (float32 and float64) and 8 s compiling
    slow = {"method": "softsort", "n": 64, "seconds": 10.0, "seconds_run": 1.0}
    assert stress._next_seconds(slow, 128) == 8.0 + 2.0 * 4  # O(n²)
    fast = {"method": "fast_soft_sort", "n": 64, "seconds": 10.0, "seconds_run": 1.0}
    assert abs(stress._next_seconds(fast, 128) - (8.0 + 2.0 * 2 * 7 / 6)) < 1e-9  # O(n log n)

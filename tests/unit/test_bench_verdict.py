"""The benchmark's verdict (bench/run.py): the medians of the rounds, the knee where
the aims are judged, and the rounds' own ratios printed beside the median."""

from __future__ import annotations

from typing import Any

from bench.run import _median_row, _row, aims, table


def measured(c: int, rps: float, tps: float, p99: float = 10.0) -> dict[str, Any]:
    service = {
        "rps": rps,
        "p50_ms": p99 / 3,
        "p90_ms": p99 / 2,
        "p99_ms": p99,
        "errors": 0,
        "api_cpu_ms_per_request": 0.9,
        "pg_cpu_ms_per_request": 0.8,
        "machine_cpu_ms_per_request": 1.8,
    }
    pgbench = {
        "tps": tps,
        "p50_ms": 1.0,
        "p99_ms": 3.0,
        "pg_cpu_ms_per_tx": 0.8,
        "machine_cpu_ms_per_tx": 0.9,
    }
    return _row(c, 1000, service, pgbench)


def levels(*rounds_per_level: list[tuple[float, float, float]]) -> list[dict[str, Any]]:
    """One row per level: its rounds as (service req/s, pgbench tps, p99 ms)."""
    return [
        _median_row([measured(c, rps, tps, p99) for rps, tps, p99 in rounds])
        for c, rounds in zip((1, 4, 8, 16), rounds_per_level, strict=False)
    ]


def test_a_level_is_the_median_of_its_rounds_and_its_ratio_the_median_of_the_pairs() -> None:
    (row,) = levels([(500, 1000, 5), (600, 1000, 7), (450, 1000, 9)])
    assert row["service"]["rps"] == 500
    assert row["service"]["p99_ms"] == 7
    assert row["service"]["rps_range"] == [450, 600]
    assert row["ratio"] == 0.5  # of 0.5, 0.6, 0.45
    assert [r["ratio"] for r in row["reps"]] == [0.5, 0.6, 0.45]


def test_the_aims_are_judged_at_the_fewest_clients_near_the_peak() -> None:
    rows = levels(
        [(400, 900, 4)],  # far below the peak
        [(960, 2000, 8)],  # within 95% of 1000: the knee
        [(1000, 1900, 20)],  # the peak
        [(990, 1500, 60)],
    )
    verdict = aims({"submission": rows})
    assert verdict is not None
    assert verdict["concurrency"] == 4
    assert verdict["ratio"] == 0.48 and not verdict["ratio_met"]
    assert verdict["p99_ms"] == 8 and verdict["p99_met"]
    assert verdict["round_ratios"] == [0.48]
    assert verdict["peak"]["concurrency"] == 8
    assert verdict["peak"]["ratio_met"] and verdict["peak"]["p99_met"]


def test_the_printed_verdict_shows_each_rounds_ratio_beside_the_median() -> None:
    rows = levels([(1000, 2000, 8), (1040, 2000, 9), (980, 2000, 7)])
    result = {"submission": rows, "aims": aims({"submission": rows})}
    text = table(result)
    assert (
        "best concurrency (fewest clients within 95% of the peak): 1 clients, 1000.0 req/s:"
        " ratio 50.0% (aim >= 50%: met; the rounds: 50.0%, 52.0%, 49.0%), p99 8.0 ms"
        " (aim < 50 ms: met)"
    ) in text


def test_no_submission_rows_no_verdict() -> None:
    assert aims({"submission": []}) is None


def test_a_level_without_its_rounds_prints_the_median_alone() -> None:
    """A results file from before the rounds were kept: no empty list of rounds."""
    rows = levels([(1000, 2000, 8)])
    del rows[0]["reps"]
    verdict = aims({"submission": rows})
    assert verdict is not None and verdict["round_ratios"] == []
    text = table({"submission": rows, "aims": verdict})
    assert "ratio 50.0% (aim >= 50%: met), p99 8.0 ms" in text

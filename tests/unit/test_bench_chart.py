"""The bench's figures file and chart: sections kept apart, figures drawn as a PNG, and a
clear refusal when there is nothing to draw."""

from __future__ import annotations

from pathlib import Path

import pytest

from finsync.bench import chart, results


def test_sections_are_saved_apart_and_drawn_as_a_png(tmp_path: Path) -> None:
    results.save(
        "invoice-poster",
        {
            "throughput": [{"run": "hand-written loop", "events_per_second": 700.0}],
            "latency": [{"rate": 200, "p50_ms": 51.0, "p90_ms": 88.0, "p99_ms": 132.0}],
        },
        tmp_path,
    )
    results.save(
        "peers",
        {"faults": [{"run": "x", "fault": "kill -9", "lost": 2, "duplicated": 0}]},
        tmp_path,
    )
    results.save(
        "invoice-poster", {"throughput": [{"run": "again", "events_per_second": 1.0}]}, tmp_path
    )
    figures = results.load(tmp_path)

    assert set(figures) == {"invoice-poster", "peers"}  # a section replaced, the other kept
    assert chart.throughput_bars(figures) == [("invoice-poster: again", 1.0)]
    assert chart.fault_groups(figures) == [("x: kill -9", 2, 0)]
    path = chart.draw(figures, tmp_path / results.CHART)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nothing_to_draw_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="run the benches first"):
        chart.draw({}, tmp_path / results.CHART)

"""`make bench`'s finance-analytics part, at a tiny size on the real stack: both candidates
count every record, end with the figures the records add up to, and the run's topics are gone
afterwards."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from finsync.runtime import clients
from finsync.settings import Settings

pytestmark = pytest.mark.integration


def test_the_analytics_bench_agrees_with_its_records_and_leaves_no_topics(
    settings: Settings,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "finsync.bench.analytics"],
        env={**os.environ, "FINSYNC_BENCH_EVENTS": "200", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "both totals agree with what the records add up to" in out
    produced = re.search(r"produced (\d+) records to (bench-analytics-\w+)\.\*", out)
    assert produced, out
    for candidate in ("baseline: confluent-kafka loop", "finance-analytics (faust"):
        row = next(line for line in out.splitlines() if candidate in line and "│" in line)
        assert f"│ {produced[1]} " in row, row  # every record read
    left = [
        t
        for t in clients.admin(settings).list_topics(timeout=15).topics
        if t.startswith(produced[2])
    ]
    assert left == []

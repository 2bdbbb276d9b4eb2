"""Where `make bench` keeps its figures: one JSON file, a section per bench, each written as
that bench finishes (so a bench that fails leaves the others' figures), and a chart drawn
from it at the end (finsync.bench.chart).

FINSYNC_BENCH_OUT moves them (default `artifacts/bench`, which git ignores).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

RESULTS = "bench-results.json"
CHART = "bench-results.png"


def out_dir() -> Path:
    return Path(os.environ.get("FINSYNC_BENCH_OUT", "artifacts/bench"))


def load(directory: Path | None = None) -> dict[str, Any]:
    path = (directory or out_dir()) / RESULTS
    if not path.exists():
        return {}
    loaded = json.loads(path.read_text())
    return loaded if isinstance(loaded, dict) else {}


def save(section: str, figures: dict[str, Any], directory: Path | None = None) -> Path:
    """Replace `section` of the results file with `figures`, stamped with when they were
    measured; the other sections stay as they are."""
    where = directory or out_dir()
    where.mkdir(parents=True, exist_ok=True)
    results = load(where)
    results[section] = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), **figures}
    path = where / RESULTS
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(results, indent=2, default=_plain) + "\n")
    partial.replace(path)  # a reader never sees half a file
    return path


def _plain(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a figure")

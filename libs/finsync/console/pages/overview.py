"""The overview: every service's health, and dead letters by error class over the last day.
The page polls its live part every 5 seconds."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Response

from finsync.console import chart, web
from finsync.ops import dead_letters, health

router = APIRouter()
WINDOW_HOURS = 24


def _live(page: web.Page) -> dict[str, Any]:
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=WINDOW_HOURS - 1)
    rows = dead_letters.by_class_over_time(page.conn, start, bucket="hour")
    by_class: Counter[tuple[str, str]] = Counter()
    for _bucket, service, error_class, count in rows:
        by_class[(service, error_class)] += count
    return {
        "services": health.overview(page.conn),
        "chart": chart.layout(rows, start, WINDOW_HOURS),
        "classes": by_class.most_common(20),
        "now": now,
        "window_hours": WINDOW_HOURS,
        "since": start,
    }


@router.get("/")
def overview_page(page: web.Viewer) -> Response:
    return page.render("overview.html", **_live(page))


@router.get("/overview/live")
def overview_live(page: web.Viewer) -> Response:
    return page.render("overview_live.html", **_live(page))

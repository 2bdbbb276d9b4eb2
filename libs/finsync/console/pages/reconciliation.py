"""Reconciliation: `finsync reconcile` run on request, in the background (it reads the source
topics and the whole ledger, which takes seconds to minutes), its last result kept with when
and by whom it ran; drill-down to the documents behind each break."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Response
from fastapi.responses import JSONResponse, RedirectResponse

from finsync.books.findings import Report
from finsync.console import web
from finsync.console.filters import parse_time
from finsync.errors import Outage
from finsync.ops import audit
from finsync.settings import Settings

router = APIRouter()
log = logging.getLogger("finsync.console")
SHOWN = 500  # findings listed for one check; the JSON has them all
PREVIEW = 10  # breaks listed per check on the summary

Reconcile = Callable[[Settings, str | None, datetime | None, Callable[[str], None]], Report]


@dataclass
class Run:
    by: str
    entity: str | None
    since: datetime | None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    step: str = "starting"
    seconds: float | None = None  # set when done
    report: Report | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.seconds is not None


class Cache:
    """The running reconciliation and the last finished one, for this console process."""

    def __init__(self, reconcile: Reconcile | None = None) -> None:
        self._lock = threading.Lock()
        self._reconcile = reconcile
        self.running: Run | None = None
        self.last: Run | None = None

    def start(
        self, settings: Settings, by: str, entity: str | None, since: datetime | None
    ) -> bool:
        """Starts a run unless one is under way; False if one was."""
        with self._lock:
            if self.running is not None:
                return False
            run = self.running = Run(by, entity, since)
        threading.Thread(target=self._run, args=(settings, run), daemon=True).start()
        return True

    def _run(self, settings: Settings, run: Run) -> None:
        from finsync.books.reconcile import reconcile

        started = time.monotonic()

        def step(text: str) -> None:
            run.step = text

        try:
            run.report = (self._reconcile or reconcile)(settings, run.entity, run.since, step)
        except Outage:
            run.error = "PostgreSQL, Kafka or the schema registry did not answer; try again."
        except Exception as exc:  # a failed run is shown, never a dead thread nobody sees
            # The class only: a message may quote a document's data.
            log.error("reconciliation failed", extra={"error": type(exc).__name__})
            run.error = f"the reconciliation failed ({type(exc).__name__}); see the log"
        run.seconds = time.monotonic() - started
        with self._lock:
            self.running = None
            self.last = run


def _cache(page: web.Page) -> Cache:
    cache: Cache = page.request.app.state.reconciliation
    return cache


def _context(page: web.Page, check: str | None) -> dict[str, Any]:
    cache = _cache(page)
    report = cache.last.report if cache.last else None
    shown = None
    if report is not None and check:
        shown = next((c for c in report.checks if c.name == check), None)
        if shown is None:
            raise HTTPException(404, f"The last reconciliation has no check {check!r}.")
    return {
        "running": cache.running,
        "last": cache.last,
        "report": report,
        "shown": shown,
        "limit": SHOWN,
        "preview": PREVIEW,
    }


@router.get("/reconciliation")
def reconciliation_page(page: web.Viewer, check: str | None = None) -> Response:
    return page.render("reconciliation.html", **_context(page, check))


@router.get("/reconciliation/status")
def reconciliation_status(page: web.Viewer) -> Response:
    """Polled while a run is under way; once it is done, the page reloads itself."""
    if _cache(page).running is None:
        return Response(status_code=200, headers={"HX-Refresh": "true"})
    return page.render("reconciliation_status.html", running=_cache(page).running)


@router.get("/reconciliation.json")
def reconciliation_json(page: web.Viewer) -> Response:
    last = _cache(page).last
    if last is None or last.report is None:
        raise HTTPException(404, "No reconciliation has finished yet.")
    body = {
        "ran_at": last.started_at.isoformat(),
        "by": last.by,
        "entity": last.entity,
        "since": last.since.isoformat() if last.since else None,
        **last.report.as_dict(),
    }
    return JSONResponse(_jsonable(body))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)  # Decimal money as its exact digits, never a float


@router.post("/reconciliation/run")
def reconciliation_run(
    page: web.Posted,
    entity: Annotated[str, Form(max_length=64)] = "",
    since: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    when = parse_time(since, "since")
    started = _cache(page).start(page.settings, page.session.username, entity.strip() or None, when)
    if started:
        detail = {"entity": entity.strip() or None, "since": when.isoformat() if when else None}
        audit.record(page.conn, page.session.username, "reconcile", "reconciliation", detail)
        page.conn.commit()
    log.info("reconciliation requested", extra={"user": page.session.username, "new": started})
    return RedirectResponse("/reconciliation", status_code=303)

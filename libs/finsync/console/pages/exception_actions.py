"""What operators do to dead letters: replay (always a dry run first, then for real with a
reason), assign, resolve, reopen, note. Every one is a POST with the CSRF token, refused to
viewers, and audited under the operator's console username."""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import RedirectResponse

from finsync.console import web
from finsync.console.filters import Filters
from finsync.console.replays import Busy, Jobs
from finsync.ops import audit, dead_letters
from finsync.ops import replay as replays
from finsync.ops.dead_letters import Query

router = APIRouter()
log = logging.getLogger("finsync.console")

MAX_REPLAY = 10_000  # letters one console replay takes; narrow the filter for more
SAMPLE = 20  # letters a dry run lists
PREVIEW_REASON = "dry run in the console"

Ids = Annotated[list[int], Form()]
Text = Annotated[str, Form(max_length=2000)]


def _jobs(page: web.Page) -> Jobs:
    jobs: Jobs = page.request.app.state.replays  # made in create_app
    return jobs


async def _posted_filters(request: Request) -> Filters:
    return Filters.of(await request.form())


PostedFilters = Annotated[Filters, Depends(_posted_filters)]


def _selection(
    scope: str, ids: list[int], filters: Filters
) -> tuple[list[int] | None, Query | None]:
    """Letters chosen by id (checkboxes) or by the list's filters (hidden fields)."""
    if scope == "filter":
        return None, filters.query()
    if not ids:
        raise HTTPException(400, "Choose at least one dead letter.")
    if len(ids) > MAX_REPLAY:
        raise HTTPException(400, f"At most {MAX_REPLAY:,} dead letters at once.")
    return sorted(set(ids)), None


def _fragment_or_page(page: web.Page, fragment: str, **context: Any) -> Response:
    """htmx swaps the fragment into the page it came from; without htmx the fragment comes
    inside a page of its own."""
    if page.is_htmx:
        return page.render(fragment, **context)
    return page.render("action_page.html", fragment=fragment, **context)


@router.post("/exceptions/replay/preview")
def replay_preview(
    page: web.Operator,
    filters: PostedFilters,
    scope: Annotated[str, Form()] = "ids",
    ids: Ids = [],  # noqa: B006 - FastAPI copies defaults
) -> Response:
    chosen, query = _selection(scope, ids, filters)
    try:
        preview = replays.replay(
            page.settings,
            reason=PREVIEW_REASON,
            actor=page.session.username,
            ids=chosen,
            query=query,
            dry_run=True,
            limit=MAX_REPLAY,
        )
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    would = [r for r in preview.results if r.outcome == "would-replay"]
    refused = [r for r in preview.results if r.outcome.startswith("refused")]
    return _fragment_or_page(
        page,
        "replay_preview.html",
        title="Replay: dry run",
        scope=scope,
        ids=chosen or [],
        filters=filters,
        total=len(preview.results),
        would=would,
        sample=would[:SAMPLE],
        refused=refused,
        more=preview.more,
        max_replay=MAX_REPLAY,
        replay_max=page.settings.replay_max,
    )


@router.post("/exceptions/replay")
def replay_now(
    page: web.Operator,
    filters: PostedFilters,
    reason: Text = "",
    scope: Annotated[str, Form()] = "ids",
    ids: Ids = [],  # noqa: B006 - FastAPI copies defaults
    rate: Annotated[float, Form(ge=1, le=10_000)] = 50.0,
    unthrottled: Annotated[bool, Form()] = False,
    force: Annotated[bool, Form()] = False,
    planned: Annotated[int, Form(ge=0, le=MAX_REPLAY)] = MAX_REPLAY,
) -> Response:
    if not reason.strip():
        raise HTTPException(400, "A replay needs a reason: why these letters should go now.")
    chosen, query = _selection(scope, ids, filters)
    try:
        job = _jobs(page).start(
            page.settings,
            actor=page.session.username,
            reason=reason.strip(),
            planned=len(chosen) if chosen is not None else planned,
            ids=chosen,
            query=query,
            rate=0 if unthrottled else rate,  # 0 only when chosen: as fast as Kafka takes them
            force=force,
        )
    except Busy as exc:
        raise HTTPException(429, str(exc)) from None
    log.info("replay started", extra={"user": page.session.username, "job": job.id})
    return RedirectResponse(f"/replays/{job.id}", status_code=303)


@router.get("/replays/{job_id}")
def replay_job(page: web.Viewer, job_id: str) -> Response:
    job = _jobs(page).get(job_id)
    if job is None:
        raise HTTPException(
            404, "This console does not know that replay (it may have restarted): see the audit."
        )
    return page.render("replay_job.html", job=job)


@router.post("/replays/{job_id}/cancel")
def replay_job_cancel(page: web.Operator, job_id: str) -> Response:
    """Stops a running replay before its next chunk; what was sent stays sent (and audited)."""
    job = _jobs(page).get(job_id)
    if job is None:
        raise HTTPException(404, "This console does not know that replay.")
    if not job.finished and job.cancelled_by is None:
        job.cancelled_by = page.session.username
        audit.record(page.conn, page.session.username, "replay-cancel", replays.target(job.id))
        page.conn.commit()
        log.info("replay cancelled", extra={"user": page.session.username, "job": job.id})
    return RedirectResponse(f"/replays/{job.id}", status_code=303)


@router.get("/replays/{job_id}/status")
def replay_job_status(page: web.Viewer, job_id: str) -> Response:
    job = _jobs(page).get(job_id)
    if job is None or job.finished:
        return Response(headers={"HX-Refresh": "true"})
    return page.render("replay_job_status.html", job=job)


def _back(target: str, **params: object) -> str:
    """The page the action came from, told what was done."""
    parts = urlsplit(web.safe_next(target))
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("done", "n")]
    query += [(k, str(v)) for k, v in params.items()]
    return urlunsplit(("", "", parts.path, urlencode(query), ""))


@router.post("/exceptions/bulk")
def bulk_action(
    page: web.Operator,
    action: Annotated[str, Form()],
    ids: Ids = [],  # noqa: B006 - FastAPI copies defaults
    note: Text = "",
    assignee: Annotated[str, Form(max_length=64)] = "",
    back: Annotated[str, Form(max_length=4000)] = "/exceptions",
) -> Response:
    if not ids:
        raise HTTPException(400, "Choose at least one dead letter.")
    actor = page.session.username
    try:
        if action == "resolve":
            changed = dead_letters.resolve(page.conn, ids, note, actor)
        elif action == "reopen":
            changed = dead_letters.reopen(page.conn, ids, note, actor)
        elif action == "assign":
            changed = dead_letters.assign(page.conn, ids, assignee.strip() or None, actor)
        elif action == "note":
            changed = [i for i in ids[:1] if dead_letters.note(page.conn, i, note, actor)]
        else:
            raise HTTPException(400, f"There is no action {action!r}.")
    except ValueError as exc:
        raise HTTPException(400, f"{str(exc).capitalize()}.") from None
    page.conn.commit()
    log.info("dead letters changed", extra={"user": actor, "action": action, "n": len(changed)})
    return RedirectResponse(_back(back, done=action, n=len(changed)), status_code=303)

"""The exception queue: dead letters filtered, counted, paged and grouped by key; and one dead
letter in full. The actions on them are in exception_actions."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from fastapi import APIRouter, HTTPException, Request, Response

from finsync.console import web
from finsync.console.filters import STATUSES, Filters
from finsync.console.pages.exception_actions import MAX_REPLAY
from finsync.contract.topics import SERVICES
from finsync.ops import dead_letters
from finsync.ops.dead_letters import Letter

router = APIRouter()
PAGE = 50
COUNT_CAP = 10_000
FLASHES = {
    "resolve": "resolved",
    "reopen": "reopened",
    "assign": "assigned",
    "note": "noted",
}


def registry(request: Request) -> SchemaRegistryClient:
    """One registry client per console (made in create_app), so fetched schemas stay cached."""
    client: SchemaRegistryClient = request.app.state.registry
    return client


def flash(request: Request) -> str:
    """What the action that sent the user here did: ?done=resolve&n=3."""
    done, n = request.query_params.get("done", ""), request.query_params.get("n", "")
    if done not in FLASHES or not n.isdigit():
        return ""
    return f"{int(n):,} dead letter(s) {FLASHES[done]}."


@router.get("/exceptions")
def exception_queue(
    page: web.Viewer, before_id: int | None = None, view: str = "letters"
) -> Response:
    filters = Filters.of(page.request.query_params)
    q = filters.query()
    context: dict[str, Any] = {
        "filters": filters,
        "services": SERVICES,
        "statuses": STATUSES,
        "view": "groups" if view == "groups" else "letters",
        "flash": flash(page.request),
        "before_id": before_id,
    }
    total, capped = dead_letters.count(page.conn, q, cap=COUNT_CAP)
    # A replay by filter takes open letters unless the filter names a status, at most
    # MAX_REPLAY: the button says how many that is.
    replayable, more = (
        (total, capped)
        if q.status
        else dead_letters.count(page.conn, replace(q, status="open"), cap=MAX_REPLAY)
    )
    replayable = min(replayable, MAX_REPLAY)
    context.update(total=total, capped=capped, replayable=replayable, replay_capped=more)
    if context["view"] == "groups":
        context["groups"] = dead_letters.groups(page.conn, q, limit=PAGE)
        context["letters"] = []
        context["older"] = None
    else:
        letters = dead_letters.search(page.conn, q, limit=PAGE + 1, before_id=before_id)
        context["letters"] = letters[:PAGE]
        context["older"] = letters[PAGE - 1].id if len(letters) > PAGE else None
    return page.render("exceptions.html", **context)


def _chain(detail: dead_letters.Detail) -> list[Letter]:
    """The replay chain, oldest first: what this letter is a failed replay of, itself, and the
    letters its own replays became."""
    return [*reversed(detail.ancestors), detail.letter, *detail.children]


@router.get("/exceptions/{letter_id}")
def exception_detail(page: web.Viewer, letter_id: int) -> Response:
    found = dead_letters.detail(
        page.conn, page.settings, letter_id, registry=registry(page.request)
    )
    if found is None:
        raise HTTPException(404, f"There is no dead letter {letter_id}.")
    return page.render(
        "exception.html",
        d=found,
        letter=found.letter,
        chain=_chain(found) if found.ancestors or found.children else [],
        flash=flash(page.request),
        clip_at=web.DETAIL_CLIP,
    )

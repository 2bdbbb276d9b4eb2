"""The audit trail: every operator action (finsync.ops_audit), newest first, by actor, action
or target."""

from __future__ import annotations

import psycopg
from fastapi import APIRouter, Response

from finsync.console import web
from finsync.ops.audit import Entry

router = APIRouter()
PAGE = 100


def entries(
    conn: psycopg.Connection,
    actor: str = "",
    target: str = "",
    action: str = "",
    before_id: int | None = None,
    limit: int = PAGE,
) -> list[Entry]:
    clauses: list[str] = ["TRUE"]
    params: list[object] = []
    for column, value in (("actor", actor), ("target", target), ("action", action)):
        if value:
            clauses.append(f"{column} = %s")
            params.append(value)
    if before_id is not None:
        clauses.append("id < %s")
        params.append(before_id)
    rows = conn.execute(
        "SELECT id, at, actor, action, target, detail FROM finsync.ops_audit "
        f"WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT %s",
        [*params, limit],
    ).fetchall()
    return [Entry(*r) for r in rows]


@router.get("/audit")
def audit_page(
    page: web.Viewer,
    actor: str = "",
    target: str = "",
    action: str = "",
    before_id: int | None = None,
) -> Response:
    actor, target, action = actor.strip()[:64], target.strip()[:200], action.strip()[:64]
    found = entries(page.conn, actor, target, action, before_id, PAGE + 1)
    params = {k: v for k, v in (("actor", actor), ("target", target), ("action", action)) if v}
    return page.render(
        "audit.html",
        entries=found[:PAGE],
        older=found[PAGE - 1].id if len(found) > PAGE else None,
        actor=actor,
        target=target,
        action=action,
        params=params,
        before_id=before_id,
    )

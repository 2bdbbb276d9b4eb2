"""The dead-letter index for people: find, count, group and read dead letters, and act on them
(assign, resolve, reopen, note; replaying is `finsync.ops.replay`). What the console and
`finsync dlq` show.

Every filter is served by an index of `finsync.dead_letters` (migrations 0023, 0029) and every
listing is newest first (by failure time, then id), the next page starting after a letter's id
(keyset), so they stay fast with millions of letters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from confluent_kafka.schema_registry import SchemaRegistryClient

from finsync.ops import audit, payload
from finsync.ops.letter_actions import assign, note, reopen, resolve
from finsync.runtime.dead_letter_index import CATEGORIES
from finsync.settings import Settings

__all__ = [
    "BUCKETS",
    "STATUSES",
    "Detail",
    "HistoryItem",
    "KeyGroup",
    "Letter",
    "Query",
    "assign",
    "by_class_over_time",
    "count",
    "detail",
    "get",
    "groups",
    "note",
    "reopen",
    "resolve",
    "search",
]

STATUSES = ("open", "replayed", "resolved")
BUCKETS = ("minute", "hour", "day", "week")
GROUP_SCAN = 5000  # newest matching letters whose keys groups() shows


@dataclass(frozen=True)
class Query:
    """What to look for; every field narrows, None matches all."""

    service: str | None = None
    error: str | None = None  # exception class (InvalidEvent) or category, any case
    key: str | None = None
    since: datetime | None = None  # failed at or after
    until: datetime | None = None  # failed before
    status: str | None = None  # open | replayed | resolved


@dataclass(frozen=True)
class Letter:
    id: int
    service: str
    dlq_topic: str
    dlq_partition: int | None  # None until the relay has put it on its topic
    dlq_offset: int | None
    message_key: str | None
    event_id: str | None
    source_topic: str
    source_partition: int
    source_offset: int
    stage: str
    error_class: str
    category: str
    reason: str
    attempts: int
    trace_id: str | None
    failed_at: datetime
    status: str
    assignee: str | None
    notes: str | None
    replay_of: int | None
    replays: int
    updated_at: datetime


LETTER_COLUMNS = (
    "id, service, dlq_topic, dlq_partition, dlq_offset, message_key, event_id, source_topic, "
    "source_partition, source_offset, stage, error_class, category, reason, attempts, "
    "trace_id, failed_at, status, assignee, notes, replay_of, replays, updated_at"
)


@dataclass(frozen=True)
class KeyGroup:
    """The dead letters of one key (one business document) of one service."""

    service: str
    key: str
    total: int
    open: int
    last_failed_at: datetime
    error_classes: list[str]


@dataclass(frozen=True)
class HistoryItem:
    at: datetime
    actor: str
    action: str  # an ops_audit action, or `replay-outcome` for a replay_audit row
    detail: dict[str, Any]


@dataclass(frozen=True)
class Detail:
    letter: Letter
    headers: list[tuple[str, str]]  # the publisher's headers, as text
    stack: str
    payload: payload.Payload
    value_size: int
    history: list[HistoryItem]  # oldest first
    same_key: list[Letter]  # the other letters of its key, newest first
    ancestors: list[Letter]  # the letter it is a failed replay of, that one's, ... nearest first
    children: list[Letter]  # letters its own replays became, oldest first


def where(q: Query) -> tuple[str, list[Any]]:
    """The SQL condition for `q` and its parameters; 'TRUE' for no condition."""
    clauses: list[str] = []
    params: list[Any] = []
    if q.service:
        clauses.append("service = %s")
        params.append(q.service)
    if q.error:
        error = q.error.strip().lower()
        clauses.append("category = %s" if error in CATEGORIES else "lower(error_class) = %s")
        params.append(error)
    if q.key is not None:
        clauses.append("md5(message_key) = md5(%s) AND message_key = %s")  # the key's index
        params += [q.key, q.key]
    if q.since is not None:
        clauses.append("failed_at >= %s")
        params.append(q.since)
    if q.until is not None:
        clauses.append("failed_at < %s")
        params.append(q.until)
    if q.status is not None:
        if q.status not in STATUSES:
            raise ValueError(f"status {q.status!r} is none of {', '.join(STATUSES)}")
        # Unresolved letters through their partial index; `resolved` is derived from status.
        clauses.append("resolved" if q.status == "resolved" else "NOT resolved AND status = %s")
        params += [] if q.status == "resolved" else [q.status]
    return " AND ".join(clauses) or "TRUE", params


NEWEST_FIRST = "ORDER BY failed_at DESC, id DESC"  # the order every index of the table serves


def search(
    conn: psycopg.Connection, q: Query, *, limit: int = 50, before_id: int | None = None
) -> list[Letter]:
    """Letters matching `q`, newest first; the next page is the letters after (older than)
    the last one shown: `before_id` = its id."""
    condition, params = where(q)
    if before_id is not None:
        condition += (
            " AND (failed_at, id) < (SELECT failed_at, id FROM finsync.dead_letters WHERE id = %s)"
        )
        params.append(before_id)
    rows = conn.execute(
        f"SELECT {LETTER_COLUMNS} FROM finsync.dead_letters WHERE {condition} "
        f"{NEWEST_FIRST} LIMIT %s",
        [*params, limit],
    ).fetchall()
    return [Letter(*r) for r in rows]


def count(conn: psycopg.Connection, q: Query, cap: int = 10000) -> tuple[int, bool]:
    """How many letters match, counting no further than `cap`: (count, whether it stopped
    there). Counting a million exactly is a scan; 'more than 10,000' is enough to act on."""
    condition, params = where(q)
    row = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM finsync.dead_letters "
        f"WHERE {condition} {NEWEST_FIRST} LIMIT %s) AS hit",
        [*params, cap + 1],
    ).fetchone()
    n = int(row[0]) if row else 0
    return min(n, cap), n > cap


def groups(conn: psycopg.Connection, q: Query, *, limit: int = 50) -> list[KeyGroup]:
    """Letters matching `q` grouped by service and key, the most recently failed key first:
    the keys among the newest GROUP_SCAN matching letters, each with all its matching letters
    counted. Letters without a key are left out (nothing groups them)."""
    condition, params = where(q)
    rows = conn.execute(
        f"""
        WITH newest AS (
            SELECT service, message_key, failed_at FROM finsync.dead_letters
            WHERE {condition} AND message_key IS NOT NULL {NEWEST_FIRST} LIMIT %s
        ), recent AS (
            SELECT service, message_key FROM newest GROUP BY service, message_key
            ORDER BY max(failed_at) DESC, service, message_key LIMIT %s
        )
        SELECT g.service, g.message_key, a.total, a.open, a.last_failed_at, a.classes
        FROM recent g CROSS JOIN LATERAL (
            SELECT count(*) AS total, count(*) FILTER (WHERE status = 'open') AS open,
                   max(failed_at) AS last_failed_at,
                   array_agg(DISTINCT error_class ORDER BY error_class) AS classes
            FROM finsync.dead_letters d
            WHERE md5(d.message_key) = md5(g.message_key) AND d.message_key = g.message_key
              AND d.service = g.service AND {condition}
        ) AS a
        ORDER BY a.last_failed_at DESC, g.service, g.message_key
        """,
        [*params, GROUP_SCAN, limit, *params],
    ).fetchall()
    return [KeyGroup(r[0], r[1], r[2], r[3], r[4], list(r[5])) for r in rows]


def get(conn: psycopg.Connection, id_: int) -> Letter | None:
    row = conn.execute(
        f"SELECT {LETTER_COLUMNS} FROM finsync.dead_letters WHERE id = %s", (id_,)
    ).fetchone()
    return Letter(*row) if row else None


def detail(
    conn: psycopg.Connection,
    settings: Settings,
    id_: int,
    registry: SchemaRegistryClient | None = None,
) -> Detail | None:
    """Everything about one letter: its headers, stack, decoded value, what was done to it,
    the other letters of its key and its replay chain."""
    letter = get(conn, id_)
    if letter is None:
        return None
    row = conn.execute(
        "SELECT stack, value, header_keys, header_values FROM finsync.dead_letters WHERE id = %s",
        (id_,),
    ).fetchone()
    assert row is not None
    stack, value, keys, values = row
    headers = [
        (k, "" if v is None else bytes(v).decode("utf-8", "replace"))
        for k, v in zip(keys, values, strict=True)
    ]
    same_key = []
    if letter.message_key is not None:
        others = search(conn, Query(service=letter.service, key=letter.message_key), limit=21)
        same_key = [x for x in others if x.id != id_][:20]
    return Detail(
        letter=letter,
        headers=headers,
        stack=stack,
        payload=payload.decode(registry or payload.registry(settings), value),
        value_size=len(value or b""),
        history=history(conn, id_),
        same_key=same_key,
        ancestors=_ancestors(conn, letter),
        children=_children(conn, id_),
    )


def history(conn: psycopg.Connection, id_: int) -> list[HistoryItem]:
    """What operators (and services, resolving a replayed letter) did, and each replay's
    outcome, oldest first."""
    items = [
        HistoryItem(e.at, e.actor, e.action, e.detail)
        for e in audit.for_target(conn, audit.letter(id_))
    ]
    rows = conn.execute(
        "SELECT coalesce(finished_at, replayed_at), replayed_by, replay_id, outcome, "
        "target_topic, dry_run FROM finsync.replay_audit WHERE dead_letter_id = %s ORDER BY id",
        (id_,),
    ).fetchall()
    items += [
        HistoryItem(
            at,
            by,
            "replay-outcome",
            {"replay_id": str(rid), "outcome": outcome, "target_topic": topic, "dry_run": dry},
        )
        for at, by, rid, outcome, topic, dry in rows
    ]
    return sorted(items, key=lambda i: i.at)


def _ancestors(conn: psycopg.Connection, letter: Letter) -> list[Letter]:
    if letter.replay_of is None:
        return []
    rows = conn.execute(
        f"""
        WITH RECURSIVE chain(id, depth) AS (
            SELECT %s::bigint, 1
            UNION ALL
            SELECT d.replay_of, c.depth + 1 FROM chain c JOIN finsync.dead_letters d ON d.id = c.id
            WHERE d.replay_of IS NOT NULL AND c.depth < 50
        )
        SELECT {LETTER_COLUMNS} FROM finsync.dead_letters JOIN chain USING (id) ORDER BY depth
        """,
        (letter.replay_of,),
    ).fetchall()
    return [Letter(*r) for r in rows]


def _children(conn: psycopg.Connection, id_: int) -> list[Letter]:
    rows = conn.execute(
        f"SELECT {LETTER_COLUMNS} FROM finsync.dead_letters WHERE replay_of = %s ORDER BY id",
        (id_,),
    ).fetchall()
    return [Letter(*r) for r in rows]


def by_class_over_time(
    conn: psycopg.Connection, since: datetime, *, bucket: str = "hour"
) -> list[tuple[datetime, str, str, int]]:
    """(bucket start in UTC, service, error class, letters) for letters failed since `since`."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket {bucket!r} is none of {', '.join(BUCKETS)}")
    rows = conn.execute(
        "SELECT date_trunc(%s, failed_at, 'UTC') AS b, service, error_class, count(*) "
        "FROM finsync.dead_letters WHERE failed_at >= %s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        (bucket, since),
    ).fetchall()
    return [(b, s, e, int(n)) for b, s, e, n in rows]

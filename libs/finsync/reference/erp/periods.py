"""The reference ERP's accounting periods (erp.periods, erp.period_changes): which months of a
legal entity are closed, who changed that and when, and the lock that keeps postings and
closing apart.

Postings of an entity hold its period lock shared from the moment they read its closed
periods until they commit; closing or opening holds it exclusive. So a close waits for the
postings in flight and then sees them, and a posting that waited for a close sees the period
closed: no journal commits into a period closed after its date was resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import psycopg

# Two-key advisory locks: (this namespace, the entity's hash). A hash collision between two
# entities only makes one wait for the other, never lets a posting through.
_LOCK = "hashtext('erp.periods'), hashtext(%s)"


def closed_periods(conn: psycopg.Connection, legal_entity: str) -> frozenset[date]:
    """The entity's closed periods, read under its shared lock, held to the end of the
    transaction. The lock is taken by its own statement first: a statement's snapshot is
    taken before it waits, and the read must see a close that it waited for."""
    conn.execute(f"SELECT pg_advisory_xact_lock_shared({_LOCK})", (legal_entity,))
    rows = conn.execute(
        "SELECT period FROM erp.periods WHERE legal_entity = %s AND status = 'CLOSED'",
        (legal_entity,),
    ).fetchall()
    return frozenset(r[0] for r in rows)


def lock_exclusive(conn: psycopg.Connection, legal_entity: str) -> None:
    """Wait for the entity's postings in flight; hold off new ones to the end of the
    transaction."""
    conn.execute(f"SELECT pg_advisory_xact_lock({_LOCK})", (legal_entity,))


def is_closed(conn: psycopg.Connection, legal_entity: str, period: date) -> bool:
    row = conn.execute(
        "SELECT status FROM erp.periods WHERE legal_entity = %s AND period = %s",
        (legal_entity, period),
    ).fetchone()
    return row is not None and row[0] == "CLOSED"


def set_status(
    conn: psycopg.Connection, legal_entity: str, period: date, closed: bool, who: str
) -> None:
    """Close or open the period, and audit it."""
    status = "CLOSED" if closed else "OPEN"
    conn.execute(
        "INSERT INTO erp.periods (legal_entity, period, status, changed_at, changed_by) "
        "VALUES (%s, %s, %s, now(), %s) ON CONFLICT (legal_entity, period) DO UPDATE "
        "SET status = EXCLUDED.status, changed_at = now(), changed_by = EXCLUDED.changed_by",
        (legal_entity, period, status, who),
    )
    audit(conn, legal_entity, period, "CLOSED" if closed else "OPENED", who)


def audit(
    conn: psycopg.Connection,
    legal_entity: str,
    period: date,
    action: str,
    who: str,
    detail: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO erp.period_changes (legal_entity, period, action, changed_by, detail) "
        "VALUES (%s, %s, %s, %s, %s)",
        (legal_entity, period, action, who, detail),
    )


@dataclass(frozen=True)
class PeriodRow:
    legal_entity: str
    period: date
    status: str
    changed_at: datetime
    changed_by: str


def listing(conn: psycopg.Connection, legal_entity: str | None = None) -> list[PeriodRow]:
    """Periods that were ever closed (any other is open), by entity and month."""
    rows = conn.execute(
        "SELECT legal_entity, period, status, changed_at, changed_by FROM erp.periods "
        "WHERE %(entity)s::text IS NULL OR legal_entity = %(entity)s "
        "ORDER BY legal_entity, period",
        {"entity": legal_entity},
    ).fetchall()
    return [PeriodRow(*r) for r in rows]


@dataclass(frozen=True)
class Change:
    period: date
    action: str
    changed_at: datetime
    changed_by: str
    detail: str | None


def history(conn: psycopg.Connection, legal_entity: str, period: date) -> list[Change]:
    """Every close, refused close and reopening of the period, oldest first."""
    rows = conn.execute(
        "SELECT period, action, changed_at, changed_by, detail FROM erp.period_changes "
        "WHERE legal_entity = %s AND period = %s ORDER BY change_id",
        (legal_entity, period),
    ).fetchall()
    return [Change(*r) for r in rows]

"""Closing a month of a legal entity's books, and opening it again.

A month closes only when the books of it are complete across the systems:
- revenue recognition ran for it, if it has revenue to release (a recognition run of the
  entity and month), and left nothing of it or an earlier month unreleased (revenue schedule
  rows not recognized and not cancelled);
- every invoice and credit memo billing issued for the entity dated in it or before has been
  posted in the ERP.
A refused close says what blocks it. Closing takes the entity's period lock exclusively, so it
waits for postings in flight and then sees them; postings that come after a close and are
dated in the closed month post in the next open one (the reference ERP's rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

import psycopg

from finsync.domain.periods import label, next_period
from finsync.reference.erp import periods

SHOWN = 10  # document ids named per blocker


@dataclass(frozen=True)
class Blocker:
    what: str  # e.g. "invoice(s) billed but not posted in the ERP"
    count: int = 1
    documents: tuple[str, ...] = ()  # the first SHOWN of them, by id

    def __str__(self) -> str:
        if not self.documents:
            return self.what
        more = f" and {self.count - len(self.documents)} more" if self.count > SHOWN else ""
        return f"{self.count} {self.what}: {', '.join(self.documents)}{more}"


def blockers(conn: psycopg.Connection, legal_entity: str, period: date) -> list[Blocker]:
    """What keeps the entity's month from closing; empty when it may close."""
    end = next_period(period)
    found: list[Blocker | None] = []
    # A month with revenue to release must have been through a run; one without needs none.
    if conn.execute(
        "SELECT 1 FROM erp.revenue_schedules s WHERE s.legal_entity = %(e)s "
        "AND s.period = %(p)s AND NOT EXISTS (SELECT 1 FROM erp.recognition_runs r "
        "WHERE r.legal_entity = %(e)s AND r.period = %(p)s) LIMIT 1",
        {"e": legal_entity, "p": period},
    ).fetchone():
        found.append(
            Blocker(
                f"no revenue recognition run for {label(period)} (finsync erp recognize "
                f"--through {end - timedelta(days=1)} --entity {legal_entity})"
            )
        )
    found.append(
        _documents(
            conn,
            "revenue schedule row(s) of this month or earlier not recognized, of invoice(s)",
            "SELECT invoice_id, sum(count(*)) OVER () FROM erp.revenue_schedules "
            "WHERE legal_entity = %s AND period < %s AND recognized_entry_id IS NULL "
            "AND amount > cancelled_amount GROUP BY invoice_id ORDER BY min(period), invoice_id",
            (legal_entity, end),
        )
    )
    found.append(
        _documents(
            conn,
            "invoice(s) billed but not posted in the ERP",
            "SELECT i.invoice_id, count(*) OVER () FROM billing.invoices i "
            "WHERE i.legal_entity = %s AND i.issued_on < %s AND NOT EXISTS "
            "(SELECT 1 FROM erp.ar_open_items o WHERE o.invoice_id = i.invoice_id) "
            "ORDER BY i.issued_on, i.invoice_id",
            (legal_entity, end),
        )
    )
    found.append(
        _documents(
            conn,
            "credit memo(s) issued but not posted in the ERP",
            "SELECT c.credit_memo_id, count(*) OVER () FROM billing.credit_memos c "
            "JOIN billing.invoices i USING (invoice_id) "
            "WHERE i.legal_entity = %s AND c.issued_on < %s AND NOT EXISTS "
            "(SELECT 1 FROM erp.ar_credits a WHERE a.credit_memo_id = c.credit_memo_id) "
            "ORDER BY c.issued_on, c.credit_memo_id",
            (legal_entity, end),
        )
    )
    return [b for b in found if b is not None]


def _documents(
    conn: psycopg.Connection, what: str, query: str, params: tuple[object, ...]
) -> Blocker | None:
    """The first SHOWN (document id, total rows) of `query`, as a blocker; None if none."""
    rows = conn.execute(f"{query} LIMIT {SHOWN}", params).fetchall()
    return Blocker(what, int(rows[0][1]), tuple(r[0] for r in rows)) if rows else None


class Outcome(StrEnum):
    CLOSED = "closed"
    OPENED = "opened"
    ALREADY_CLOSED = "already closed"
    ALREADY_OPEN = "already open"
    REFUSED = "refused"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    legal_entity: str
    period: date
    blockers: list[Blocker] = field(default_factory=list)

    def __str__(self) -> str:
        what = f"period {label(self.period)} of {self.legal_entity}"
        return {
            Outcome.CLOSED: f"{what} closed",
            Outcome.OPENED: f"{what} opened again",
            Outcome.ALREADY_CLOSED: f"{what} is already closed: nothing to do",
            Outcome.ALREADY_OPEN: f"{what} is already open: nothing to do",
            Outcome.REFUSED: f"{what} cannot be closed",
        }[self.outcome]


def close(conn: psycopg.Connection, legal_entity: str, period: date, who: str) -> Result:
    """Close the month if nothing blocks it; a refused close is audited with its blockers."""
    with conn.transaction():
        periods.lock_exclusive(conn, legal_entity)  # postings in flight commit first
        if periods.is_closed(conn, legal_entity, period):
            return Result(Outcome.ALREADY_CLOSED, legal_entity, period)
        found = blockers(conn, legal_entity, period)
        if found:
            detail = "; ".join(str(b) for b in found)
            periods.audit(conn, legal_entity, period, "CLOSE_REFUSED", who, detail)
            return Result(Outcome.REFUSED, legal_entity, period, found)
        periods.set_status(conn, legal_entity, period, True, who)
        return Result(Outcome.CLOSED, legal_entity, period)


def reopen(conn: psycopg.Connection, legal_entity: str, period: date, who: str) -> Result:
    """Open the month again: documents dated in it post in it from now on."""
    with conn.transaction():
        periods.lock_exclusive(conn, legal_entity)
        if not periods.is_closed(conn, legal_entity, period):
            return Result(Outcome.ALREADY_OPEN, legal_entity, period)
        periods.set_status(conn, legal_entity, period, False, who)
        return Result(Outcome.OPENED, legal_entity, period)

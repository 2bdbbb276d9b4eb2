"""The reference ERP's revenue recognition run: deferred revenue whose month has ended becomes
revenue, one journal per legal entity, currency and month.

Each month is one transaction: lock the month's unreleased schedule rows (in key order, so two
runs queue instead of deadlocking), post the journal — debit each deferred account, credit
its revenue account, net of what credit memos cancelled, dated the month's last day — mark
the rows with it, record the month in `erp.recognition_runs` and write
`erp.revenue-recognized` into the ERP's outbox; the relay publishes it after. A run racing
another finds the rows marked once it gets their locks, so it releases nothing twice; the
journal's idempotency key is the last guard. Running again releases nothing new.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg

from finsync.contract.events import RevenueRecognized
from finsync.domain.accounting import Journal, credit, debit
from finsync.domain.revenue import last_closed_month, month_end
from finsync.reference.erp.adapter import ReferenceErp
from finsync.runtime import db, outbox
from finsync.runtime.relay import Relay
from finsync.runtime.serde import Serde, registry_client
from finsync.settings import Settings

log = logging.getLogger("finsync.recognition")

PUBLISHER = "erp"  # the reference ERP's name in the outbox; its events' `source`
ATTEMPTS = 5  # a month whose transaction lost a race (a deadlock with a credit memo) is redone
_LOST_RACE = (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable)


def journal_key(legal_entity: str, currency: str, period: date, release: int = 1) -> str:
    """`recognition:{entity}:{currency}:{YYYY-MM}`; rows posted late for a month already
    released are released again under `...:{YYYY-MM}:2`, `:3` and so on."""
    key = f"recognition:{legal_entity}:{currency}:{period:%Y-%m}"
    return key if release == 1 else f"{key}:{release}"


@dataclass(frozen=True)
class MonthResult:
    legal_entity: str
    currency: str
    period: date
    amount: Decimal  # released by this run (zero: nothing to release)
    rows: int  # schedule rows released
    entry_id: str | None  # the journal this run posted

    @property
    def released(self) -> bool:
        return self.entry_id is not None


@dataclass(frozen=True)
class RecognitionResult:
    through: date
    months: list[MonthResult]
    published: int


def _months(
    conn: psycopg.Connection, last: date, entity: str | None
) -> list[tuple[str, str, date]]:
    """(entity, currency, month) to run, in order: months ended by `last` with rows to release,
    or with schedule rows and no run yet; with `entity`, also its month `last` in each of its
    currencies, so a period close finds the run even when the entity defers nothing."""
    rows = conn.execute(
        "SELECT legal_entity, currency, period FROM erp.revenue_schedules "
        "WHERE period <= %(last)s AND (%(entity)s::text IS NULL OR legal_entity = %(entity)s) "
        "AND recognized_entry_id IS NULL AND amount > cancelled_amount "
        "UNION "
        "SELECT s.legal_entity, s.currency, s.period FROM erp.revenue_schedules s "
        "WHERE s.period <= %(last)s AND (%(entity)s::text IS NULL OR s.legal_entity = %(entity)s) "
        "AND NOT EXISTS (SELECT 1 FROM erp.recognition_runs r WHERE r.legal_entity = "
        "s.legal_entity AND r.currency = s.currency AND r.period = s.period) "
        "UNION "
        "SELECT legal_entity, currency, %(last)s::date FROM erp.ar_open_items "
        "WHERE legal_entity = %(entity)s "
        "UNION "
        "SELECT legal_entity, currency, %(last)s::date FROM erp.revenue_schedules "
        "WHERE legal_entity = %(entity)s "
        "ORDER BY 1, 2, 3",
        {"last": last, "entity": entity},
    ).fetchall()
    return [(e, c, p) for e, c, p in rows]


def _release(
    conn: psycopg.Connection, serde: Serde, entity: str, currency: str, period: date
) -> MonthResult:
    """One month of one entity and currency, in the caller's transaction."""
    rows = conn.execute(
        "SELECT invoice_id, line_id, deferred_account, revenue_account, "
        "amount - cancelled_amount FROM erp.revenue_schedules "
        "WHERE legal_entity = %s AND currency = %s AND period = %s "
        "AND recognized_entry_id IS NULL AND amount > cancelled_amount "
        "ORDER BY invoice_id, line_id FOR UPDATE",
        (entity, currency, period),
    ).fetchall()
    if not rows:
        conn.execute(
            "INSERT INTO erp.recognition_runs (legal_entity, currency, period, entry_id, amount) "
            "VALUES (%s, %s, %s, NULL, 0) ON CONFLICT DO NOTHING",
            (entity, currency, period),
        )
        return MonthResult(entity, currency, period, Decimal(0), 0, None)

    pairs: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for _, _, deferred, revenue, amount in rows:
        pairs[(deferred, revenue)] += amount
    lines = []
    for (deferred, revenue), amount in sorted(pairs.items()):
        lines += [debit(deferred, amount), credit(revenue, amount)]
    total = sum(pairs.values(), Decimal(0))
    released_before = conn.execute(
        "SELECT count(DISTINCT recognized_entry_id) FROM erp.revenue_schedules "
        "WHERE legal_entity = %s AND currency = %s AND period = %s "
        "AND recognized_entry_id IS NOT NULL",
        (entity, currency, period),
    ).fetchone()
    key = journal_key(entity, currency, period, 1 + (released_before[0] if released_before else 0))
    journal = Journal(
        key=key,
        legal_entity=entity,
        currency=currency,
        description=f"Revenue recognition {period:%Y-%m}",
        lines=tuple(lines),
        accounting_date=month_end(period),
    )
    erp = ReferenceErp(conn)
    posted = erp.post_journal(journal)
    erp.flush()
    conn.execute(
        "UPDATE erp.revenue_schedules s SET recognized_entry_id = %s "
        "FROM unnest(%s::text[], %s::text[]) AS k(invoice_id, line_id) "
        "WHERE s.invoice_id = k.invoice_id AND s.line_id = k.line_id AND s.period = %s",
        (posted.journal_entry_id, [r[0] for r in rows], [r[1] for r in rows], period),
    )
    conn.execute(
        "INSERT INTO erp.recognition_runs AS r (legal_entity, currency, period, entry_id, amount) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (legal_entity, currency, period) DO UPDATE "
        "SET entry_id = excluded.entry_id, amount = r.amount + excluded.amount, run_at = now()",
        (entity, currency, period, posted.journal_entry_id, total),
    )
    event = RevenueRecognized(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        source=PUBLISHER,
        correlation_id=key,
        legal_entity=entity,
        currency=currency,
        period=period,
        journal_entry_id=posted.journal_entry_id,
        amount=total,
        lines=posted.booked(journal),  # with their functional amounts
        accounting_date=posted.accounting_date,
        functional_currency=posted.functional_currency,
    )
    outbox.add(conn, PUBLISHER, [serde.outgoing(event)])
    outbox.notify(conn, PUBLISHER)
    return MonthResult(entity, currency, period, total, len(rows), posted.journal_entry_id)


def recognize(
    settings: Settings,
    through: date,
    entity: str | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> RecognitionResult:
    """Release every schedule month that ends on or before `through` and is not released, for
    one legal entity or all; then publish what was released."""
    serde = Serde(registry_client(settings))
    last = last_closed_month(through)
    done: list[MonthResult] = []
    with db.connect(settings) as conn:
        months = _months(conn, last, entity)
        conn.commit()
        for n, (e, c, period) in enumerate(months, 1):
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    with conn.transaction():
                        result = _release(conn, serde, e, c, period)
                    break
                except _LOST_RACE as exc:
                    if attempt == ATTEMPTS:
                        raise
                    log.info("recognition of a month lost a race (%s); again", type(exc).__name__)
            done.append(result)
            progress(n, len(months))
    published = Relay(PUBLISHER, settings).drain()
    return RecognitionResult(through, done, published)

"""The reference billing system's own jobs: the invoice run and credit memos.

Each document is written with its `billing.*-issued` event in the billing system's outbox, in
one transaction, then the relay publishes it: a crash in between publishes it on the next run,
never twice as a different document. Invoice and credit memo ids derive from what they bill,
and unique constraints refuse a second invoice for the same subscription period.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
from psycopg.rows import class_row

from finsync.contract.events import (
    BillingPeriod,
    CreditMemoIssued,
    Event,
    InvoiceIssued,
    InvoiceLine,
)
from finsync.domain.billing_schedule import InvoiceDraft, due_invoices
from finsync.domain.tax import TaxRounding
from finsync.ports.billing import Phase
from finsync.runtime import db, outbox
from finsync.runtime.messages import Headers
from finsync.runtime.relay import Relay
from finsync.runtime.serde import Serde, registry_client
from finsync.settings import Settings

PUBLISHER = "billing"  # its name in the outbox; its events' `source`


def invoice_id(opportunity_id: str, billing_date: date) -> str:
    return f"INV-{opportunity_id}-{billing_date:%Y%m%d}"


@dataclass(frozen=True)
class RunResult:
    subscriptions: int
    invoices: list[InvoiceIssued]
    published: int


@dataclass(frozen=True)
class _Subscription:
    """A subscription as the invoice run reads it, with its legal entity's terms."""

    subscription_id: str
    opportunity_id: str
    account_id: str
    legal_entity: str
    currency: str
    correlation_id: str
    tax_rate: Decimal
    tax_rounding: str  # a TaxRounding
    payment_terms_days: int
    traceparent: str | None


def _phases(conn: psycopg.Connection, subscription_id: str) -> list[tuple[int, Phase]]:
    rows = conn.execute(
        "SELECT phase_no, line_id, sku, description, quantity, unit_price, billing_period, "
        "start_date, end_date FROM billing.subscription_phases WHERE subscription_id = %s "
        "ORDER BY phase_no",
        (subscription_id,),
    ).fetchall()
    return [
        (r[0], Phase(r[1], r[2], r[3], r[4], r[5], BillingPeriod(r[6]), r[7], r[8])) for r in rows
    ]


def _next_number(conn: psycopg.Connection, legal_entity: str, year: int) -> int:
    """The entity's next invoice number of the year, from its series row, which stays locked
    until the transaction ends: a second run waits for it, and a rollback gives the number
    back, so the series has no gaps and no number twice."""
    row = conn.execute(
        "INSERT INTO billing.invoice_series AS s (legal_entity, year, last_number) "
        "VALUES (%s, %s, 1) ON CONFLICT (legal_entity, year) "
        "DO UPDATE SET last_number = s.last_number + 1 RETURNING last_number",
        (legal_entity, year),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _issue(conn: psycopg.Connection, sub: _Subscription, draft: InvoiceDraft) -> InvoiceIssued:
    number = _next_number(conn, sub.legal_entity, draft.billing_date.year)
    event = InvoiceIssued(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        source=PUBLISHER,
        correlation_id=sub.correlation_id,
        invoice_id=invoice_id(sub.opportunity_id, draft.billing_date),
        invoice_number=f"{sub.legal_entity}-{draft.billing_date.year}-{number:06d}",
        account_id=sub.account_id,
        subscription_id=sub.subscription_id,
        legal_entity=sub.legal_entity,
        currency=sub.currency,
        issued_on=draft.billing_date,
        due_on=draft.billing_date + timedelta(days=sub.payment_terms_days),
        lines=[
            InvoiceLine(
                line_id=c.line_id,
                description=c.description,
                sku=c.sku,
                amount=c.amount,
                tax_amount=c.tax_amount,
                service_period_start=c.period.start if c.period.end else None,
                service_period_end=c.period.end,
                tax_rate=sub.tax_rate,
            )
            for c in draft.charges
        ],
        subtotal=draft.subtotal,
        tax_total=draft.tax_total,
        total=draft.subtotal + draft.tax_total,
    )
    conn.execute(
        "INSERT INTO billing.invoices (invoice_id, invoice_number, subscription_id, billing_date, "
        "account_id, legal_entity, currency, issued_on, due_on, subtotal, tax_total, total) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            event.invoice_id,
            event.invoice_number,
            event.subscription_id,
            draft.billing_date,
            event.account_id,
            event.legal_entity,
            event.currency,
            event.issued_on,
            event.due_on,
            event.subtotal,
            event.tax_total,
            event.total,
        ),
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO billing.invoice_lines (invoice_id, line_id, subscription_id, phase_no, "
            "period_start, period_end, sku, description, amount, tax_amount, tax_rate) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    event.invoice_id,
                    c.line_id,
                    event.subscription_id,
                    c.phase_no,
                    c.period.start,
                    c.period.end,
                    c.sku,
                    c.description,
                    c.amount,
                    c.tax_amount,
                    sub.tax_rate,
                )
                for c in draft.charges
            ],
        )
    return event


def _drafts(conn: psycopg.Connection, sub: _Subscription, as_of: date) -> list[InvoiceDraft]:
    """The invoices the subscription owes by `as_of` and has not been issued yet."""
    billed = {
        (r[0], r[1])
        for r in conn.execute(
            "SELECT phase_no, period_start FROM billing.invoice_lines WHERE subscription_id = %s",
            (sub.subscription_id,),
        )
    }
    phases = _phases(conn, sub.subscription_id)
    rounding = TaxRounding(sub.tax_rounding)
    return due_invoices(phases, sub.currency, sub.tax_rate, as_of, billed, rounding)


def _billed(conn: psycopg.Connection, sub: _Subscription, draft: InvoiceDraft) -> bool:
    """Whether another run billed the draft since it was drafted (its charges all start on
    its billing date). Asked under the subscription's lock, so the answer holds."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM billing.invoice_lines WHERE subscription_id = %s "
        "AND period_start = %s AND phase_no = ANY(%s))",
        (sub.subscription_id, draft.billing_date, [c.phase_no for c in draft.charges]),
    ).fetchone()
    return bool(row and row[0])


def _write(
    conn: psycopg.Connection, serde: Serde, events: Sequence[Event], traceparent: str | None
) -> None:
    """Into billing's outbox; with the subscription's trace, so the invoice joins it."""
    headers: Headers = [("traceparent", traceparent.encode())] if traceparent else []
    outbox.add(conn, PUBLISHER, [serde.outgoing(e, headers) for e in events])
    outbox.notify(conn, PUBLISHER)


def run_invoices(
    settings: Settings,
    as_of: date,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> RunResult:
    """Issue every invoice due by `as_of` that is not issued yet, and publish them. Every due
    invoice is drafted first, then issued in order of billing date (then subscription), one
    transaction each, so each entity's numbers follow the dates. Running it again issues
    nothing new; a run that stops half-way leaves no gap, and the next run finishes it."""
    serde = Serde(registry_client(settings))
    issued: list[InvoiceIssued] = []
    with db.connect(settings) as conn:
        # Started before the subscriptions are read: the run sees every one created before.
        run = conn.execute(
            "INSERT INTO billing.invoice_runs (as_of, started_at) VALUES (%s, now()) "
            "RETURNING run_id",
            (as_of,),
        ).fetchone()
        assert run is not None
        subscriptions = (
            conn.cursor(row_factory=class_row(_Subscription))
            .execute(
                "SELECT s.subscription_id, s.opportunity_id, s.account_id, s.legal_entity, "
                "s.currency, s.correlation_id, e.tax_rate, e.tax_rounding, e.payment_terms_days, "
                "s.traceparent "
                "FROM billing.subscriptions s JOIN billing.legal_entities e USING (legal_entity) "
                "WHERE EXISTS (SELECT 1 FROM billing.subscription_phases p "
                "WHERE p.subscription_id = s.subscription_id AND p.start_date <= %s) "
                "ORDER BY s.subscription_id",
                (as_of,),
            )
            .fetchall()
        )
        conn.commit()
        due = sorted(
            ((d, sub) for sub in subscriptions for d in _drafts(conn, sub, as_of)),
            key=lambda due: (due[0].billing_date, due[1].subscription_id),
        )
        conn.commit()  # so that each invoice below commits in a transaction of its own
        for n, (draft, sub) in enumerate(due, 1):
            with conn.transaction():
                # Two runs at once: the second waits here, then finds the period billed.
                conn.execute(
                    "SELECT 1 FROM billing.subscriptions WHERE subscription_id = %s FOR UPDATE",
                    (sub.subscription_id,),
                )
                event = None if _billed(conn, sub, draft) else _issue(conn, sub, draft)
                if event is not None:
                    _write(conn, serde, [event], sub.traceparent)
            if event is not None:
                issued.append(event)
            progress(n, len(due))
        conn.execute(
            "UPDATE billing.invoice_runs SET finished_at = now() WHERE run_id = %s", (run[0],)
        )
        conn.commit()
    published = Relay(PUBLISHER, settings).drain()
    return RunResult(len(subscriptions), issued, published)


def issue_credit_memo(
    settings: Settings, invoice: str, line_id: str, reason: str, issued_on: date
) -> CreditMemoIssued:
    """Credit one invoice line in full, tax included, and publish the credit memo."""
    serde = Serde(registry_client(settings))
    with db.connect(settings) as conn, conn.transaction():
        head = conn.execute(
            "SELECT i.account_id, i.legal_entity, i.currency, s.correlation_id, s.traceparent "
            "FROM billing.invoices i JOIN billing.subscriptions s USING (subscription_id) "
            "WHERE i.invoice_id = %s",
            (invoice,),
        ).fetchone()
        line = conn.execute(
            "SELECT description, sku, amount, tax_amount, period_start, period_end, tax_rate "
            "FROM billing.invoice_lines WHERE invoice_id = %s AND line_id = %s",
            (invoice, line_id),
        ).fetchone()
        if head is None or line is None:
            raise LookupError(f"billing has no invoice {invoice} with a line {line_id}")
        amount, tax = line[2], line[3]
        memo = CreditMemoIssued(
            event_id=uuid.uuid4(),
            occurred_at=datetime.now(UTC),
            source=PUBLISHER,
            correlation_id=head[3],
            credit_memo_id=f"CM-{invoice.removeprefix('INV-')}-{line_id}",
            invoice_id=invoice,
            account_id=head[0],
            legal_entity=head[1],
            currency=head[2],
            issued_on=issued_on,
            lines=[
                InvoiceLine(
                    line_id=line_id,
                    description=f"Credit: {line[0]} — {reason}",
                    sku=line[1],
                    amount=amount,
                    tax_amount=tax,  # the share the invoice gave it, however it was rounded
                    service_period_start=line[4] if line[5] else None,
                    service_period_end=line[5],
                    tax_rate=line[6],
                )
            ],
            subtotal=amount,
            tax_total=tax,
            total=amount + tax,
        )
        conn.execute(
            "INSERT INTO billing.credit_memos (credit_memo_id, invoice_id, line_id, issued_on, "
            "reason, total) VALUES (%s, %s, %s, %s, %s, %s)",
            (memo.credit_memo_id, invoice, line_id, issued_on, reason, memo.total),
        )
        _write(conn, serde, [memo], head[4])
    Relay(PUBLISHER, settings).drain()
    return memo

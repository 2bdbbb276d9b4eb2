"""The story tests/e2e/test_books.py plays: fourteen months of order to cash in four legal
entities, each month billed, posted, paid, credited, recognised, closed and reconciled."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from finsync.books import close
from finsync.books.reconcile import reconcile
from finsync.contract.events import (
    BillingPeriod,
    CreditMemoIssued,
    InvoiceIssued,
    OpportunityClosed,
    OpportunityLine,
    PaymentSettled,
)
from finsync.contract.topics import SERVICES, retry_topic
from finsync.domain.billing_schedule import add_months, line_value
from finsync.reference.billing import jobs as billing_jobs
from finsync.reference.erp import recognition
from finsync.runtime import clients, db, runner
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from tests.support import crm_account, eventually, publish

FIRST = date(2026, 1, 1)
MONTHS = 14
ENTITIES = {"ACME-US": ("US", "USD"), "ACME-DE": ("DE", "EUR"), "ACME-UK": ("GB", "GBP"),
            "ACME-JP": ("JP", "JPY")}  # fmt: skip
JPY_SHORT = Decimal(3)  # under the yen's write-off tolerance
GL_MAPPING = Path(__file__).resolve().parents[2] / "deploy" / "gl-mapping.example.toml"


def month_end(first: date) -> date:
    end: date = add_months(first, 1) - timedelta(days=1)
    return end


@dataclass
class Books:
    settings: Settings  # the scratch database the services write to
    tag: str
    started: datetime
    opportunities: dict[str, OpportunityClosed] = field(default_factory=dict)
    payments: list[PaymentSettled] = field(default_factory=list)
    credit_memos: list[str] = field(default_factory=list)
    paid_credits: list[CreditMemoIssued] = field(default_factory=list)
    closes: list[tuple[str, date]] = field(default_factory=list)
    reports: list[dict[str, object]] = field(default_factory=list)


def skip_to_end(settings: Settings) -> None:
    """The services' groups start at the end of their topics: what earlier tests left behind
    belongs to the books of another database. The broker takes the commit once the group is
    empty, so a member an earlier test killed must first time out of it."""
    for name in SERVICES:
        topics = [*runner.load(name).handlers, retry_topic(name)]
        group = clients.consumer(settings, name)
        try:
            ends = []
            for topic in topics:
                meta = group.list_topics(topic, timeout=10).topics[topic]
                for p in meta.partitions:
                    high = group.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    ends.append(TopicPartition(topic, p, high))
            done = partial(_committed, group, ends)
            eventually(done, 60, f"the group {name} to be empty")
        finally:
            group.close()


def _committed(group: Consumer, offsets: list[TopicPartition]) -> bool:
    try:
        group.commit(offsets=offsets, asynchronous=False)
    except KafkaException as exc:
        if exc.args[0].code() in (KafkaError.UNKNOWN_MEMBER_ID, KafkaError.REBALANCE_IN_PROGRESS):
            return False  # the group still has members
        raise
    return True


def load_gl_mapping(scratch: Settings) -> None:
    env = {**os.environ, "FINSYNC_DATABASE_URL": scratch.database_url}
    done = subprocess.run(
        [sys.executable, "-m", "finsync.cli.main", "erp", "mapping", "load", str(GL_MAPPING)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _line(n: int, sku: str, price: str, period: BillingPeriod, start: date) -> OpportunityLine:
    return OpportunityLine(
        line_id=str(n),
        sku=sku,
        description=f"{sku} line {n}",
        quantity=Decimal(1),
        unit_price=Decimal(price),
        billing_period=period,
        start_date=start,
        term_months=1 if period is BillingPeriod.ONE_TIME else 12,
    )


def _contracts() -> dict[str, list[OpportunityLine]]:
    m, q, a, once = (BillingPeriod.MONTHLY, BillingPeriod.QUARTERLY, BillingPeriod.ANNUAL,
                     BillingPeriod.ONE_TIME)  # fmt: skip
    return {
        "ACME-US": [
            _line(1, "SEAT", "100.00", m, FIRST),
            _line(2, "ANALYTICS", "1200.00", a, date(2026, 1, 2)),
            _line(3, "ONBOARDING", "500.00", once, FIRST),
        ],
        "ACME-DE": [
            _line(1, "SEAT", "250.00", m, date(2026, 1, 15)),
            _line(2, "SUPPORT", "900.00", q, date(2026, 2, 1)),
        ],
        "ACME-UK": [_line(1, "ANALYTICS", "2400.00", a, date(2026, 3, 10))],
        # Four lines of ¥1,005 at 10 %: ¥101 each per line, but ¥402 per invoice.
        "ACME-JP": [_line(n, "SEAT", "1005", m, FIRST) for n in range(1, 5)],
    }


def open_accounts(b: Books, serde: Serde) -> None:
    accounts = []
    for entity, (country, currency) in ENTITIES.items():
        accounts.append(
            crm_account(
                f"ACC-{b.tag}-{entity}",
                1,
                f"Books {entity} {b.tag} Ltd",
                country=country,
                currency=currency,
                legal_entity=entity,
            )
        )
    publish(b.settings, serde, accounts)
    ids = [a.account_id for a in accounts]
    eventually(lambda: _count(b, "finsync.account_xref", "account_id", ids) == len(ids), 60,
               "the accounts to sync")  # fmt: skip
    opportunities = []
    for entity, lines in _contracts().items():
        _, currency = ENTITIES[entity]
        value = sum(
            (line_value(x.quantity, x.unit_price, x.billing_period, x.term_months, currency)
             or Decimal(0) for x in lines),
            Decimal(0),
        )  # fmt: skip
        opportunities.append(
            OpportunityClosed(
                event_id=uuid.uuid4(),
                occurred_at=datetime.now(UTC),
                source="crm",
                correlation_id=f"corr-{b.tag}-{entity}",
                opportunity_id=f"OPP-{b.tag}-{entity}",
                account_id=f"ACC-{b.tag}-{entity}",
                closed_at=datetime(2025, 12, 20, tzinfo=UTC),
                currency=currency,
                legal_entity=entity,
                lines=lines,
                total_contract_value=value,
            )
        )
    publish(b.settings, serde, opportunities)
    b.opportunities = {o.opportunity_id: o for o in opportunities}
    ids = list(b.opportunities)
    eventually(lambda: _count(b, "billing.subscriptions", "opportunity_id", ids) == len(ids), 60,
               "the subscriptions")  # fmt: skip


def _count(b: Books, table: str, column: str, ids: list[str]) -> int:
    with db.connect(b.settings) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {table} WHERE {column} = ANY(%s)",  # names are this test's
            (ids,),
        ).fetchone()
    return int(row[0]) if row else 0


def _posted_everything(b: Books) -> bool:
    with db.connect(b.settings) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM billing.invoices) "
            "     - (SELECT count(*) FROM erp.ar_open_items), "
            "       (SELECT count(*) FROM billing.credit_memos) "
            "     - (SELECT count(*) FROM erp.ar_credits)"
        ).fetchone()
    return bool(row == (0, 0))


def _owed(b: Books, invoices: list[InvoiceIssued]) -> dict[str, Decimal]:
    """What is open on each invoice: less than its total when it used customer credit."""
    with db.connect(b.settings) as conn:
        rows = conn.execute(
            "SELECT invoice_id, open_amount FROM erp.ar_open_items WHERE invoice_id = ANY(%s)",
            ([i.invoice_id for i in invoices],),
        ).fetchall()
    return {i: amount for i, amount in rows}


def _pay(b: Books, serde: Serde, invoices: list[InvoiceIssued], unpaid: set[str]) -> None:
    payments = []
    owed = _owed(b, invoices)
    for inv in invoices:
        if inv.invoice_id in unpaid or not owed[inv.invoice_id]:
            continue
        short = JPY_SHORT if inv.currency == "JPY" else Decimal(0)
        payments.append(
            PaymentSettled(
                event_id=uuid.uuid4(),
                occurred_at=datetime.now(UTC),
                source="gateway",
                correlation_id=inv.correlation_id,
                payment_id=f"PAY-{inv.invoice_id}",
                account_id=inv.account_id,
                invoice_id=inv.invoice_id,
                amount=owed[inv.invoice_id] - short,
                fee_amount=Decimal(0),
                currency=inv.currency,
                settled_at=datetime.combine(
                    min(inv.issued_on + timedelta(days=5), month_end(inv.issued_on.replace(day=1))),
                    datetime.min.time(),
                    UTC,
                ),
                method="CARD",
                gateway_reference=f"ch_{uuid.uuid4().hex[:12]}",
            )
        )
    publish(b.settings, serde, payments)
    b.payments += payments
    ids = [p.payment_id for p in b.payments]
    eventually(lambda: _count(b, "erp.payments", "payment_id", ids) == len(ids), 60,
               "the payments to apply")  # fmt: skip


# Credit memos a month after their invoice, on invoices left unpaid for them:
# (month the memo is issued in, invoice id's opportunity entity, invoice's billing date, line).
CREDITS = [
    (date(2026, 6, 1), "ACME-DE", date(2026, 5, 1), "1"),  # the quarterly support line
    (date(2026, 10, 1), "ACME-JP", date(2026, 9, 1), "2"),  # one yen line and its tax share
]


# A credit memo on a PAID invoice, issued once the month's payments are in: all of it is held
# as customer credit (2400), which the customer's next invoice, a month later, uses.
PAID_CREDITS = [(date(2026, 5, 1), "ACME-JP", date(2026, 4, 1), "1")]  # ¥1,005 and its tax


def _unpaid(b: Books) -> set[str]:
    return {billing_jobs.invoice_id(f"OPP-{b.tag}-{e}", d) for _, e, d, _ in CREDITS}


def _credit_paid_invoices(b: Books, first: date) -> None:
    for memo_month, entity, billed, line in PAID_CREDITS:
        if memo_month == first:
            invoice = billing_jobs.invoice_id(f"OPP-{b.tag}-{entity}", billed)
            memo = billing_jobs.issue_credit_memo(
                b.settings, invoice, line, "credited after payment", first + timedelta(days=9)
            )
            b.credit_memos.append(memo.credit_memo_id)
            b.paid_credits.append(memo)
    eventually(lambda: _posted_everything(b), 60, f"the credit memos of {first:%Y-%m} to post")


def play_month(b: Books, serde: Serde, first: date) -> None:
    last = month_end(first)
    issued = billing_jobs.run_invoices(b.settings, last).invoices
    for memo_month, entity, billed, line in CREDITS:
        if memo_month == first:
            invoice = billing_jobs.invoice_id(f"OPP-{b.tag}-{entity}", billed)
            memo = billing_jobs.issue_credit_memo(
                b.settings, invoice, line, "credited a month later", first + timedelta(days=9)
            )
            b.credit_memos.append(memo.credit_memo_id)
    eventually(lambda: _posted_everything(b), 60, f"billing's documents of {first:%Y-%m} to post")
    _pay(b, serde, issued, _unpaid(b))
    _credit_paid_invoices(b, first)
    recognition.recognize(b.settings, last)
    with db.connect(b.settings) as conn:
        for entity in ENTITIES:
            result = close.close(conn, entity, first, "test")
            assert result.outcome is close.Outcome.CLOSED, (str(result), result.blockers)
            b.closes.append((entity, first))
    report = reconcile(b.settings, since=b.started)
    b.reports.append(report.as_dict())
    assert not report.breaks, [f.as_dict() for f in report.breaks]


def scalar(b: Books, sql: str, *params: object) -> object:
    with db.connect(b.settings) as conn:
        row = conn.execute(sql, params).fetchone()
    return row[0] if row else None

"""Fourteen months of books on the real stack: order to cash with a period close every month.

The four services run as processes on a database of their own (the stack's scratch database,
reset first). Four legal entities sell monthly, quarterly, annual and one-time lines, some
starting mid-month; ACME-JP rounds tax once per rate per invoice. Every month billing runs,
the invoices post, customers pay (a yen payment short within tolerance), credit memos arrive a
month after their invoice (one on a paid invoice: held as customer credit, which the next
month's invoice uses), revenue is recognised through the month's end, each entity closes
the month, and `finsync reconcile` must find nothing. The last test plants one break of each
kind in the database and sees each reported by name. The books post under the example GL
mapping (deploy/gl-mapping.example.toml): analytics to 4010 and 2310, yen consumption tax to
2210, German VAT to 2220, the rest to the default accounts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from finsync.bench.invoice_poster import bench_settings, reset_database
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
from finsync.scenario.processes import ServiceProcess
from finsync.settings import Settings
from tests.support import crm_account, eventually, publish

pytestmark = pytest.mark.e2e

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


def _skip_to_end(settings: Settings) -> None:
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


@pytest.fixture(scope="module")
def books(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Books]:
    scratch = bench_settings(settings)
    reset_database(scratch)
    _load_gl_mapping(scratch)
    _skip_to_end(settings)
    logs = tmp_path_factory.mktemp("books")
    env = {
        "FINSYNC_DATABASE_URL": scratch.database_url,
        "FINSYNC_RETRY_BASE_SECONDS": "0.3",
        "FINSYNC_RETRY_BUDGET_SECONDS": "60",
    }
    running = [ServiceProcess(name, logs, env).start(wait=False) for name in SERVICES]
    try:
        for service in running:
            service.wait_log("consuming ", 90)
        yield Books(scratch, uuid.uuid4().hex[:6], datetime.now(UTC))
    finally:
        for service in running:
            tail = "\n".join(service.log.read_text().splitlines()[-10:])
            print(f"--- {service.log} ---\n{tail}")
            service.stop()


def _load_gl_mapping(scratch: Settings) -> None:
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


def _open_accounts(b: Books, serde: Serde) -> None:
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


def _month(b: Books, serde: Serde, first: date) -> None:
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


@pytest.fixture(scope="module")
def played(books: Books, serde: Serde) -> Books:
    _open_accounts(books, serde)
    for k in range(MONTHS):
        _month(books, serde, add_months(FIRST, k))
    return books


def test_every_month_closes_and_reconciles_with_no_break(played: Books) -> None:
    assert len(played.closes) == MONTHS * len(ENTITIES)
    assert len(played.reports) == MONTHS
    assert all(r["ok"] for r in played.reports)
    assert len(played.credit_memos) == len(CREDITS) + len(PAID_CREDITS)


def _scalar(b: Books, sql: str, *params: object) -> object:
    with db.connect(b.settings) as conn:
        row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def test_revenue_is_released_month_by_month_and_deferred_revenue_runs_out(played: Books) -> None:
    # The US monthly seat line, 100 a month from January: 1,200 recognised, none deferred.
    inv = [billing_jobs.invoice_id(f"OPP-{played.tag}-ACME-US", add_months(FIRST, k))
           for k in range(12)]  # fmt: skip
    released = _scalar(
        played,
        "SELECT sum(amount - cancelled_amount) FROM erp.revenue_schedules "
        "WHERE invoice_id = ANY(%s) AND line_id = '1' AND recognized_entry_id IS NOT NULL",
        inv,
    )
    assert released == Decimal("1200.00")
    # The annual line from 2026-01-02: by 2027-02-28 the year is over, and all of it released.
    annual = billing_jobs.invoice_id(f"OPP-{played.tag}-ACME-US", date(2026, 1, 2))
    rows = _scalar(
        played,
        "SELECT array_agg(amount ORDER BY period) FROM erp.revenue_schedules "
        "WHERE invoice_id = %s AND recognized_entry_id IS NULL AND amount > cancelled_amount",
        annual,
    )
    assert rows is None
    # UK's annual line from 2026-03-10 still has 9 days of March 2027 to release.
    uk = billing_jobs.invoice_id(f"OPP-{played.tag}-ACME-UK", date(2026, 3, 10))
    left = _scalar(
        played,
        "SELECT sum(amount - cancelled_amount) FROM erp.revenue_schedules "
        "WHERE invoice_id = %s AND recognized_entry_id IS NULL",
        uk,
    )
    assert left == Decimal("59.18")  # 2,400 x 9 / 365, the schedule's last month


def test_yen_invoices_are_taxed_once_per_rate_per_invoice(played: Books) -> None:
    taxes = _scalar(
        played,
        "SELECT array_agg(DISTINCT tax_total) FROM billing.invoices WHERE legal_entity = 'ACME-JP'",
    )
    assert taxes == [Decimal(402)]  # ¥4,020 at 10 %, not 4 x ¥101 = ¥404


def test_each_entitys_invoice_numbers_run_without_gaps_in_date_order(played: Books) -> None:
    with db.connect(played.settings) as conn:
        rows = conn.execute(
            "SELECT legal_entity, invoice_number FROM billing.invoices "
            "ORDER BY legal_entity, issued_on, invoice_number"
        ).fetchall()
    for entity in ENTITIES:
        numbers = [n for e, n in rows if e == entity]
        by_year: dict[str, list[int]] = {}
        for number in numbers:
            _, year, seq = number.rsplit("-", 2)
            by_year.setdefault(year, []).append(int(seq))
        for seqs in by_year.values():
            assert seqs == list(range(1, len(seqs) + 1)), (entity, seqs)


def test_a_memo_on_a_paid_invoice_is_held_as_credit_and_the_next_invoice_uses_it(
    played: Books,
) -> None:
    [memo] = played.paid_credits  # ¥1,005 and the ¥101 of the invoice's ¥402 it was given
    june = billing_jobs.invoice_id(f"OPP-{played.tag}-ACME-JP", date(2026, 6, 1))
    with db.connect(played.settings) as conn:
        credits = conn.execute(
            "SELECT kind, document_id, amount FROM erp.customer_credits WHERE account_id = %s "
            "ORDER BY kind",
            (memo.account_id,),
        ).fetchall()
        moved = conn.execute(
            "SELECT e.idempotency_key, sum(l.credit - l.debit) FROM erp.journal_lines l "
            "JOIN erp.journal_entries e USING (entry_id) WHERE l.account_code = '2400' "
            "AND e.legal_entity = 'ACME-JP' GROUP BY 1 ORDER BY 1",
        ).fetchall()
        total, settled, left = conn.execute(
            "SELECT a.original_amount, p.applied_amount + p.written_off_amount, a.open_amount "
            "FROM erp.ar_open_items a JOIN erp.payments p USING (invoice_id) "
            "WHERE a.invoice_id = %s",
            (june,),
        ).fetchone()
    assert memo.total == Decimal(1106)
    assert credits == [
        ("CREATED", memo.credit_memo_id, Decimal(1106)),
        ("USED", june, Decimal(-1106)),
    ]
    assert moved == [
        (f"credit-application:{june}", Decimal(-1106)),  # debits 2400, credits AR
        (f"credit-memo:{memo.credit_memo_id}", Decimal(1106)),
    ]
    # June's ¥4,422 less the ¥1,106 of credit: ¥3,316 owed, paid ¥3 short and written off.
    assert (total, settled, left) == (Decimal(4422), Decimal(3316), Decimal(0))


def test_lines_post_to_the_accounts_the_gl_mapping_names(played: Books) -> None:
    with db.connect(played.settings) as conn:
        ruled = conn.execute(
            "SELECT DISTINCT e.legal_entity, l.account_code, l.mapping_rule "
            "FROM erp.journal_lines l JOIN erp.journal_entries e USING (entry_id) "
            "WHERE l.mapping_rule IS NOT NULL ORDER BY 1, 2"
        ).fetchall()
        balances = dict(
            conn.execute(
                "SELECT e.legal_entity || ' ' || l.account_code, sum(l.credit - l.debit) "
                "FROM erp.journal_lines l JOIN erp.journal_entries e USING (entry_id) "
                "WHERE l.account_code IN ('2200', '2210', '2310', '4010') GROUP BY 1"
            ).fetchall()
        )
    # The rules name the lines that chose by them: a deferred analytics line, a taxed yen or
    # German line (an invoice's, or a credit memo's taking it back).
    assert ruled == [
        ("ACME-DE", "2220", "de-vat-19"),
        ("ACME-JP", "2210", "jp-consumption-10"),
        ("ACME-UK", "2310", "analytics"),
        ("ACME-US", "2310", "analytics"),
    ]
    assert balances == {
        "ACME-JP 2210": Decimal(4622),  # 12 invoices x ¥402, less two memos' ¥101
        "ACME-UK 2200": Decimal("480.00"),  # 20 % of the year's 2,400: no rule for UK tax
        "ACME-UK 2310": Decimal("59.18"),  # the 9 days of March 2027 still deferred
        "ACME-UK 4010": Decimal("2340.82"),
        "ACME-US 2200": Decimal("210.25"),  # 7.25 % of 12 x 100, 1,200 and 500
        "ACME-US 2310": Decimal("0.00"),  # the year from 2026-01-02 all released
        "ACME-US 4010": Decimal("1200.00"),
    }


def _reconcile_json(b: Books) -> dict[str, object]:
    env = {**os.environ, "FINSYNC_DATABASE_URL": b.settings.database_url}
    done = subprocess.run(
        [sys.executable, "-m", "finsync.cli.main", "reconcile", "--json",
         "--since", b.started.isoformat()],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    report: dict[str, object] = json.loads(done.stdout)
    report["exit"] = done.returncode
    return report


def test_reconcile_reports_each_planted_break_by_its_documents(played: Books, serde: Serde) -> None:
    clean = _reconcile_json(played)
    assert clean["exit"] == 0 and clean["breaks"] == [], clean["breaks"]
    planted = _plant(played, serde)
    report = _reconcile_json(played)
    assert report["exit"] == 1
    found: dict[str, list[str]] = {}
    for b in report["breaks"]:  # type: ignore[attr-defined]
        found.setdefault(b["check"], []).append(b["scope"])
    assert found == planted


def _plant(b: Books, serde: Serde) -> dict[str, list[str]]:
    """One break of each kind, straight into the systems' tables (and a CRM and a gateway
    document nobody acted on); returns check -> the scope each must be reported under."""
    us = f"OPP-{b.tag}-ACME-US"
    paid = billing_jobs.invoice_id(us, date(2026, 2, 1))
    taxed = billing_jobs.invoice_id(us, date(2026, 3, 1))
    deferred = billing_jobs.invoice_id(f"OPP-{b.tag}-ACME-UK", date(2026, 3, 10))
    orphan_opp = f"OPP-{b.tag}-ORPHAN"
    orphan_pay = f"PAY-{b.tag}-ORPHAN"
    with db.connect(b.settings) as conn, conn.transaction():
        # A journal line written around the balance trigger, on an account no check ties.
        conn.execute("ALTER TABLE erp.journal_lines DISABLE TRIGGER journal_balanced")
        entry = conn.execute(
            "SELECT entry_id, idempotency_key FROM erp.journal_entries "
            "WHERE legal_entity = 'ACME-DE' ORDER BY entry_id LIMIT 1"
        ).fetchone()
        conn.execute(
            "INSERT INTO erp.journal_lines (entry_id, line_no, account_code, debit, credit) "
            "VALUES (%s, 99, '6100', 1, 0)",
            (entry[0],),
        )
        conn.execute("ALTER TABLE erp.journal_lines ENABLE TRIGGER journal_balanced")
        conn.execute(  # AR changed without a journal
            "UPDATE erp.ar_open_items SET open_amount = open_amount + 1 WHERE invoice_id = %s",
            (paid,),
        )
        pay = conn.execute(  # unapplied cash changed without a journal
            "UPDATE erp.payments SET applied_amount = applied_amount - 1, "
            "unapplied_amount = unapplied_amount + 1 WHERE invoice_id = %s "
            "RETURNING payment_id",
            (taxed,),
        ).fetchone()
        conn.execute(  # a schedule that no longer matches what its invoice deferred
            "UPDATE erp.revenue_schedules SET amount = amount + 1 WHERE invoice_id = %s "
            "AND period = '2027-03-01'",
            (deferred,),
        )
        conn.execute(  # billing's tax changed after posting
            "UPDATE billing.invoices SET tax_total = tax_total + 1 WHERE invoice_id = %s",
            (taxed,),
        )
        conn.execute(  # an invoice billing issued that never reached the ERP
            "INSERT INTO billing.invoices (invoice_id, invoice_number, subscription_id, "
            "billing_date, account_id, legal_entity, currency, issued_on, due_on, subtotal, "
            "tax_total, total) SELECT 'INV-' || %s, 'X-' || %s, subscription_id, '2030-01-01', "
            "account_id, legal_entity, currency, '2030-01-01', '2030-01-31', 1, 0, 1 "
            "FROM billing.subscriptions WHERE opportunity_id = %s",
            (b.tag, b.tag, us),
        )
        conn.execute(  # a due period whose invoice line is gone
            "DELETE FROM billing.invoice_lines WHERE invoice_id = %s AND line_id = '1' "
            "AND NOT EXISTS (SELECT 1 FROM billing.credit_memos WHERE invoice_id = %s)",
            (paid, paid),
        )
        [memo] = b.paid_credits
        conn.execute(  # customer credit changed without a journal, its balance alike
            "UPDATE erp.customer_credits SET amount = amount + 1 "
            "WHERE kind = 'CREATED' AND document_id = %s",
            (memo.credit_memo_id,),
        )
        conn.execute(
            "UPDATE erp.customer_credit_balances SET held = held + 1 WHERE account_id = %s "
            "AND legal_entity = %s AND currency = %s",
            (memo.account_id, memo.legal_entity, memo.currency),
        )
        conn.execute(  # a journal moving a mapped tax account that no document explains
            "INSERT INTO erp.journal_lines (entry_id, line_no, account_code, debit, credit) "
            "SELECT journal_entry_id, n, a, d, c FROM (SELECT journal_entry_id FROM erp.payments "
            "WHERE legal_entity = 'ACME-JP' ORDER BY payment_id LIMIT 1) p, "
            "(VALUES (97, '6100', 1, 0), (98, '2210', 0, 1)) AS x(n, a, d, c)"
        )
        customer = conn.execute(  # the ERP's customer renamed behind the cross-reference
            "UPDATE erp.customers SET name = name || ' (renamed)' WHERE account_id = %s "
            "RETURNING account_id",
            (f"ACC-{b.tag}-ACME-JP",),
        ).fetchone()
    orphan = replace_ids(b.opportunities[f"OPP-{b.tag}-ACME-DE"], orphan_opp)
    publish(b.settings, serde, [orphan, _payment(b, orphan_pay, "JPY")])
    sub = _scalar(
        b, "SELECT subscription_id FROM billing.subscriptions WHERE opportunity_id = %s", us
    )
    return {
        "trial-balance": ["ACME-DE EUR"],
        "gl-ar": [f"invoice {paid}"],
        "gl-unapplied-cash": [f"payment {pay[0]}"],
        "gl-deferred-revenue": [f"invoice {deferred}"],
        "gl-tax": [f"invoice {taxed}", "ACME-JP JPY"],
        "gl-customer-credit": [f"credit memo {memo.credit_memo_id}"],
        "opportunity-subscription": [f"opportunity {orphan_opp}"],
        "due-periods-invoiced": [f"subscription {sub}"],
        "invoice-posted": [f"invoice INV-{b.tag}"],
        "payment-applied": [f"payment {orphan_pay}"],
        "customers-agree": [f"account {customer[0]}"],
    }


def replace_ids(o: OpportunityClosed, opportunity_id: str) -> OpportunityClosed:
    """The same deal under another id, for an account the CRM never sent: nothing can act."""
    return o.model_copy(
        update={"event_id": uuid.uuid4(), "opportunity_id": opportunity_id,
                "account_id": f"{opportunity_id}-ACC"}
    )  # fmt: skip


def _payment(b: Books, payment_id: str, currency: str) -> PaymentSettled:
    return PaymentSettled(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        source="gateway",
        correlation_id=f"corr-{payment_id}",
        payment_id=payment_id,
        account_id=f"{payment_id}-ACC",  # never synced: it waits in retry
        invoice_id=None,
        amount=Decimal(1000),
        fee_amount=Decimal(0),
        currency=currency,
        settled_at=datetime(2027, 2, 20, tzinfo=UTC),
        method="CARD",
        gateway_reference="ch_orphan",
    )

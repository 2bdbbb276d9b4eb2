"""finance-analytics on the real stack: invoice-poster and payment-settler book a legal entity
of this test's own in the reference ERP, the app (a process) counts their outbound events,
is killed with SIGKILL mid-stream and started again, reads relay duplicates and re-sent deals,
and its figures must still equal what SQL over the ERP says."""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from finsync.cli.main import main as finsync
from finsync.contract.events import (
    CreditMemoIssued,
    FinanceKpis,
    InvoiceIssued,
    InvoiceLine,
    OpportunityClosed,
    PaymentSettled,
)
from finsync.contract.topics import ANALYTICS, KPI_TOPIC, dlq_topic
from finsync.ops.kpis import AnalyticsUnavailable, Kpis, fetch
from finsync.runtime import clients, db
from finsync.runtime.messages import Outgoing, Record
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from services.finance_analytics.ledger import bucket
from services.finance_analytics.reader import DEAD_LETTER_TOPICS, EVENT_TOPICS
from tests.integration.port_support import a_synced_account, uid
from tests.support import (
    FAST_RETRIES,
    ServiceProcess,
    commit_at_end,
    eventually,
    free_port,
    publish,
    publish_raw,
)

pytestmark = pytest.mark.integration

D = Decimal
TODAY = datetime.now(UTC).date()
ENT = f"AN-{uuid.uuid4().hex[:8].upper()}"  # a book of this test's alone
READ = [*EVENT_TOPICS, *DEAD_LETTER_TOPICS]


def records_since(
    settings: Settings, starts: dict[tuple[str, int], int], topics: list[str]
) -> list[Record]:
    """Every record of `topics` from the given offsets to their current ends."""
    c = Consumer({**settings.kafka_config(), "group.id": f"read-{uuid.uuid4()}"})
    out: list[Record] = []
    try:
        for (topic, partition), start in starts.items():
            if topic not in topics:
                continue
            tp = TopicPartition(topic, partition)
            end = c.get_watermark_offsets(tp, timeout=10)[1]
            if end <= start:
                continue
            c.assign([TopicPartition(topic, partition, start)])
            while True:
                m = c.poll(5)
                assert m is not None, f"{topic}[{partition}] ended before offset {end}"
                assert m.error() is None, m.error()
                _, ts = m.timestamp()
                out.append(
                    Record(topic, partition, m.offset(), ts, m.key(), m.value(), m.headers() or [])
                )
                if m.offset() >= end - 1:
                    break
    finally:
        c.close()
    return out


class App:
    """finance-analytics as `finsync run` starts it, on a group and port of its own."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.group = f"{ANALYTICS}-{uuid.uuid4().hex[:8]}"
        port = free_port()
        self.settings = dataclasses.replace(settings, analytics_port=port)
        self.starts = commit_at_end(settings, self.group, [*READ, dlq_topic(ANALYTICS), KPI_TOPIC])
        self.env = {
            "FINSYNC_ANALYTICS_GROUP": self.group,
            "FINSYNC_ANALYTICS_PORT": str(port),
            "FINSYNC_ANALYTICS_PUBLISH_SECONDS": "1",
        }
        self.log_dir = log_dir
        self.proc = self.start()

    def start(self) -> ServiceProcess:
        return ServiceProcess("finance-analytics", self.log_dir, self.env).start(wait=False)

    def kpis(self) -> Kpis | None:
        try:
            return fetch(self.settings, days=400)
        except AnalyticsUnavailable:
            return None

    def counted(self) -> int:
        k = self.kpis()
        return k.events_counted if k and k.ready else -1


@pytest.fixture
def app(settings: Settings, tmp_path: Path) -> Iterator[App]:
    a = App(settings, tmp_path)
    a.proc.wait_log("started", 90)
    yield a
    a.proc.stop()


@pytest.fixture
def booking(tmp_path: Path) -> Iterator[None]:
    running = [
        ServiceProcess(name, tmp_path, FAST_RETRIES).start(wait=False)
        for name in ("invoice-poster", "payment-settler")
    ]
    try:
        for service in running:
            service.wait_log("started", 90)
        yield
    finally:
        for service in running:
            service.stop()


def account(settings: Settings) -> str:
    with db.connect(settings) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO billing.legal_entities (legal_entity, name, tax_rate, payment_terms_days) "
            "VALUES (%s, 'Analytics test entity', 0, 30) ON CONFLICT DO NOTHING",
            (ENT,),
        )
        customer, _ = a_synced_account(conn, legal_entity=ENT)
    return customer.account_id


def env(key: str) -> dict[str, object]:
    return {
        "event_id": uuid.uuid4(),
        "occurred_at": datetime.now(UTC),
        "source": "test",
        "correlation_id": f"corr-{key}",
    }


def invoice(account_id: str, amount: str, issued_days_ago: int, due_in: int) -> InvoiceIssued:
    invoice_id, issued = uid("INV"), TODAY - timedelta(days=issued_days_ago)
    line = InvoiceLine(
        line_id="1", description="Platform", sku="PLATFORM", amount=D(amount), tax_amount=D(0)
    )
    return InvoiceIssued(
        **env(invoice_id), invoice_id=invoice_id, invoice_number=f"{ENT}-{invoice_id}",
        account_id=account_id, legal_entity=ENT, currency="EUR", issued_on=issued,
        due_on=issued + timedelta(days=due_in), lines=[line], subtotal=D(amount),
        tax_total=D(0), total=D(amount),
    )  # fmt: skip


def credit_memo(of: InvoiceIssued, amount: str) -> CreditMemoIssued:
    memo_id = uid("CM")
    line = InvoiceLine(
        line_id="1", description="Service credit", sku="PLATFORM", amount=D(amount),
        tax_amount=D(0),
    )  # fmt: skip
    return CreditMemoIssued(
        **env(memo_id), credit_memo_id=memo_id, invoice_id=of.invoice_id,
        account_id=of.account_id, legal_entity=ENT, currency="EUR", issued_on=TODAY,
        lines=[line], subtotal=D(amount), tax_total=D(0), total=D(amount),
    )  # fmt: skip


def payment(account_id: str, amount: str, invoice_id: str | None) -> PaymentSettled:
    payment_id = uid("PAY")
    return PaymentSettled(
        **env(payment_id), payment_id=payment_id, account_id=account_id, invoice_id=invoice_id,
        amount=D(amount), fee_amount=D(0), currency="EUR", settled_at=datetime.now(UTC),
        method="WIRE", gateway_reference=uid("GW"),
    )  # fmt: skip


def deal(account_id: str, i: int) -> OpportunityClosed:
    opportunity_id = uid("OPP")
    return OpportunityClosed(
        **env(opportunity_id), opportunity_id=opportunity_id, account_id=account_id,
        closed_at=datetime.now(UTC) - timedelta(days=i % 40), currency="EUR", legal_entity=ENT,
        lines=[], total_contract_value=D(1000 + i) / 100,
    )  # fmt: skip


def rows(settings: Settings, sql: str, *params: object) -> list[tuple[object, ...]]:
    with db.connect(settings) as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]


def posted(settings: Settings, *invoices: InvoiceIssued) -> bool:
    ids = [i.invoice_id for i in invoices]
    n = rows(settings, "SELECT count(*) FROM erp.ar_open_items WHERE invoice_id = ANY(%s)", ids)
    return n[0][0] == len(ids)


def erp_figures(settings: Settings, as_of: date) -> dict[str, Any]:
    """The book's figures by SQL over the reference ERP's documents."""
    items = rows(
        settings,
        "SELECT i.original_amount, i.open_amount, i.due_on, e.accounting_date "
        "FROM erp.ar_open_items i JOIN erp.journal_entries e ON e.entry_id = i.journal_entry_id "
        "WHERE i.legal_entity = %s",
        ENT,
    )
    aging = [D(0)] * 5
    billings: Counter[date] = Counter()
    for original, open_amount, due_on, day in items:
        assert isinstance(due_on, date) and isinstance(day, date)
        aging[bucket((as_of - due_on).days)] += D(str(open_amount))
        billings[day] += D(str(original))
    credits = rows(
        settings,
        "SELECT e.accounting_date, sum(c.amount) FROM erp.ar_credits c "
        "JOIN erp.ar_open_items i USING (invoice_id) "
        "JOIN erp.journal_entries e ON e.entry_id = c.journal_entry_id "
        "WHERE i.legal_entity = %s GROUP BY 1",
        ENT,
    )
    (cash,) = rows(
        settings,
        "SELECT coalesce(sum(a.applied_amount), 0), "
        "(SELECT coalesce(sum(unapplied_open), 0) FROM erp.payments WHERE legal_entity = %s) "
        "FROM erp.payment_applications a JOIN erp.payments p USING (payment_id) "
        "WHERE p.legal_entity = %s",
        ENT,
        ENT,
    )
    return {
        "billings by day": {d: v for d, v in billings.items()},
        "credits by day": {d: D(str(v)) for d, v in credits},
        "collections": D(str(cash[0])),
        "open AR": sum(aging, D(0)),
        "aging": tuple(aging),
        "unapplied cash": D(str(cash[1])),
    }


def app_figures(kpis: Kpis) -> dict[str, Any]:
    book = kpis.of(ENT, "EUR")
    last = book[-1]
    return {
        "billings by day": {r.day: r.billings for r in book if r.billings},
        "credits by day": {r.day: r.credits for r in book if r.credits},
        "collections": sum((r.collections for r in book), D(0)),
        "open AR": last.open_ar,
        "aging": last.aging,
        "unapplied cash": last.unapplied_cash,
    }


def test_figures_survive_a_kill_and_duplicates_and_tie_to_the_erp(
    settings: Settings, serde: Serde, booking: None, app: App, tmp_path: Path
) -> None:
    a0, a1, a2, a3, a4 = (account(settings) for _ in range(5))
    overdue_70, overdue_100 = invoice(a0, "1000.00", 100, 30), invoice(a0, "500.00", 130, 30)
    overdue_20, overdue_45 = invoice(a1, "800.00", 50, 30), invoice(a1, "300.00", 75, 30)
    prepaid, paid = invoice(a2, "1200.00", 5, 30), invoice(a3, "250.00", 0, 14)
    # Cash before its invoice: booked unapplied with an earmark, applied as the invoice posts.
    publish(settings, serde, [payment(a2, "400.00", prepaid.invoice_id)])
    invoices = [overdue_70, overdue_100, overdue_20, overdue_45, prepaid, paid]
    publish(settings, serde, invoices)
    publish_raw(settings, "billing.invoice-issued", b"INV-BROKEN", b"\x00 not avro")
    publish_raw(settings, "erp.invoice-posted", b"INV-BROKEN", b"\x00\x7f\xff\xff\xff nope")
    eventually(lambda: posted(settings, *invoices), 60, "invoices posted")
    publish(settings, serde, [payment(a0, "300.00", overdue_70.invoice_id)])
    publish(settings, serde, [payment(a1, "350.00", overdue_20.invoice_id)])
    publish(settings, serde, [payment(a3, "300.00", paid.invoice_id)])  # 50 over: unapplied
    publish(settings, serde, [payment(a4, "75.00", None)])  # no invoice: unapplied
    publish(settings, serde, [credit_memo(overdue_20, "100.00")])
    eventually(
        lambda: (
            rows(settings, "SELECT count(*) FROM erp.payments WHERE legal_entity = %s", ENT)
            == [(5,)]
        ),
        60,
        "payments applied",
    )
    # A credit memo on a paid invoice becomes the customer's credit balance; the customer's
    # next invoice uses it as it posts, and the auto-apply policy its unapplied cash.
    publish(settings, serde, [credit_memo(paid, "50.00")])
    eventually(
        lambda: (
            rows(
                settings,
                "SELECT count(*) FROM erp.ar_credits WHERE invoice_id = %s",
                paid.invoice_id,
            )
            == [(1,)]
        ),
        60,
        "credit memo posted",
    )
    uses_credit = invoice(a3, "120.00", 0, 30)
    publish(settings, serde, [uses_credit])
    eventually(lambda: posted(settings, uses_credit), 60, "invoice posted")

    # A burst of deals, and the app killed while it counts them.
    deals = [deal(a0, i) for i in range(1500)]
    before = eventually(lambda: app.counted() if app.counted() >= 0 else None, 30, "figures")
    publish(settings, serde, deals)
    killed_at = eventually(
        lambda: (n := app.counted()) > before + 100 and n, 60, "the app counting the deals"
    )
    app.proc.kill()
    app.proc = app.start()
    app.proc.wait_log("started", 90)
    # What a relay publishes again (same bytes, same event_id) and deals re-sent by the CRM
    # under new event ids count nothing more.
    ours = [
        r
        for r in records_since(settings, app.starts, ["erp.invoice-posted", "erp.payment-applied"])
        if r.value and r.value[:1] == b"\x00" and ENT.encode() in r.value
    ]
    assert len(ours) >= 10
    clients.send(
        clients.producer(settings, "test"),
        [Outgoing(r.topic, r.key, r.value, r.headers) for r in ours],
    )
    publish(settings, serde, [d.model_copy(update={"event_id": uuid.uuid4()}) for d in deals[:200]])

    expected_bookings = sum((d.total_contract_value for d in deals), D(0))

    seen: dict[str, object] = {}

    def settled() -> Kpis | None:
        k = app.kpis()
        if k is None or not k.ready or not k.of(ENT, "EUR"):
            return None
        bookings = sum((r.bookings for r in k.of(ENT, "EUR")), D(0))
        ours, erp = app_figures(k), erp_figures(settings, k.of(ENT, "EUR")[-1].day)
        seen.update(bookings=(bookings, expected_bookings), app=ours, erp=erp)
        return k if bookings == expected_bookings and ours == erp else None

    try:
        kpis = eventually(settled, 90, "figures equal to the ERP's")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {seen}") from exc
    assert kpis is not None
    assert killed_at < kpis.events_counted, "the kill came after the app had counted everything"
    last = kpis.of(ENT, "EUR")[-1]
    assert last.day == TODAY
    # Every bucket has something, so the test proves the aging, not just the total.
    assert all(a > 0 for a in last.aging), last.aging
    expected = erp_figures(settings, TODAY)
    net_90 = sum(
        (v for d, v in expected["billings by day"].items() if (TODAY - d).days < 90), D(0)
    ) - sum((v for d, v in expected["credits by day"].items() if (TODAY - d).days < 90), D(0))
    assert last.dso == (last.open_ar / net_90 * 90).quantize(D("0.1"))

    # Dead letters: the app's count per day is every record the services' dead-letter topics
    # took since it started; what it could not read itself is a dead letter of its own.
    letters = records_since(settings, app.starts, list(DEAD_LETTER_TOPICS))
    by_day: Counter[tuple[date, str]] = Counter(
        (datetime.fromtimestamp(r.timestamp_ms / 1000, UTC).date(), DEAD_LETTER_TOPICS[r.topic])
        for r in letters
    )
    assert "invoice-poster" in {s for _, s in by_day}
    assert {(d, s): n for d, s, n in kpis.dead_letters} == dict(by_day)
    own = records_since(settings, app.starts, [dlq_topic(ANALYTICS)])
    broken = [r for r in own if r.key == b"INV-BROKEN"]
    assert broken and broken[0].value == b"\x00\x7f\xff\xff\xff nope"
    assert "UnknownSchema" in (broken[0].header_text("__connect.errors.exception.class.name") or "")


def test_the_figures_are_published_and_printed(
    settings: Settings,
    serde: Serde,
    booking: None,
    app: App,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    customer = account(settings)
    due = invoice(customer, "640.00", 40, 30)  # 10 days past due
    publish(settings, serde, [due])
    eventually(lambda: posted(settings, due), 60, "invoice posted")

    def published() -> FinanceKpis | None:
        days = [
            serde.decode(KPI_TOPIC, r.value)
            for r in records_since(settings, app.starts, [KPI_TOPIC])
            if r.key == TODAY.isoformat().encode()
        ]
        newest = days[-1] if days else None
        assert newest is None or isinstance(newest, FinanceKpis)
        ours = [f for f in newest.figures if f.legal_entity == ENT] if newest else []
        return newest if ours and ours[0].ar_1_30 >= D("640.00") else None

    kpis = eventually(published, 60, "today's figures on analytics.finance-kpis")
    assert kpis is not None
    (ours,) = [f for f in kpis.figures if f.legal_entity == ENT]
    assert ours.net_billings == ours.billings - ours.credits
    assert ours.open_ar == sum(
        (ours.ar_current, ours.ar_1_30, ours.ar_31_60, ours.ar_61_90, ours.ar_over_90), D(0)
    )
    monkeypatch.setenv("FINSYNC_ANALYTICS_PORT", str(app.settings.analytics_port))
    capsys.readouterr()
    assert finsync(["kpis", "--entity", ENT, "--days", "90"]) == 0
    out = capsys.readouterr().out
    assert f"{ENT} EUR" in out and f"{ours.ar_1_30:,.2f}" in out, out
    monkeypatch.setenv("FINSYNC_ANALYTICS_PORT", str(free_port()))
    assert finsync(["kpis"]) == 1
    assert "finsync run finance-analytics" in capsys.readouterr().out

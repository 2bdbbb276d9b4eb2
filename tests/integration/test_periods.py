"""Accounting periods on the real stack: postings into closed months, closing and reopening,
and closing racing postings. Each test books under a legal entity of its own (T-<hex>)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from finsync.books import close
from finsync.cli.main import main as finsync
from finsync.contract.events import (
    CreditMemoIssued,
    InvoiceIssued,
    InvoiceLine,
    InvoicePosted,
    PaymentStatus,
)
from finsync.ports.erp import CashApplication, Customer
from finsync.reference.erp import periods
from finsync.reference.erp.adapter import ReferenceErp
from finsync.runtime import db
from finsync.runtime.messages import Record
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from services.invoice_poster.handler import post_credit_memo, post_invoice
from services.payment_settler.cash import payment_journal
from tests.support import ServiceProcess, TopicTail, eventually, journals, publish

pytestmark = pytest.mark.integration

D = Decimal
MARCH, APRIL = date(2026, 3, 1), date(2026, 4, 1)


def new_entity() -> str:
    return f"T-{uuid.uuid4().hex[:12]}"


def invoice(entity: str, issued_on: date, invoice_id: str | None = None) -> InvoiceIssued:
    """One one-time line (revenue at once, no schedule): 100.00 EUR + 19.00 tax."""
    invoice_id = invoice_id or f"INV-{uuid.uuid4().hex[:12]}"
    return InvoiceIssued(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        source="billing",
        correlation_id=f"corr-{invoice_id}",
        invoice_id=invoice_id,
        invoice_number=f"{entity}-{invoice_id}",
        account_id=f"ACC-{entity}",
        legal_entity=entity,
        currency="EUR",
        issued_on=issued_on,
        due_on=issued_on + timedelta(days=30),
        lines=[_line()],
        subtotal=D("100.00"),
        tax_total=D("19.00"),
        total=D("119.00"),
    )


def credit_memo(of: InvoiceIssued, issued_on: date, credit_memo_id: str) -> CreditMemoIssued:
    return CreditMemoIssued(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        source="billing",
        correlation_id=of.correlation_id,
        credit_memo_id=credit_memo_id,
        invoice_id=of.invoice_id,
        account_id=of.account_id,
        legal_entity=of.legal_entity,
        currency="EUR",
        issued_on=issued_on,
        lines=[_line()],
        subtotal=D("100.00"),
        tax_total=D("19.00"),
        total=D("119.00"),
    )


def _line() -> InvoiceLine:
    return InvoiceLine(
        line_id="1",
        description="Onboarding package",
        sku="ONBOARDING",
        amount=D("100.00"),
        tax_amount=D("19.00"),
    )


def close_months(settings: Settings, entity: str, *months: date) -> None:
    """Close periods as a given, whatever their blockers (those are tested on their own)."""
    with db.connect(settings) as conn, conn.transaction():
        for m in months:
            periods.set_status(conn, entity, m, True, "test")


def dated(settings: Settings, key: str) -> tuple[date, date | None, str | None]:
    with db.connect(settings) as conn:
        row = conn.execute(
            "SELECT accounting_date, original_date, date_reason FROM erp.journal_entries "
            "WHERE idempotency_key = %s",
            (key,),
        ).fetchone()
    assert row is not None, key
    return row[0], row[1], row[2]


def test_an_invoice_dated_in_a_closed_period_posts_on_the_first_day_of_the_next_open_one(
    settings: Settings, serde: Serde, tmp_path: Path
) -> None:
    entity = new_entity()
    close_months(settings, entity, MARCH)
    late, on_time = invoice(entity, date(2026, 3, 31)), invoice(entity, date(2026, 4, 2))
    tail = TopicTail(settings, "erp.invoice-posted")
    poster = ServiceProcess("invoice-poster", tmp_path).start()
    try:
        publish(settings, serde, [late, on_time])
        keys = [f"invoice:{d.invoice_id}" for d in (late, on_time)]
        eventually(lambda: all(journals(settings, k) == 1 for k in keys), 60, "the postings")

        def published() -> dict[str | None, Record]:
            found = {r.key_text: r for r in tail.poll(0.5)}
            return found if {late.invoice_id, on_time.invoice_id} <= found.keys() else {}

        records = eventually(published, 60, "erp.invoice-posted for both invoices")
    finally:
        tail.close()
        assert poster.stop() == 0
    assert dated(settings, f"invoice:{late.invoice_id}") == (
        date(2026, 4, 1),
        date(2026, 3, 31),
        f"period 2026-03 of {entity} is closed",
    )
    assert dated(settings, f"invoice:{on_time.invoice_id}") == (date(2026, 4, 2), None, None)
    for doc, accounting_date in ((late, date(2026, 4, 1)), (on_time, date(2026, 4, 2))):
        event = serde.decode("erp.invoice-posted", records[doc.invoice_id].value)
        assert isinstance(event, InvoicePosted)
        assert event.accounting_date == accounting_date


# --- closing ----------------------------------------------------------------------------------


def bill(conn: psycopg.Connection, doc: InvoiceIssued) -> None:
    """The invoice as the reference billing system keeps it, with what it needs to exist."""
    e, account = doc.legal_entity, doc.account_id
    conn.execute(
        "INSERT INTO billing.legal_entities (legal_entity, name, tax_rate, payment_terms_days) "
        "VALUES (%s, 'Test entity', 0.19, 30) ON CONFLICT DO NOTHING",
        (e,),
    )
    conn.execute(
        "INSERT INTO billing.accounts (billing_account_id, account_id, name, country, currency, "
        "legal_entity) VALUES (%s, %s, 'Test customer', 'DE', 'EUR', %s) ON CONFLICT DO NOTHING",
        (f"BA-{account}", account, e),
    )
    subscription = f"SUB-{doc.invoice_id}"
    conn.execute(
        "INSERT INTO billing.subscriptions (subscription_id, opportunity_id, billing_account_id, "
        "account_id, legal_entity, currency, correlation_id) "
        "VALUES (%s, %s, %s, %s, %s, 'EUR', %s)",
        (subscription, f"OPP-{doc.invoice_id}", f"BA-{account}", account, e, doc.correlation_id),
    )
    conn.execute(
        "INSERT INTO billing.invoices (invoice_id, invoice_number, subscription_id, billing_date, "
        "account_id, legal_entity, currency, issued_on, due_on, subtotal, tax_total, total) "
        "VALUES (%s, %s, %s, %s, %s, %s, 'EUR', %s, %s, %s, %s, %s)",
        (
            doc.invoice_id,
            doc.invoice_number,
            subscription,
            doc.issued_on,
            account,
            e,
            doc.issued_on,
            doc.due_on,
            doc.subtotal,
            doc.tax_total,
            doc.total,
        ),
    )


def bill_credit(conn: psycopg.Connection, memo: CreditMemoIssued) -> None:
    conn.execute(
        "INSERT INTO billing.credit_memos (credit_memo_id, invoice_id, line_id, issued_on, "
        "reason, total) VALUES (%s, %s, '1', %s, 'test', %s)",
        (memo.credit_memo_id, memo.invoice_id, memo.issued_on, memo.total),
    )


def test_a_close_is_refused_until_billing_is_posted_and_revenue_recognized_then_reopened(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINSYNC_OPERATOR", "controller-test")
    entity = new_entity()
    march = invoice(entity, date(2026, 3, 10))
    memo = credit_memo(march, date(2026, 3, 20), f"CM-{uuid.uuid4().hex[:12]}")
    april = invoice(entity, date(2026, 4, 3))  # after the month: no blocker
    scheduled = f"INV-{uuid.uuid4().hex[:12]}"  # deferred revenue of March, not released
    with db.connect(settings) as conn, conn.transaction():
        for doc in (march, april):
            bill(conn, doc)
        bill_credit(conn, memo)
        conn.execute(
            "INSERT INTO erp.revenue_schedules (invoice_id, line_id, period, legal_entity, "
            "currency, revenue_account, deferred_account, amount) "
            "VALUES (%s, '1', '2026-03-01', %s, 'EUR', '4000', '2300', 50)",
            (scheduled, entity),
        )

    def period_close() -> tuple[int, str]:
        code = finsync(["erp", "period", "close", entity, "2026-03"])
        return code, capsys.readouterr().out

    capsys.readouterr()
    code, out = period_close()
    assert code == 1
    assert f"period 2026-03 of {entity} cannot be closed:" in out
    assert "no revenue recognition run for 2026-03" in out
    assert f"--through 2026-03-31 --entity {entity}" in out
    unreleased = "1 revenue schedule row(s) of this month or earlier not recognized"
    assert f"{unreleased}, of invoice(s): {scheduled}" in out
    assert f"1 invoice(s) billed but not posted in the ERP: {march.invoice_id}" in out
    assert f"1 credit memo(s) issued but not posted in the ERP: {memo.credit_memo_id}" in out
    assert april.invoice_id not in out

    with db.connect(settings) as conn, conn.transaction():  # the ERP catches up
        erp = ReferenceErp(conn)
        post_invoice(march, erp)
        post_credit_memo(memo, erp)
        post_invoice(april, erp)  # so the test leaves billing and the ERP agreeing
        erp.flush()
    code, out = period_close()
    assert code == 1
    assert "no revenue recognition run for 2026-03" in out and scheduled in out
    assert march.invoice_id not in out and memo.credit_memo_id not in out

    with db.connect(settings) as conn, conn.transaction():
        # The month's run, and nothing left to release (as if a credit memo cancelled it).
        conn.execute(
            "UPDATE erp.revenue_schedules SET cancelled_amount = amount WHERE invoice_id = %s",
            (scheduled,),
        )
        conn.execute(
            "INSERT INTO erp.recognition_runs (legal_entity, currency, period, entry_id, amount) "
            "VALUES (%s, 'EUR', %s, NULL, 0)",
            (entity, MARCH),
        )
    assert period_close() == (0, f"period 2026-03 of {entity} closed\n")
    assert period_close() == (0, f"period 2026-03 of {entity} is already closed: nothing to do\n")

    assert finsync(["erp", "period", "list", entity]) == 0
    listed = capsys.readouterr().out
    assert entity in listed and "2026-03" in listed and "CLOSED" in listed
    assert "controller-test" in listed

    assert finsync(["erp", "period", "open", entity, "2026-03"]) == 0
    assert capsys.readouterr().out == f"period 2026-03 of {entity} opened again\n"
    assert finsync(["erp", "period", "open", entity, "2026-03"]) == 0
    assert capsys.readouterr().out == f"period 2026-03 of {entity} is already open: nothing to do\n"

    with db.connect(settings) as conn:
        changes = periods.history(conn, entity, MARCH)
        [row] = periods.listing(conn, entity)
    assert [c.action for c in changes] == ["CLOSE_REFUSED", "CLOSE_REFUSED", "CLOSED", "OPENED"]
    assert {c.changed_by for c in changes} == {"controller-test"}
    assert march.invoice_id in (changes[0].detail or "")
    assert (row.status, row.changed_by) == ("OPEN", "controller-test")
    # April has no revenue to release (one-time lines only): it needs no recognition run.
    capsys.readouterr()
    assert finsync(["erp", "period", "close", entity, "2026-04"]) == 0
    assert capsys.readouterr().out == f"period 2026-04 of {entity} closed\n"


def test_a_period_name_that_is_not_a_month_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        finsync(["erp", "period", "close", "ACME-DE", "2026-3"])
    assert exit_.value.code == 2
    assert "is not a month such as 2026-03" in capsys.readouterr().err


# --- closing against posting ------------------------------------------------------------------


def waiting_for_a_lock(settings: Settings, pid: int) -> bool:
    with db.connect(settings) as conn:
        row = conn.execute(
            "SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
    return bool(row == ("Lock", "advisory"))


class Background(threading.Thread):
    """`work(conn)` in a thread, on a connection of its own, committed when it returns."""

    def __init__(self, settings: Settings, work: Callable[[psycopg.Connection], object]) -> None:
        super().__init__(daemon=True)
        self.conn = db.connect(settings)
        self.work = work
        self.result: object = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.conn, self.conn.transaction():
                self.result = self.work(self.conn)
        except BaseException as exc:  # handed to the test
            self.error = exc

    def outcome(self) -> object:
        self.join(30)
        assert not self.is_alive(), "still waiting"
        if self.error is not None:
            raise self.error
        return self.result


def test_a_close_waits_for_postings_in_flight_and_a_posting_waits_for_a_close(
    settings: Settings,
) -> None:
    # A close while a posting into the month is not committed yet: the close waits, then
    # closes the month with that posting in it.
    entity = new_entity()
    with db.connect(settings) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO erp.recognition_runs (legal_entity, currency, period, entry_id, amount) "
            "VALUES (%s, 'EUR', %s, NULL, 0)",
            (entity, MARCH),
        )
    in_flight = invoice(entity, date(2026, 3, 10))
    with db.connect(settings) as posting:
        erp = ReferenceErp(posting)
        [event] = post_invoice(in_flight, erp)
        erp.flush()
        closing = Background(settings, lambda c: close.close(c, entity, MARCH, "test"))
        closing.start()
        pid = closing.conn.info.backend_pid
        eventually(lambda: waiting_for_a_lock(settings, pid), 20, "the close to wait")
        assert closing.is_alive()
        posting.commit()
    result = closing.outcome()
    assert isinstance(result, close.Result) and result.outcome is close.Outcome.CLOSED
    assert event.accounting_date == date(2026, 3, 10)
    assert dated(settings, f"invoice:{in_flight.invoice_id}") == (date(2026, 3, 10), None, None)

    # A posting while a close of its month is not committed yet: the posting waits, then
    # sees the month closed and posts in the next one.
    entity = new_entity()
    late = invoice(entity, date(2026, 3, 12))

    def post(conn: psycopg.Connection) -> object:
        erp = ReferenceErp(conn)
        [event] = post_invoice(late, erp)
        erp.flush()
        return event

    with db.connect(settings) as closer:
        periods.lock_exclusive(closer, entity)
        periods.set_status(closer, entity, MARCH, True, "test")
        posting_thread = Background(settings, post)
        posting_thread.start()
        pid = posting_thread.conn.info.backend_pid
        eventually(lambda: waiting_for_a_lock(settings, pid), 20, "the posting to wait")
        assert posting_thread.is_alive()
        closer.commit()
    posted = posting_thread.outcome()
    assert posted.accounting_date == APRIL  # type: ignore[attr-defined]
    assert dated(settings, f"invoice:{late.invoice_id}") == (
        APRIL,
        date(2026, 3, 12),
        f"period 2026-03 of {entity} is closed",
    )


def test_the_database_refuses_a_journal_dated_in_a_closed_period(settings: Settings) -> None:
    entity = new_entity()
    close_months(settings, entity, MARCH)
    with db.connect(settings) as conn, pytest.raises(psycopg.errors.CheckViolation) as refused:
        conn.execute(
            "INSERT INTO erp.journal_entries (entry_id, idempotency_key, legal_entity, currency, "
            "description, accounting_date) VALUES (%s, %s, %s, 'EUR', 'by hand', '2026-03-15')",
            (f"JE-{uuid.uuid4().hex[:20]}", f"test:{uuid.uuid4()}", entity),
        )
    assert "closed period" in str(refused.value)


def test_a_payment_settled_in_a_closed_period_posts_in_the_next_open_one(
    conn: psycopg.Connection,
) -> None:
    entity = new_entity()
    periods.set_status(conn, entity, MARCH, True, "test")
    periods.set_status(conn, entity, APRIL, True, "test")
    erp = ReferenceErp(conn)
    account = f"ACC-{uuid.uuid4().hex[:10]}"
    customer = erp.create_customer(
        Customer(account, "Test customer", "DE", "EUR", entity, None, None, None)
    )
    application = CashApplication(
        payment_id=f"PAY-{uuid.uuid4().hex[:12]}",
        account_id=account,
        customer_id=customer,
        invoice_id=None,
        legal_entity=entity,
        currency="EUR",
        amount=D("50.00"),
        fee_amount=D(0),
        applied_amount=D(0),
        written_off_amount=D(0),
        unapplied_amount=D("50.00"),
        status=PaymentStatus.UNAPPLIED,
        settled_at=datetime(2026, 3, 31, 23, 30, tzinfo=UTC),
        method="SEPA",
        gateway_reference="GW-1",
    )
    posted = erp.apply_payment(application, payment_journal(application))
    erp.flush()
    assert posted.accounting_date == date(2026, 5, 1)
    row = conn.execute(
        "SELECT accounting_date, original_date, date_reason FROM erp.journal_entries "
        "WHERE entry_id = %s",
        (posted.journal_entry_id,),
    ).fetchone()
    assert row == (
        date(2026, 5, 1),
        date(2026, 3, 31),
        f"periods 2026-03 to 2026-04 of {entity} are closed",
    )

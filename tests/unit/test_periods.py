"""Accounting periods: the date rule, and the date each posting rule gives its journal."""

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from finsync.books.close import SHOWN, Blocker
from finsync.contract.events import (
    CreditMemoIssued,
    InvoiceIssued,
    InvoiceLine,
    PaymentSettled,
    PaymentStatus,
)
from finsync.domain.periods import AccountingDate, label, next_period, parse, period_of, resolve
from finsync.ports.crossref import AccountLink
from finsync.ports.erp import CashApplication, LineBalance, Posted
from services.invoice_poster.posting import credit_memo_posting, invoice_journal
from services.payment_settler.cash import NO_OVERRIDES, payment_journal
from services.payment_settler.handler import Systems, settle_payment

D = Decimal
ENVELOPE = dict(occurred_at=datetime(2026, 4, 2, tzinfo=UTC), source="billing", correlation_id="c")


def test_a_day_in_an_open_period_keeps_its_date() -> None:
    closed = {date(2026, 2, 1), date(2026, 4, 1)}
    assert resolve(date(2026, 3, 17), "ACME-DE", closed) == AccountingDate(date(2026, 3, 17))
    assert resolve(date(2026, 3, 17), "ACME-DE", set()) == AccountingDate(date(2026, 3, 17))


def test_a_day_in_a_closed_period_moves_to_the_first_day_of_the_next_open_one() -> None:
    moved = resolve(date(2026, 3, 31), "ACME-DE", {date(2026, 3, 1)})
    assert moved == AccountingDate(
        date(2026, 4, 1), date(2026, 3, 31), "period 2026-03 of ACME-DE is closed"
    )


def test_several_closed_periods_in_a_row_are_skipped_together() -> None:
    closed = {date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1), date(2026, 5, 1)}
    moved = resolve(date(2026, 1, 15), "ACME-US", closed)
    assert moved == AccountingDate(
        date(2026, 4, 1), date(2026, 1, 15), "periods 2026-01 to 2026-03 of ACME-US are closed"
    )
    # The entity's other closed periods (May) do not matter to a day in February.
    assert resolve(date(2026, 2, 1), "ACME-US", closed).on == date(2026, 4, 1)


def test_a_closed_december_moves_into_the_next_year() -> None:
    moved = resolve(date(2025, 12, 31), "ACME-JP", {date(2025, 11, 1), date(2025, 12, 1)})
    assert moved.on == date(2026, 1, 1)
    assert moved.original == date(2025, 12, 31)
    assert moved.reason == "period 2025-12 of ACME-JP is closed"
    closed_to_january = {date(2025, 12, 1), date(2026, 1, 1)}
    assert resolve(date(2025, 12, 5), "ACME-JP", closed_to_january).on == date(2026, 2, 1)


def test_period_arithmetic_and_names() -> None:
    assert period_of(date(2026, 2, 28)) == date(2026, 2, 1)
    assert next_period(date(2026, 12, 1)) == date(2027, 1, 1)
    assert next_period(date(2026, 1, 1)) == date(2026, 2, 1)
    assert label(date(2026, 3, 1)) == "2026-03"
    assert parse("2026-03") == date(2026, 3, 1)
    for bad in ("2026-13", "2026-3", "26-03", "2026-03-01", "March", ""):
        with pytest.raises(ValueError):
            parse(bad)


def _line() -> InvoiceLine:
    return InvoiceLine(
        line_id="1", description="Seats", sku="SEAT", amount=D("100.00"), tax_amount=D("19.00")
    )


def test_invoices_and_credit_memos_are_dated_the_day_they_were_issued() -> None:
    invoice = InvoiceIssued(
        event_id=uuid.uuid4(),
        invoice_id="INV-1",
        invoice_number="N-1",
        account_id="A",
        legal_entity="ACME-DE",
        currency="EUR",
        issued_on=date(2026, 3, 31),
        due_on=date(2026, 4, 30),
        lines=[_line()],
        subtotal=D("100.00"),
        tax_total=D("19.00"),
        total=D("119.00"),
        **ENVELOPE,
    )
    assert invoice_journal(invoice).accounting_date == date(2026, 3, 31)
    memo = CreditMemoIssued(
        event_id=uuid.uuid4(),
        credit_memo_id="CM-1",
        invoice_id="INV-1",
        account_id="A",
        legal_entity="ACME-DE",
        currency="EUR",
        issued_on=date(2026, 4, 2),
        lines=[_line()],
        subtotal=D("100.00"),
        tax_total=D("19.00"),
        total=D("119.00"),
        **ENVELOPE,
    )
    posted = {"1": LineBalance("1", D("100.00"), D(0), "4000", "2300", ())}
    journal, _ = credit_memo_posting(memo, "EUR", "ACME-DE", posted)
    assert journal.accounting_date == date(2026, 4, 2)


def test_a_payment_is_dated_the_utc_day_it_settled() -> None:
    # 00:30 on April 1st in Berlin is still March 31st in UTC.
    settled_at = datetime(2026, 4, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    application = CashApplication(
        payment_id="PAY-1",
        account_id="A",
        customer_id="CUS-1",
        invoice_id="INV-1",
        legal_entity="ACME-DE",
        currency="EUR",
        amount=D("119.00"),
        fee_amount=D("1.00"),
        applied_amount=D("119.00"),
        written_off_amount=D(0),
        unapplied_amount=D(0),
        status=PaymentStatus.PAID,
        settled_at=settled_at,
        method="SEPA",
        gateway_reference="GW-1",
    )
    assert payment_journal(application).accounting_date == date(2026, 3, 31)


def test_a_blocker_names_its_count_and_at_most_ten_documents() -> None:
    ids = tuple(f"INV-{n}" for n in range(SHOWN))
    assert str(Blocker("invoice(s) not posted", 12, ids)) == (
        "12 invoice(s) not posted: " + ", ".join(ids) + " and 2 more"
    )
    assert str(Blocker("invoice(s) not posted", 2, ("INV-1", "INV-2"))) == (
        "2 invoice(s) not posted: INV-1, INV-2"
    )
    assert str(Blocker("no revenue recognition run for 2026-03")) == (
        "no revenue recognition run for 2026-03"
    )


class _Erp:
    def open_item(self, invoice_id, lock=False):
        return None

    def apply_payment(self, application, journal):
        return Posted("PAY-1", "JE-1", journal_posted_at, date(2026, 4, 1))

    def flush(self):
        pass


class _CrossReference:
    def link(self, account_id, lock=False):
        return AccountLink("A", "CUS-1", "BA-1", 1, "Acme", "acme", "DE", "EUR", "ACME-DE")


journal_posted_at = datetime(2026, 4, 1, 8, tzinfo=UTC)


def test_payment_applied_carries_the_accounting_date_the_erp_gave_the_journal() -> None:
    payment = PaymentSettled(
        event_id=uuid.uuid4(),
        payment_id="PAY-1",
        account_id="A",
        amount=D("50.00"),
        fee_amount=D(0),
        currency="EUR",
        settled_at=datetime(2026, 3, 31, 12, tzinfo=UTC),
        method="SEPA",
        gateway_reference="GW-1",
        **ENVELOPE,
    )
    [applied] = settle_payment(payment, Systems(_Erp(), _CrossReference(), NO_OVERRIDES))
    assert applied.accounting_date == date(2026, 4, 1)

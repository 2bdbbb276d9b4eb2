"""invoice-poster's accounting rule, as a specification."""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from finsync.contract.events import CreditMemoIssued, InvoiceIssued, InvoiceLine
from finsync.domain.accounting import ACCOUNTS_RECEIVABLE, DEFERRED_REVENUE, REVENUE, TAX_PAYABLE
from finsync.errors import InvalidEvent
from services.invoice_poster.posting import credit_memo_journal, invoice_journal

D = Decimal
ENVELOPE = dict(occurred_at=datetime(2026, 11, 2, tzinfo=UTC), source="billing", correlation_id="c")


def line(line_id="1", amount="100.00", tax="20.00", end=None):
    return InvoiceLine(
        line_id=line_id,
        description="Seats",
        sku="SEAT",
        amount=D(amount),
        tax_amount=D(tax),
        service_period_end=end,
    )


def invoice(lines=None, currency="EUR", **overrides):
    lines = [line()] if lines is None else lines
    subtotal = sum((x.amount for x in lines), D(0))
    tax = sum((x.tax_amount for x in lines), D(0))
    fields = dict(
        event_id=uuid.uuid4(),
        invoice_id="INV-1",
        invoice_number="N-1",
        account_id="A",
        legal_entity="ACME-DE",
        currency=currency,
        issued_on=date(2026, 11, 2),
        due_on=date(2026, 12, 2),
        lines=lines,
        subtotal=subtotal,
        tax_total=tax,
        total=subtotal + tax,
        **ENVELOPE,
    )
    return InvoiceIssued(**{**fields, **overrides})


def balances(journal):
    out = {}
    for x in journal.lines:
        out[x.account_code] = out.get(x.account_code, D(0)) + x.debit - x.credit
    return out


def test_an_invoice_debits_receivables_and_credits_revenue_and_tax():
    j = invoice_journal(invoice())
    assert balances(j) == {
        ACCOUNTS_RECEIVABLE: D("120.00"),
        REVENUE: D("-100.00"),
        TAX_PAYABLE: D("-20.00"),
    }
    assert j.key == "invoice:INV-1"


def test_a_line_whose_service_ends_after_the_month_of_issue_is_deferred():
    j = invoice_journal(
        invoice(
            [
                line("1", end=date(2026, 11, 30)),
                line("2", amount="1200.00", tax="0.00", end=date(2027, 10, 31)),
            ]
        )
    )
    assert balances(j)[REVENUE] == D("-100.00")
    assert balances(j)[DEFERRED_REVENUE] == D("-1200.00")


def test_every_journal_balances():
    j = invoice_journal(invoice([line("1", "10.01", "1.90"), line("2", "-5.00", "-0.95")]))
    assert sum(x.debit for x in j.lines) == sum(x.credit for x in j.lines)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (dict(lines=[]), "no lines"),
        (dict(subtotal=D("99.00")), "subtotal"),
        (dict(tax_total=D("1.00")), "tax_total"),
        (dict(total=D("1.00")), "total"),
        (dict(currency="XYZ"), "unknown currency"),
        (dict(due_on=date(2026, 1, 1)), "due before"),
    ],
)
def test_an_invoice_that_does_not_add_up_is_rejected_with_a_reason(overrides, reason):
    with pytest.raises(InvalidEvent, match=reason):
        invoice_journal(invoice(**overrides))


def test_zero_and_negative_totals_are_rejected():
    with pytest.raises(InvalidEvent, match="positive"):
        invoice_journal(invoice([line(amount="0.00", tax="0.00")]))
    with pytest.raises(InvalidEvent, match="positive"):
        invoice_journal(invoice([line(amount="-10.00", tax="0.00")]))


def test_amounts_finer_than_the_currency_allows_are_rejected():
    with pytest.raises(InvalidEvent, match="decimals"):
        invoice_journal(invoice([line(amount="10.001", tax="0")], currency="EUR"))
    with pytest.raises(InvalidEvent, match="decimals"):
        invoice_journal(invoice([line(amount="10.50", tax="0")], currency="JPY"))


def memo(**overrides):
    fields = dict(
        event_id=uuid.uuid4(),
        credit_memo_id="CM-1",
        invoice_id="INV-1",
        account_id="A",
        legal_entity="ACME-DE",
        currency="EUR",
        issued_on=date(2026, 11, 20),
        lines=[line(amount="50.00", tax="10.00")],
        subtotal=D("50.00"),
        tax_total=D("10.00"),
        total=D("60.00"),
        **ENVELOPE,
    )
    return CreditMemoIssued(**{**fields, **overrides})


def test_a_credit_memo_mirrors_an_invoice():
    j = credit_memo_journal(memo(), "EUR", "ACME-DE")
    assert balances(j) == {
        ACCOUNTS_RECEIVABLE: D("-60.00"),
        REVENUE: D("50.00"),
        TAX_PAYABLE: D("10.00"),
    }
    assert j.key == "credit-memo:CM-1"


def test_a_credit_memo_in_another_currency_than_its_invoice_is_rejected():
    with pytest.raises(InvalidEvent, match="USD"):
        credit_memo_journal(memo(), "USD", "ACME-DE")

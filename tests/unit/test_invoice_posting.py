"""invoice-poster's accounting rule, as a specification."""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from finsync.contract.events import CreditMemoIssued, InvoiceIssued, InvoiceLine
from finsync.domain.accounting import ACCOUNTS_RECEIVABLE, DEFERRED_REVENUE, REVENUE, TAX_PAYABLE
from finsync.domain.revenue import ScheduleRow, schedule
from finsync.errors import InvalidEvent
from finsync.ports.erp import LineBalance
from services.invoice_poster.posting import credit_memo_posting, invoice_journal, invoice_posting

D = Decimal
ENVELOPE = dict(occurred_at=datetime(2026, 11, 2, tzinfo=UTC), source="billing", correlation_id="c")


def line(line_id="1", amount="100.00", tax="20.00", end=None, start=None):
    return InvoiceLine(
        line_id=line_id,
        description="Seats",
        sku="SEAT",
        amount=D(amount),
        tax_amount=D(tax),
        service_period_start=start,
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


def test_every_line_with_a_service_period_is_deferred_whole_and_gets_a_schedule():
    # Before revenue schedules, a line was revenue at once if its service ended in the month
    # of issue and deferred for good otherwise; now every service line is deferred, to be
    # released month by month, and only a one-time charge is revenue at once.
    journal, lines = invoice_posting(
        invoice(
            [
                line("1", end=date(2026, 11, 30), start=date(2026, 11, 1)),
                line("2", amount="1200.00", tax="0.00", end=date(2027, 10, 31)),
                line("3", amount="250.00", tax="0.00"),
            ]
        )
    )
    assert balances(journal) == {
        ACCOUNTS_RECEIVABLE: D("1570.00"),
        DEFERRED_REVENUE: D("-1300.00"),
        REVENUE: D("-250.00"),
        TAX_PAYABLE: D("-20.00"),
    }
    assert lines[0].schedule == (ScheduleRow(date(2026, 11, 1), D("100.00")),)
    # A service that gives only its end runs from the issue date (2026-11-02).
    assert lines[1].schedule == schedule(D("1200.00"), "EUR", date(2026, 11, 2), date(2027, 10, 31))
    assert lines[2].schedule == ()
    assert [(x.line_id, x.revenue_account, x.deferred_account) for x in lines] == [
        ("1", REVENUE, DEFERRED_REVENUE),
        ("2", REVENUE, DEFERRED_REVENUE),
        ("3", REVENUE, DEFERRED_REVENUE),
    ]
    assert journal.accounting_date == date(2026, 11, 2)


def annual(start, end, issued_on):
    return invoice(
        [line("1", amount="1200.00", tax="0.00", start=start, end=end)],
        issued_on=issued_on,
        due_on=issued_on,
    )


def test_a_year_invoiced_in_its_last_month_is_deferred_not_revenue_at_once():
    # Reported: 100 x 12 from 2026-01-01 on one annual line booked all 1,200 as revenue at
    # once (invoiced 2026-12-31, in the month its service ends).
    journal = invoice_journal(annual(date(2026, 1, 1), date(2026, 12, 31), date(2026, 12, 31)))
    assert balances(journal) == {ACCOUNTS_RECEIVABLE: D("1200.00"), DEFERRED_REVENUE: D("-1200.00")}


def test_a_year_from_the_second_of_january_is_scheduled_for_release_not_deferred_for_good():
    # Reported: the same from 2026-01-02 went wholly to deferred revenue and stayed there.
    _, (booked,) = invoice_posting(annual(date(2026, 1, 2), date(2027, 1, 1), date(2026, 1, 2)))
    assert len(booked.schedule) == 13
    assert (booked.schedule[0].amount, booked.schedule[-1].amount) == (D("98.63"), D("3.29"))
    assert sum(r.amount for r in booked.schedule) == D("1200.00")


def test_a_negative_service_line_is_revenue_at_once():
    journal, lines = invoice_posting(
        invoice([line("1", "100.00", "0.00"), line("2", "-10.00", "0.00", end=date(2027, 1, 31))])
    )
    assert balances(journal)[REVENUE] == D("-90.00")
    assert lines[1].schedule == ()


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


def test_a_service_period_over_ten_years_is_rejected_before_any_schedule_is_built():
    # Within the input limits a line may run 1900-2999: 13,200 schedule rows for one line,
    # a thousand lines to a document. Ten years, leap days and all, still post.
    ten_years = line(amount="1200.00", tax="0.00", start=date(2027, 3, 1), end=date(2037, 2, 28))
    _, lines = invoice_posting(
        invoice([ten_years], issued_on=date(2027, 3, 1), due_on=date(2027, 3, 1))
    )
    assert len(lines[0].schedule) == 120
    a_day_more = line(amount="1200.00", tax="0.00", start=date(2027, 3, 1), end=date(2037, 3, 1))
    with pytest.raises(InvalidEvent, match="line 1 service period runs 2027-03-01 to 2037-03-01"):
        invoice_posting(invoice([a_day_more], issued_on=date(2027, 3, 1), due_on=date(2027, 3, 1)))
    # A period given only by its end runs from the issue date.
    ends_only = line(amount="1200.00", tax="0.00", end=date(2999, 12, 31))
    with pytest.raises(InvalidEvent, match="longer than ten years"):
        invoice_posting(invoice([ends_only], issued_on=date(1900, 1, 1), due_on=date(1900, 1, 1)))
    with pytest.raises(InvalidEvent, match="longer than ten years"):
        credit_memo_posting(
            memo(lines=[line(amount="50.00", tax="10.00", end=date(2999, 12, 31))]),
            "EUR",
            "ACME-DE",
            {"1": balance()},
        )


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


def balance(line_id="1", amount="100.00", credited="0.00", unreleased=()):
    return LineBalance(
        line_id=line_id,
        amount=D(amount),
        credited=D(credited),
        revenue_account=REVENUE,
        deferred_account=DEFERRED_REVENUE,
        unreleased=tuple(unreleased),
    )


def test_a_credit_memo_on_a_one_time_line_reverses_revenue():
    j, credits = credit_memo_posting(memo(), "EUR", "ACME-DE", {"1": balance()})
    assert balances(j) == {
        ACCOUNTS_RECEIVABLE: D("-60.00"),
        REVENUE: D("50.00"),
        TAX_PAYABLE: D("10.00"),
    }
    assert j.key == "credit-memo:CM-1"
    assert j.accounting_date == date(2026, 11, 20)
    assert [(c.line_id, c.amount, c.cancelled) for c in credits] == [("1", D("50.00"), ())]


def test_a_credit_memo_a_month_later_reverses_deferred_revenue_the_invoice_posted():
    # Reported: a memo chose its account from its own date, so a memo dated in December on a
    # November invoice that deferred 2026-11-01..2026-12-31 debited revenue, not 2300.
    service = dict(start=date(2026, 11, 1), end=date(2026, 12, 31))
    rows = schedule(D("122.00"), "EUR", service["start"], service["end"])  # 60.00 + 62.00
    credited = memo(
        issued_on=date(2026, 12, 5),
        lines=[line(amount="122.00", tax="0.00", **service)],
        subtotal=D("122.00"),
        tax_total=D("0.00"),
        total=D("122.00"),
    )
    unreleased = {"1": balance(amount="122.00", unreleased=rows)}
    j, (taken,) = credit_memo_posting(credited, "EUR", "ACME-DE", unreleased)
    assert balances(j) == {ACCOUNTS_RECEIVABLE: D("-122.00"), DEFERRED_REVENUE: D("122.00")}
    assert taken.cancelled == rows
    # After November's release: 60.00 back from revenue, 62.00 from deferred revenue.
    released = {"1": balance(amount="122.00", unreleased=rows[1:])}
    j, (taken,) = credit_memo_posting(credited, "EUR", "ACME-DE", released)
    assert balances(j) == {
        ACCOUNTS_RECEIVABLE: D("-122.00"),
        REVENUE: D("60.00"),
        DEFERRED_REVENUE: D("62.00"),
    }
    assert taken.cancelled == rows[1:]


def test_a_credit_memo_must_credit_lines_the_invoice_has_and_no_more_than_is_left():
    with pytest.raises(InvalidEvent, match="line 1, which invoice INV-1 does not have"):
        credit_memo_posting(memo(), "EUR", "ACME-DE", {"2": balance("2")})
    with pytest.raises(InvalidEvent, match=r"50\.00 EUR on line 1 .* has 40\.00 EUR left"):
        credit_memo_posting(memo(), "EUR", "ACME-DE", {"1": balance(credited="60.00")})
    j, _ = credit_memo_posting(memo(), "EUR", "ACME-DE", {"1": balance(credited="50.00")})
    assert balances(j)[REVENUE] == D("50.00")  # exactly what is left


def test_a_credit_memo_in_another_currency_than_its_invoice_is_rejected():
    with pytest.raises(InvalidEvent, match="USD"):
        credit_memo_posting(memo(), "USD", "ACME-DE", {"1": balance()})

"""The accounting rule of invoice-poster, pure: what an invoice or credit memo does to the books.

An invoice debits accounts receivable for its total and credits tax payable for its tax and,
per line, deferred revenue when the line bills a service period — the line then gets a
monthly revenue schedule, which recognition runs release to revenue — else revenue at once.
Which revenue, deferred revenue and tax accounts a line uses is the ERP's GL mapping's choice
(finsync.domain.gl_mapping), made per line; each journal line names the rule that chose it.
A credit memo reverses what its invoice's lines posted: of each line it credits, the part
recognised so far from revenue, the part still deferred from deferred revenue, cancelling
that part of the line's schedule, and its tax from the account the line's tax went to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from finsync.contract.events import CreditMemoIssued, InvoiceIssued, InvoiceLine, JournalLine
from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    CUSTOMER_CREDIT,
    ZERO,
    Journal,
    check_money,
    credit,
    debit,
    fmt,
)
from finsync.domain.gl_mapping import DEFAULT_REVENUE, DEFAULT_TAX, RevenueAccounts, TaxAccount
from finsync.domain.revenue import schedule, split_credit
from finsync.errors import InvalidEvent
from finsync.ports.erp import InvoiceLineBooking, LineBalance, LineCredit

# A line's service may run at most ten years: a schedule holds a row a month, and a period as
# long as the input limits allow (1900-2999) would be 13,200 rows for one line.
MAX_SERVICE_DAYS = 3653


@dataclass(frozen=True)
class LineAccounts:
    """The accounts an invoice line posts to, and the GL mapping rules that chose them."""

    revenue: RevenueAccounts
    tax: TaxAccount


# Chooses a line's accounts: the handler asks the ERP's GL mapping. Credit memos reverse what
# the ERP kept of the line, never what this says at the time.
AccountsOf = Callable[[InvoiceLine], LineAccounts]


def default_accounts(line: InvoiceLine) -> LineAccounts:
    return LineAccounts(DEFAULT_REVENUE, DEFAULT_TAX)


def service_period(line: InvoiceLine, issued_on: date) -> tuple[date, date] | None:
    """The days the line's service runs, both included; None for a one-time charge. A service
    that gives only its end runs from the issue date."""
    end = line.service_period_end
    if end is None:
        return None
    return line.service_period_start or min(issued_on, end), end


def line_booking(
    line: InvoiceLine, invoice: InvoiceIssued, accounts: LineAccounts
) -> InvoiceLineBooking:
    """A line with a service period is scheduled; a one-time charge, or a line of no positive
    amount (a discount: a schedule holds no negative months), is revenue at once."""
    period = service_period(line, invoice.issued_on)
    rows = schedule(line.amount, invoice.currency, *period) if period and line.amount > 0 else ()
    return InvoiceLineBooking(
        line.line_id,
        line.amount,
        accounts.revenue.revenue,
        accounts.revenue.deferred,
        schedule=rows,
        mapping_rule=accounts.revenue.rule,
        tax_account=accounts.tax.account,
        tax_rule=accounts.tax.rule,
    )


def _tax_lines(
    post: Callable[[str, Decimal, str | None], JournalLine],
    taxes: Iterable[tuple[Decimal, str, str | None]],
) -> list[JournalLine]:
    """One journal line per tax account and rule, of the (tax, account, rule) of each line."""
    summed: dict[tuple[str, str | None], Decimal] = {}
    for amount, account, rule in taxes:
        summed[(account, rule)] = summed.get((account, rule), ZERO) + amount
    return [post(account, amount, rule) for (account, rule), amount in summed.items()]


def validate(doc: InvoiceIssued | CreditMemoIssued, what: str) -> None:
    """Schema-valid is not enough: the document must add up, in a currency we book."""
    if not doc.lines:
        raise InvalidEvent(f"{what} has no lines")
    amounts: dict[str, Decimal] = {
        "subtotal": doc.subtotal,
        "tax_total": doc.tax_total,
        "total": doc.total,
    }
    for line in doc.lines:
        amounts[f"line {line.line_id} amount"] = line.amount
        amounts[f"line {line.line_id} tax_amount"] = line.tax_amount
    check_money(doc.currency, amounts)
    if len({line.line_id for line in doc.lines}) != len(doc.lines):
        raise InvalidEvent(f"{what} has duplicate line ids")
    c = doc.currency
    lines_sum = sum((line.amount for line in doc.lines), Decimal(0))
    tax_sum = sum((line.tax_amount for line in doc.lines), Decimal(0))
    if lines_sum != doc.subtotal:
        raise InvalidEvent(
            f"{what} lines sum to {fmt(lines_sum, c)} but its subtotal is {fmt(doc.subtotal, c)}"
        )
    if tax_sum != doc.tax_total:
        raise InvalidEvent(
            f"{what} line taxes sum to {fmt(tax_sum, c)} "
            f"but its tax_total is {fmt(doc.tax_total, c)}"
        )
    if doc.subtotal + doc.tax_total != doc.total:
        raise InvalidEvent(
            f"{what} total {fmt(doc.total, c)} is not subtotal {fmt(doc.subtotal, c)} "
            f"+ tax {fmt(doc.tax_total, c)}"
        )
    if doc.total <= 0:
        raise InvalidEvent(f"{what} total must be positive, got {fmt(doc.total, c)}")
    for line in doc.lines:
        period = service_period(line, doc.issued_on)
        if period is None:
            continue
        start, end = period
        if start > end:
            raise InvalidEvent(f"line {line.line_id} service period ends before it starts")
        if (end - start).days >= MAX_SERVICE_DAYS:
            raise InvalidEvent(
                f"line {line.line_id} service period runs {start} to {end}, "
                f"longer than ten years ({MAX_SERVICE_DAYS} days)"
            )


def invoice_posting(
    invoice: InvoiceIssued, accounts_of: AccountsOf = default_accounts
) -> tuple[Journal, list[InvoiceLineBooking]]:
    """The invoice's journal, and its lines as the ERP keeps them (with their schedules)."""
    validate(invoice, f"invoice {invoice.invoice_id}")
    if invoice.due_on < invoice.issued_on:
        raise InvalidEvent(f"invoice {invoice.invoice_id} is due before it is issued")
    bookings = [line_booking(x, invoice, accounts_of(x)) for x in invoice.lines]
    lines = [debit(ACCOUNTS_RECEIVABLE, invoice.total)]
    lines += [
        credit(b.deferred_account if b.schedule else b.revenue_account, b.amount, b.mapping_rule)
        for b in bookings
    ]
    taxes = zip(invoice.lines, bookings, strict=True)
    lines += _tax_lines(credit, ((x.tax_amount, b.tax_account, b.tax_rule) for x, b in taxes))
    journal = Journal(
        key=f"invoice:{invoice.invoice_id}",
        legal_entity=invoice.legal_entity,
        currency=invoice.currency,
        description=f"Invoice {invoice.invoice_number}",
        lines=tuple(lines),
        accounting_date=invoice.issued_on,
    )
    return journal, bookings


def invoice_journal(invoice: InvoiceIssued) -> Journal:
    return invoice_posting(invoice)[0]


def _within(amount: Decimal, left: Decimal) -> bool:
    """A credit takes at most what is left of its line, towards zero (a discount line is
    negative, and so is its credit)."""
    return 0 <= amount <= left if left >= 0 else left <= amount <= 0


def credit_memo_posting(
    memo: CreditMemoIssued,
    invoice_currency: str,
    invoice_entity: str,
    invoice_lines: Mapping[str, LineBalance],
    to_credit: Decimal = ZERO,
) -> tuple[Journal, list[LineCredit]]:
    """The memo's journal, and what it takes of each invoice line it credits.

    Each memo line credits the invoice line of the same line id. It takes what recognition has
    released of that line from its revenue account and what is still deferred from its
    deferred account, in proportion; crediting all that is left of the line cancels its
    unreleased months in full, so they are never released. Its total comes off receivables,
    but for `to_credit`, what is above the invoice's open amount (customer_credit.py): that
    goes to the customer's credit balance.
    """
    what = f"credit memo {memo.credit_memo_id}"
    validate(memo, what)
    if memo.currency != invoice_currency:
        raise InvalidEvent(
            f"{what} is in {memo.currency} but invoice {memo.invoice_id} is in {invoice_currency}"
        )
    if memo.legal_entity != invoice_entity:
        raise InvalidEvent(
            f"{what} is for {memo.legal_entity} but invoice {memo.invoice_id} belongs to "
            f"{invoice_entity}"
        )
    c = memo.currency
    lines: list[JournalLine] = []
    credits: list[LineCredit] = []
    taxes: list[tuple[Decimal, str, str | None]] = []  # each credited line's, where it went
    for x in memo.lines:
        line = invoice_lines.get(x.line_id)
        if line is None:
            raise InvalidEvent(
                f"{what} credits line {x.line_id}, which invoice {memo.invoice_id} does not have"
            )
        if not _within(x.amount, line.left):
            raise InvalidEvent(
                f"{what} credits {fmt(x.amount, c)} on line {x.line_id} of invoice "
                f"{memo.invoice_id}, which has {fmt(line.left, c)} left to credit"
            )
        split = split_credit(x.amount, line.left, line.unreleased, c)
        lines += [debit(line.revenue_account, split.revenue, line.mapping_rule)]
        lines += [debit(line.deferred_account, split.deferred, line.mapping_rule)]
        taxes.append((x.tax_amount, line.tax_account, line.tax_rule))
        cancelled = tuple(r for r in split.cancelled if r.amount)
        credits.append(LineCredit(x.line_id, x.amount, cancelled))
    lines += [*_tax_lines(debit, taxes), credit(ACCOUNTS_RECEIVABLE, memo.total - to_credit)]
    lines += [credit(CUSTOMER_CREDIT, to_credit)]
    journal = Journal(
        key=f"credit-memo:{memo.credit_memo_id}",
        legal_entity=memo.legal_entity,
        currency=memo.currency,
        description=f"Credit memo {memo.credit_memo_id} on invoice {memo.invoice_id}",
        lines=tuple(lines),
        accounting_date=memo.issued_on,
    )
    return journal, credits

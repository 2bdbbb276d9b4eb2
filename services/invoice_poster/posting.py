"""The accounting rule of invoice-poster, pure: what an invoice or credit memo does to the books.

An invoice debits accounts receivable for its total and credits, per line, revenue — or
deferred revenue when the line's service ends after the month of issue — and tax payable
for its tax. A credit memo is the mirror image.
"""

from __future__ import annotations

import calendar
from datetime import date
from decimal import Decimal

from finsync.contract.events import CreditMemoIssued, InvoiceIssued, InvoiceLine
from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    DEFERRED_REVENUE,
    REVENUE,
    TAX_PAYABLE,
    Journal,
    check_money,
    credit,
    debit,
    fmt,
    reverse,
)
from finsync.errors import InvalidEvent


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def revenue_account(line: InvoiceLine, issued_on: date) -> str:
    """Revenue for what is earned by the end of the month of issue, else deferred revenue."""
    end = line.service_period_end
    return DEFERRED_REVENUE if end is not None and end > _month_end(issued_on) else REVENUE


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
        start, end = line.service_period_start, line.service_period_end
        if start is not None and end is not None and start > end:
            raise InvalidEvent(f"line {line.line_id} service period ends before it starts")


def invoice_journal(invoice: InvoiceIssued) -> Journal:
    validate(invoice, f"invoice {invoice.invoice_id}")
    if invoice.due_on < invoice.issued_on:
        raise InvalidEvent(f"invoice {invoice.invoice_id} is due before it is issued")
    lines = [debit(ACCOUNTS_RECEIVABLE, invoice.total)]
    lines += [credit(revenue_account(x, invoice.issued_on), x.amount) for x in invoice.lines]
    lines.append(credit(TAX_PAYABLE, invoice.tax_total))
    return Journal(
        key=f"invoice:{invoice.invoice_id}",
        legal_entity=invoice.legal_entity,
        currency=invoice.currency,
        description=f"Invoice {invoice.invoice_number}",
        lines=tuple(lines),
    )


def credit_memo_journal(
    memo: CreditMemoIssued, invoice_currency: str, invoice_entity: str
) -> Journal:
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
    invoice_like = [credit(revenue_account(x, memo.issued_on), x.amount) for x in memo.lines]
    invoice_like += [credit(TAX_PAYABLE, memo.tax_total), debit(ACCOUNTS_RECEIVABLE, memo.total)]
    return Journal(
        key=f"credit-memo:{memo.credit_memo_id}",
        legal_entity=memo.legal_entity,
        currency=memo.currency,
        description=f"Credit memo {memo.credit_memo_id} on invoice {memo.invoice_id}",
        lines=tuple(reverse(invoice_like)),
    )

"""Customer credit balances, pure: what a credit memo above its invoice's open amount leaves on
the customer, and what a later invoice takes of it.

A credit memo reduces its invoice's receivable by at most what is open; the rest is owed to
the customer, a liability (account 2400) held per customer, legal entity and currency. The
next invoice of that customer, entity and currency posts and uses it up to its total: a
journal debiting 2400 and crediting receivables, so the invoice is left open for the rest.
Refunding a credit balance is a refund's to do, which no topic carries yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    CUSTOMER_CREDIT,
    ZERO,
    Journal,
    credit,
    debit,
)


@dataclass(frozen=True)
class MemoSplit:
    """A credit memo's total, as what it takes off its invoice and what it leaves as credit."""

    receivable: Decimal  # off the invoice's open amount (account 1200)
    credit: Decimal  # onto the customer's credit balance (account 2400)


def split_credit_memo(total: Decimal, open_amount: Decimal) -> MemoSplit:
    """A memo clears what is open on its invoice first; only the excess becomes credit."""
    receivable = min(total, max(open_amount, ZERO))
    return MemoSplit(receivable=receivable, credit=total - receivable)


def credit_to_apply(held: Decimal, invoice_total: Decimal) -> Decimal:
    """What a newly posted invoice takes of the credit its customer holds: all of it, up to the
    invoice's total."""
    return max(min(held, invoice_total), ZERO)


def credit_application_journal(
    invoice_id: str,
    invoice_number: str,
    legal_entity: str,
    currency: str,
    amount: Decimal,
    accounting_date: date | None,
) -> Journal:
    """Credit held used on an invoice: the liability goes down, and so does the receivable.
    Dated as the invoice, whose open amount it reduces; one per invoice (its key)."""
    return Journal(
        key=f"credit-application:{invoice_id}",
        legal_entity=legal_entity,
        currency=currency,
        description=f"Customer credit applied to invoice {invoice_number}",
        lines=(debit(CUSTOMER_CREDIT, amount), credit(ACCOUNTS_RECEIVABLE, amount)),
        accounting_date=accounting_date,
    )

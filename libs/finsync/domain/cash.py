"""Cash application rules every service shares, pure: where a payment's money is booked, how
much of it settles an invoice, and how held cash is applied to invoices later.

- Card and ACH money reaches the bank only with the gateway's payout, so those payments debit
  the gateway clearing account (1010); every other method (WIRE, SEPA_DEBIT, ...) debits cash
  at bank (1000).
- Cash applied to an invoice settles up to its open amount; a shortfall within the tolerance
  is written off (6900) and the invoice is PAID, a larger one leaves it PARTIALLY_PAID.
- Held cash — a payment's unapplied cash (2100) — is applied later by a journal of its own:
  Dr 2100 (and 6900 for a write-off) / Cr 1200, one per payment and invoice.
- The auto-apply policy spends a holder's unapplied cash on its open invoices, oldest due date
  first, from the oldest payment first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from finsync.contract.events import ApplicationKind, PaymentStatus
from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    CASH,
    GATEWAY_CLEARING,
    UNAPPLIED_CASH,
    WRITE_OFF,
    ZERO,
    Journal,
    credit,
    debit,
)

# Methods whose money the gateway holds until its payout.
CLEARED_METHODS = frozenset({"CARD", "ACH"})


def cash_account(method: str) -> str:
    """The account a payment's money is debited to, by its method."""
    return GATEWAY_CLEARING if method.strip().upper() in CLEARED_METHODS else CASH


@dataclass(frozen=True)
class Settled:
    """What applying cash to one invoice does to it."""

    applied: Decimal  # cash used on it
    written_off: Decimal  # the shortfall within tolerance, closed to 6900
    open_after: Decimal
    status: PaymentStatus  # PAID or PARTIALLY_PAID (UNAPPLIED: nothing was open)

    @property
    def settles(self) -> Decimal:
        return self.applied + self.written_off


def settle(cash: Decimal, open_amount: Decimal, tolerance: Decimal) -> Settled:
    """Apply up to `cash` to an invoice with `open_amount` open; a shortfall of no more than
    `tolerance` is written off. Nothing open: nothing applied."""
    if open_amount <= 0 or cash <= 0:
        return Settled(ZERO, ZERO, max(open_amount, ZERO), PaymentStatus.UNAPPLIED)
    applied = min(cash, open_amount)
    short = open_amount - applied
    written_off = short if short <= tolerance else ZERO
    status = PaymentStatus.PAID if short <= tolerance else PaymentStatus.PARTIALLY_PAID
    return Settled(applied, written_off, short - written_off, status)


def held_cash_journal(
    payment_id: str,
    invoice_id: str,
    legal_entity: str,
    currency: str,
    settled: Settled,
    kind: ApplicationKind,
    accounting_date: date | None,
) -> Journal:
    """Held cash applied to an invoice: unapplied cash and the receivable go down. One per
    payment and invoice (its key); dated as the invoice that it settles posts."""
    return Journal(
        key=f"payment-application:{payment_id}:{invoice_id}",
        legal_entity=legal_entity,
        currency=currency,
        description=f"Payment {payment_id} applied to invoice {invoice_id} ({kind.value.lower()})",
        lines=(
            debit(UNAPPLIED_CASH, settled.applied),
            debit(WRITE_OFF, settled.written_off),
            credit(ACCOUNTS_RECEIVABLE, settled.settles),
        ),
        accounting_date=accounting_date,
    )


@dataclass(frozen=True)
class HeldCash:
    """A payment's unapplied cash the auto-apply policy may use: what it has left, less what
    is earmarked for invoices not posted yet."""

    payment_id: str
    settled_at: datetime
    available: Decimal
    unapplied_open: Decimal  # all it has not applied, earmarked cash included


@dataclass(frozen=True)
class Due:
    """An open invoice of the holder, as the auto-apply policy orders it."""

    invoice_id: str
    due_on: date
    issued_on: date
    open_amount: Decimal


@dataclass(frozen=True)
class Use:
    payment_id: str
    invoice_id: str
    amount: Decimal


def auto_apply(
    cash: Sequence[HeldCash],
    invoices: Sequence[Due],
    taken: frozenset[tuple[str, str]] = frozenset(),
) -> list[Use]:
    """Spend held cash on open invoices: invoices by oldest due date (then issue date, then id),
    each from the oldest payment first, until the cash or the invoices run out. `taken`: pairs
    (payment, invoice) that already have an application, which a second one cannot join. No
    write-off: the payer did not send this cash for the invoice."""
    left = {c.payment_id: c.available for c in cash}
    payments = sorted(cash, key=lambda c: (c.settled_at, c.payment_id))
    uses: list[Use] = []
    for invoice in sorted(invoices, key=lambda i: (i.due_on, i.issued_on, i.invoice_id)):
        open_ = invoice.open_amount
        for c in payments:
            if open_ <= 0:
                break
            amount = min(left[c.payment_id], open_)
            if amount <= 0 or (c.payment_id, invoice.invoice_id) in taken:
                continue
            uses.append(Use(c.payment_id, invoice.invoice_id, amount))
            left[c.payment_id] -= amount
            open_ -= amount
    return uses

"""payment-settler's refund rule, pure: what a refund is paid out of, and its journal.

A refund is paid out of what the customer holds with us, in this order:

1. its customer credit balance (2400): money we already owe back (a credit memo above what was
   open), for which a refund is the usual end;
2. its unapplied cash (2100): the refunded payment's first, then the payer's oldest; never a
   payment under review, whose cash waits for someone to decide whose it is;
3. only then the cash the refunded payment applied to invoices, latest application first:
   those invoices reopen (1200) for what is taken back. An invoice with a credit memo is left
   alone (the memo already settled part of it; reopening it would bill the credit twice).

Liabilities before receivables: an invoice is never reopened while the customer still holds
money with us that could pay the refund.

Journal: debit 2400, 2100 and 1200 as used, debit 6100 for the gateway's fee; credit 1010
Gateway clearing with amount + fee, as the refund leaves through the gateway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from decimal import Decimal

from finsync.contract.events import RefundSettled
from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    CUSTOMER_CREDIT,
    GATEWAY_CLEARING,
    PAYMENT_FEES,
    UNAPPLIED_CASH,
    ZERO,
    Journal,
    check_amount_and_fee,
    credit,
    debit,
    fmt,
)
from finsync.errors import InvalidEvent
from finsync.ports.erp import PaidInvoice, RefundBooking, Reversal


def validate(refund: RefundSettled) -> None:
    what = f"refund {refund.refund_id}"
    check_amount_and_fee(what, refund.currency, refund.amount, refund.fee_amount)


def allocate(
    refund: RefundSettled,
    credit_held: Decimal,
    unapplied: Sequence[tuple[str, Decimal]],
    paid: Sequence[PaidInvoice],
) -> RefundBooking:
    """Split the refund over what the customer holds (see the module's order): `unapplied` as
    (payment_id, unapplied cash left), the refunded payment's first; `paid` the refunded
    payment's applications, latest first. More than all of it together is InvalidEvent."""
    validate(refund)
    left = refund.amount
    from_credit = min(left, max(credit_held, ZERO))
    left -= from_credit
    reversals: list[Reversal] = []
    for payment_id, cash in unapplied:
        if left == 0:
            break
        take = min(left, cash)
        if take > 0:
            reversals.append(Reversal(payment_id, None, take))
            left -= take
    reopenable = [p for p in paid if not p.credited and p.amount > 0]
    if refund.payment_id is not None:
        for p in reopenable:
            if left == 0:
                break
            take = min(left, p.amount)
            reversals.append(Reversal(p.payment_id, p.invoice_id, take))
            left -= take
    if left > 0:
        c = refund.currency
        held_cash = sum((cash for _, cash in unapplied), ZERO)
        held_paid = sum((p.amount for p in reopenable), ZERO) if refund.payment_id else ZERO
        raise InvalidEvent(
            f"refund {refund.refund_id} of {fmt(refund.amount, c)} is more than account "
            f"{refund.account_id} holds in {refund.legal_entity}: {fmt(credit_held, c)} credit "
            f"balance, {fmt(held_cash, c)} unapplied cash, {fmt(held_paid, c)} paid on invoices "
            f"by the refunded payment ({refund.payment_id or 'none named'}); "
            f"{fmt(left, c)} short"
        )
    return RefundBooking(
        refund_id=refund.refund_id,
        payment_id=refund.payment_id,
        account_id=refund.account_id,
        legal_entity=refund.legal_entity,
        currency=refund.currency,
        amount=refund.amount,
        fee_amount=refund.fee_amount,
        from_credit=from_credit,
        reversals=tuple(reversals),
        refunded_at=refund.refunded_at,
        gateway_reference=refund.gateway_reference,
    )


def refund_journal(b: RefundBooking) -> Journal:
    reopened = [
        debit(ACCOUNTS_RECEIVABLE, x.amount) for x in b.reversals if x.invoice_id is not None
    ]
    return Journal(
        key=f"refund:{b.refund_id}",
        legal_entity=b.legal_entity,
        currency=b.currency,
        description=f"Refund {b.refund_id}"
        + (f" of payment {b.payment_id}" if b.payment_id else ""),
        lines=(
            debit(CUSTOMER_CREDIT, b.from_credit),
            debit(UNAPPLIED_CASH, b.from_unapplied),
            *reopened,  # one line per invoice, so each invoice's reopening shows
            debit(PAYMENT_FEES, b.fee_amount),
            credit(GATEWAY_CLEARING, b.amount + b.fee_amount),
        ),
        accounting_date=b.refunded_at.astimezone(UTC).date(),  # the day the money left
    )

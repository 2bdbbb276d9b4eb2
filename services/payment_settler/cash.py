"""payment-settler's accounting rule, pure: how a settled payment is applied and booked.

- No invoice: the whole payment is unapplied cash on the customer (UNAPPLIED).
- At least the open amount: the invoice is PAID; any excess is unapplied cash.
- Short by no more than the tolerance: the invoice is PAID and the shortfall written off. The
  tolerance is the currency's (domain/write_off.py), possibly a percentage of the invoice.
- Shorter: the invoice is PARTIALLY_PAID and stays open for the rest.

Journal: debit cash for what the bank received (amount - fee), debit fees, debit write-offs;
credit AR for what the invoice is settled by, credit unapplied cash for the excess.
"""

from __future__ import annotations

from datetime import UTC

from finsync.contract.events import PaymentSettled, PaymentStatus
from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    CASH,
    PAYMENT_FEES,
    UNAPPLIED_CASH,
    WRITE_OFF,
    ZERO,
    Journal,
    check_money,
    credit,
    debit,
    fmt,
)
from finsync.domain.write_off import Tolerances
from finsync.errors import InvalidEvent
from finsync.ports.erp import CashApplication, OpenItem

NO_OVERRIDES = Tolerances()  # each currency keeps its default tolerance


def validate(payment: PaymentSettled) -> None:
    what = f"payment {payment.payment_id}"
    c = payment.currency
    check_money(c, {"amount": payment.amount, "fee_amount": payment.fee_amount})
    if payment.amount <= 0:
        raise InvalidEvent(f"{what} amount must be positive, got {fmt(payment.amount, c)}")
    if payment.fee_amount < 0:
        raise InvalidEvent(f"{what} fee must not be negative, got {fmt(payment.fee_amount, c)}")
    if payment.fee_amount > payment.amount:
        raise InvalidEvent(
            f"{what} fee {fmt(payment.fee_amount, c)} exceeds its amount {fmt(payment.amount, c)}"
        )


def apply(
    payment: PaymentSettled,
    invoice: OpenItem | None,
    customer_id: str,
    legal_entity: str,
    tolerances: Tolerances = NO_OVERRIDES,
) -> CashApplication:
    """Split the payment into applied, written-off and unapplied amounts."""
    validate(payment)
    amount = payment.amount
    applied = written_off = ZERO
    status = PaymentStatus.UNAPPLIED
    if invoice is not None:
        if payment.currency != invoice.currency:
            raise InvalidEvent(
                f"payment {payment.payment_id} is in {payment.currency} but invoice "
                f"{invoice.invoice_id} is in {invoice.currency}"
            )
        legal_entity = invoice.legal_entity
        open_ = invoice.open_amount
        tolerance = tolerances.amount(invoice.currency, invoice.original_amount)
        if open_ > 0:
            applied = min(amount, open_)
            short = open_ - applied
            if 0 < short <= tolerance:
                written_off = short
            status = PaymentStatus.PAID if short <= tolerance else PaymentStatus.PARTIALLY_PAID
    return CashApplication(
        payment_id=payment.payment_id,
        account_id=payment.account_id,
        customer_id=customer_id,
        invoice_id=invoice.invoice_id if invoice else None,
        legal_entity=legal_entity,
        currency=payment.currency,
        amount=amount,
        fee_amount=payment.fee_amount,
        applied_amount=applied,
        written_off_amount=written_off,
        unapplied_amount=amount - applied,
        status=status,
        settled_at=payment.settled_at,
        method=payment.method,
        gateway_reference=payment.gateway_reference,
    )


def payment_journal(a: CashApplication) -> Journal:
    target = f"invoice {a.invoice_id}" if a.invoice_id else "no invoice"
    return Journal(
        key=f"payment:{a.payment_id}",
        legal_entity=a.legal_entity,
        currency=a.currency,
        description=f"Payment {a.payment_id} ({target})",
        lines=(
            debit(CASH, a.amount - a.fee_amount),
            debit(PAYMENT_FEES, a.fee_amount),
            debit(WRITE_OFF, a.written_off_amount),
            credit(ACCOUNTS_RECEIVABLE, a.settles),
            credit(UNAPPLIED_CASH, a.unapplied_amount),
        ),
        accounting_date=a.settled_at.astimezone(UTC).date(),  # the day the money arrived
    )

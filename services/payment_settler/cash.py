"""payment-settler's accounting rule, pure: how a settled payment is applied and booked
(several invoices, prepayments and payers: remittance.py).

- No invoice: the whole payment is unapplied cash on the customer (UNAPPLIED).
- At least the open amount: the invoice is PAID; any excess is unapplied cash.
- Short by no more than the tolerance: the invoice is PAID and the shortfall written off. The
  tolerance is the currency's (domain/write_off.py), possibly a percentage of the invoice.
- Shorter: the invoice is PARTIALLY_PAID and stays open for the rest.

Journal: debit cash for what the bank received (amount - fee; card and ACH money to the gateway
clearing account 1010 until the payout, other methods to 1000), debit fees, debit write-offs;
credit AR for what the invoices are settled by, credit unapplied cash for the rest.
"""

from __future__ import annotations

from datetime import UTC

from finsync.contract.events import PaymentSettled
from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    PAYMENT_FEES,
    UNAPPLIED_CASH,
    WRITE_OFF,
    Journal,
    check_amount_and_fee,
    credit,
    debit,
    fmt,
)
from finsync.domain.write_off import Tolerances
from finsync.errors import InvalidEvent
from finsync.ports.erp import CashApplication, OpenItem

from .cross_currency import at_sent_amounts
from .remittance import Found, Target, split, targets

NO_OVERRIDES = Tolerances()  # each currency keeps its default tolerance


def validate(payment: PaymentSettled) -> None:
    what = f"payment {payment.payment_id}"
    c = payment.currency
    check_amount_and_fee(what, c, payment.amount, payment.fee_amount)
    if payment.fee_amount > payment.amount:
        raise InvalidEvent(
            f"{what} fee {fmt(payment.fee_amount, c)} exceeds its amount {fmt(payment.amount, c)}"
        )
    targets(payment)  # its allocations


def apply(
    payment: PaymentSettled,
    invoice: OpenItem | None,
    customer_id: str,
    legal_entity: str,
    tolerances: Tolerances = NO_OVERRIDES,
) -> CashApplication:
    """Split a payment for one invoice (or none) into applied, written-off and unapplied
    amounts; remittance.split does the same for several."""
    validate(payment)
    found = [Found(Target(invoice.invoice_id, None), invoice)] if invoice is not None else []
    return split(payment, found, customer_id, legal_entity, tolerances)[0]


def payment_journal(a: CashApplication) -> Journal:
    invoices = [x.invoice_id for x in a.applications] or ([a.invoice_id] if a.invoice_id else [])
    target = f"invoice {', '.join(invoices)}" if invoices else "no invoice"
    lines = (
        debit(a.cash_account, a.amount - a.fee_amount),  # 1000, or 1010 until the payout
        debit(PAYMENT_FEES, a.fee_amount),
        debit(WRITE_OFF, a.written_off_amount),
        credit(ACCOUNTS_RECEIVABLE, a.settles),
        credit(UNAPPLIED_CASH, a.unapplied_amount),
    )
    return Journal(
        key=f"payment:{a.payment_id}",
        legal_entity=a.legal_entity,
        currency=a.currency,
        description=f"Payment {a.payment_id} ({target})",
        lines=at_sent_amounts(lines, a),  # sent in another currency: the bank at what was sent
        accounting_date=a.settled_at.astimezone(UTC).date(),  # the day the money arrived
    )

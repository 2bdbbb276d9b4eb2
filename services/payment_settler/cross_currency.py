"""payment-settler's rule for a payment in another currency than its invoices, pure.

Where the invoices' entity applies payments across currencies (ACME-UK), the payment is
converted at the day's cross rate (payment currency -> invoice currency, as loaded) and applied
as if the payer had sent the converted amount: the journal is in the invoices' currency, and
the payment row keeps what was sent, and the rate. When what was sent is the entity's
functional currency, the bank and fee lines carry exactly what was sent in functional terms,
so the bank ties to the penny; AR goes at the invoice's booked rate and fx.convert books what
is left as realised FX. Elsewhere such a payment is a dead letter.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext

from finsync.contract.events import Allocation, JournalLine, PaymentSettled
from finsync.domain.accounting import PAYMENT_FEES, fmt
from finsync.domain.fx import quantize_rate, round_to
from finsync.errors import InvalidEvent
from finsync.ports.erp import CashApplication, CrossCurrency, CrossRate, OpenItem


def foreign_invoice(payment: PaymentSettled, items: Sequence[OpenItem | None]) -> OpenItem | None:
    """The first posted invoice in another currency than the payment, if any."""
    return next((x for x in items if x is not None and x.currency != payment.currency), None)


def not_applied(payment: PaymentSettled, invoice: OpenItem) -> str:
    return (
        f"payment {payment.payment_id} is in {payment.currency} but invoice "
        f"{invoice.invoice_id} is in {invoice.currency}, and {invoice.legal_entity} does not "
        "apply cross-currency payments"
    )


def convert(
    payment: PaymentSettled, to_currency: str, cross: CrossRate
) -> tuple[PaymentSettled, CrossCurrency]:
    """The payment as the invoices' currency sees it (amount, fee and allocations at the cross
    rate, rounded to its minor units), and what was sent."""
    rate = cross.rate
    amount = round_to(payment.amount * rate, to_currency)
    if amount <= 0:
        raise InvalidEvent(
            f"payment {payment.payment_id} of {fmt(payment.amount, payment.currency)} is "
            f"nothing in {to_currency} at {rate.normalize():f}"
        )
    allocations = payment.allocations and [
        Allocation(
            invoice_id=x.invoice_id, amount=min(round_to(x.amount * rate, to_currency), amount)
        )
        for x in payment.allocations
    ]
    converted = payment.model_copy(
        update={
            "currency": to_currency,
            "amount": amount,
            "fee_amount": round_to(payment.fee_amount * rate, to_currency),
            "allocations": allocations,
        }
    )
    sent = CrossCurrency(
        payment.currency, payment.amount, payment.fee_amount, rate, cross.functional_currency
    )
    return converted, sent


def at_sent_amounts(lines: Sequence[JournalLine], a: CashApplication) -> tuple[JournalLine, ...]:
    """The cash and fee debits at what was sent, when that is the functional currency."""
    sent = a.cross
    if sent is None or sent.currency != sent.functional_currency:
        return tuple(lines)
    own = {a.cash_account: sent.amount - sent.fee_amount, PAYMENT_FEES: sent.fee_amount}
    out = []
    for x in lines:
        functional = own.get(x.account_code)
        if x.debit and functional is not None:
            with localcontext() as ctx:
                ctx.prec = 40
                rate = quantize_rate(functional / x.debit) if functional else Decimal(1)
            update = {"functional_debit": functional, "functional_credit": Decimal(0), "rate": rate}
            x = x.model_copy(update=update)
        out.append(x)
    return tuple(out)

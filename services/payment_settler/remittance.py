"""payment-settler's rule for where a payment's cash goes, pure: the invoices it names, and how
much each gets.

A payment names no invoice, one (`invoice_id`: as much of the payment as the invoice takes), or
several (`allocations`, a remittance: each invoice gets at most its allocation). With both,
`invoice_id` must be one of the allocations; the allocations decide. Each invoice named is
then, in order:
- posted, and the payer's (its account hierarchy's): settled as a single-invoice payment is,
  a shortfall within the tolerance written off, per invoice;
- posted, but another customer's: not applied; the cash stays unapplied on the payer with a
  review reason, and no policy applies it later;
- not posted yet: its cash is earmarked for it (a prepayment), and applied when it posts.
What no invoice takes stays unapplied cash on the payer.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from finsync.contract.events import PaymentSettled, PaymentStatus
from finsync.domain.accounting import ZERO, check_money, fmt
from finsync.domain.cash import Settled, cash_account, settle
from finsync.domain.write_off import Tolerances
from finsync.errors import InvalidEvent
from finsync.ports.erp import CashApplication, Earmark, InvoiceApplication, OpenItem


@dataclass(frozen=True)
class Target:
    invoice_id: str
    amount: Decimal | None  # None: as much of the payment as the invoice takes


@dataclass(frozen=True)
class Found:
    """A target as the ERP has it: its AR item (None: not posted yet), and why the payer may
    not pay it (None: it may)."""

    target: Target
    item: OpenItem | None
    stranger: str | None = None


def targets(payment: PaymentSettled) -> list[Target]:
    """The invoices the payment names, its allocations checked. Raises InvalidEvent."""
    what, c = f"payment {payment.payment_id}", payment.currency
    if not payment.allocations:
        return [Target(payment.invoice_id, None)] if payment.invoice_id is not None else []
    seen: set[str] = set()
    for x in payment.allocations:
        check_money(c, {f"allocation to invoice {x.invoice_id}": x.amount})
        if x.amount <= 0:
            raise InvalidEvent(
                f"{what} allocates {fmt(x.amount, c)} to invoice {x.invoice_id}: "
                "an allocation must be positive"
            )
        if x.invoice_id in seen:
            raise InvalidEvent(f"{what} allocates to invoice {x.invoice_id} more than once")
        seen.add(x.invoice_id)
    total = sum((x.amount for x in payment.allocations), ZERO)
    if total > payment.amount:
        raise InvalidEvent(
            f"{what} allocates {fmt(total, c)} to invoices, more than its amount "
            f"{fmt(payment.amount, c)}"
        )
    if payment.invoice_id is not None and payment.invoice_id not in seen:
        raise InvalidEvent(
            f"{what} is for invoice {payment.invoice_id}, which none of its allocations names"
        )
    return [Target(x.invoice_id, x.amount) for x in payment.allocations]


def split(
    payment: PaymentSettled,
    found: list[Found],
    customer_id: str,
    legal_entity: str,
    tolerances: Tolerances,
) -> tuple[CashApplication, dict[str, Settled]]:
    """The payment's application: per invoice applied, earmarked or held for review, the rest
    unapplied. Also what each invoice applied to was left with."""
    what = f"payment {payment.payment_id}"
    left = payment.amount
    applications: list[InvoiceApplication] = []
    earmarks: list[Earmark] = []
    reviews: list[str] = []
    settled: dict[str, Settled] = {}
    entity: str | None = None
    for f in found:
        cash = left if f.target.amount is None else min(f.target.amount, left)
        item = f.item
        if item is None:
            if cash > 0:
                earmarks.append(Earmark(f.target.invoice_id, cash))
            continue
        if payment.currency != item.currency:
            raise InvalidEvent(
                f"{what} is in {payment.currency} but invoice {item.invoice_id} is in "
                f"{item.currency}"
            )
        if entity is not None and item.legal_entity != entity:
            raise InvalidEvent(
                f"{what} pays invoices of legal entities {entity} and {item.legal_entity}: "
                "one payment is booked in one entity's books"
            )
        entity = item.legal_entity
        if f.stranger is not None:
            reviews.append(f.stranger)
            continue
        tolerance = tolerances.amount(item.currency, item.original_amount)
        s = settle(cash, item.open_amount, tolerance)
        settled[item.invoice_id] = s
        if s.settles > 0:
            applications.append(InvoiceApplication(item.invoice_id, s.applied, s.written_off))
            left -= s.applied
    applied = sum((x.applied_amount for x in applications), ZERO)
    written_off = sum((x.written_off_amount for x in applications), ZERO)
    statuses = [s.status for s in settled.values() if s.settles > 0]
    status = (
        PaymentStatus.UNAPPLIED
        if not statuses
        else PaymentStatus.PAID
        if all(x == PaymentStatus.PAID for x in statuses)
        else PaymentStatus.PARTIALLY_PAID
    )
    single = found[0] if len(found) == 1 and found[0].stranger is None else None
    application = CashApplication(
        payment_id=payment.payment_id,
        account_id=payment.account_id,
        customer_id=customer_id,
        # The one invoice a single-invoice payment was applied to, as before remittances.
        invoice_id=single.item.invoice_id if single and single.item else None,
        legal_entity=entity or legal_entity,
        currency=payment.currency,
        amount=payment.amount,
        fee_amount=payment.fee_amount,
        applied_amount=applied,
        written_off_amount=written_off,
        unapplied_amount=payment.amount - applied,
        status=status,
        settled_at=payment.settled_at,
        method=payment.method,
        gateway_reference=payment.gateway_reference,
        applications=tuple(applications),
        earmarks=tuple(earmarks),
        review_reason="; ".join(reviews) or None,
        cash_account=cash_account(payment.method),
    )
    return application, settled

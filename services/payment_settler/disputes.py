"""payment-settler's dispute rule, pure: how each status of a dispute (chargeback) is booked.

- OPENED: the gateway withdraws the funds. Debit 1260 Disputed receivables with the amount (a
  claim until decided), debit 6100 with the dispute fee; credit 1010 Gateway clearing with both.
- WON: the gateway reinstates the funds: debit 1010, credit 1260 with the amount. The fee is
  not returned.
- LOST: the funds are gone; 1260 is credited with the amount against, by policy:
  - `reopen` (the default): what the payment settled is taken back, as if that much of it had
    never arrived: first the unapplied cash it still has (debit 2100), then the invoices it
    paid, latest application first, which reopen (debit 1200) and are collected again; an
    invoice with a credit memo is left alone. What the payment no longer has (refunded, say)
    is written off (debit 6900).
  - `write-off`: all of it to 6900 at once.
  Reopen is the default because a lost chargeback means the customer has not paid: the debt
  comes back to AR where dunning and collections see it, instead of vanishing into an expense
  nobody follows up. Write-off suits businesses that do not chase chargebacks.

Statuses may arrive out of order. An outcome (WON or LOST) that arrives before its OPENED
cannot wait for it: the runtime keeps each key's records in order through retries, so the
OPENED behind it (same dispute_id) would wait too, until the outcome is dead-lettered. The
outcome carries what the opening needs (payment, amount, fee), so it books the opening itself,
then the outcome; the OPENED that arrives later finds the dispute opened with the same figures
and takes no effect. Only a payment not booked yet is waited for (another key).
A dispute closes once: WON after LOST, LOST after WON, is InvalidEvent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from finsync.contract.events import DisputeStatus, DisputeUpdated
from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    DISPUTED_RECEIVABLES,
    GATEWAY_CLEARING,
    PAYMENT_FEES,
    UNAPPLIED_CASH,
    WRITE_OFF,
    ZERO,
    Journal,
    check_amount_and_fee,
    credit,
    debit,
    fmt,
)
from finsync.errors import DependencyNotReady, InvalidEvent
from finsync.ports.erp import BookedPayment, Dispute, DisputeLoss, PaidInvoice, Reversal

REOPEN = "reopen"
WRITE_OFF_POLICY = "write-off"
POLICIES = (REOPEN, WRITE_OFF_POLICY)


def validate(d: DisputeUpdated) -> None:
    check_amount_and_fee(f"dispute {d.dispute_id}", d.currency, d.amount, d.fee_amount)


def opening(
    d: DisputeUpdated, payment: BookedPayment | None, known: Dispute | None
) -> Dispute | None:
    """The dispute to record as OPENED, checked against the payment it disputes; None if it
    was opened before with the same figures (by its outcome, which arrived first)."""
    validate(d)
    what = f"dispute {d.dispute_id}"
    if known is not None:
        _same(d, known)
        return None
    if payment is None:
        raise DependencyNotReady(f"{what} is on payment {d.payment_id}, which is not booked yet")
    if d.currency != payment.currency:
        raise InvalidEvent(
            f"{what} is in {d.currency} but payment {d.payment_id} is in {payment.currency}"
        )
    if d.legal_entity != payment.legal_entity:
        raise InvalidEvent(
            f"{what} is in legal entity {d.legal_entity} but payment {d.payment_id} "
            f"is in {payment.legal_entity}"
        )
    if d.amount > payment.amount:
        raise InvalidEvent(
            f"{what} disputes {fmt(d.amount, d.currency)}, more than payment {d.payment_id}'s "
            f"{fmt(payment.amount, d.currency)}"
        )
    return Dispute(
        dispute_id=d.dispute_id,
        payment_id=d.payment_id,
        account_id=d.account_id,
        legal_entity=payment.legal_entity,
        currency=d.currency,
        amount=d.amount,
        fee_amount=d.fee_amount,
        status=DisputeStatus.OPENED.value,
        opened_at=d.updated_at,
        reason=d.reason,
    )


def check_outcome(d: DisputeUpdated, known: Dispute) -> Dispute:
    """The open dispute a WON or LOST closes (opened before, or just now by this outcome)."""
    validate(d)
    if known.status != DisputeStatus.OPENED:
        raise InvalidEvent(
            f"dispute {d.dispute_id} was {known.status} already: it cannot also be {d.status}"
        )
    _same(d, known)
    return known


def _same(d: DisputeUpdated, known: Dispute) -> None:
    if (d.payment_id, d.currency, d.amount) != (known.payment_id, known.currency, known.amount):
        raise InvalidEvent(
            f"dispute {d.dispute_id} is {d.status} for {fmt(d.amount, d.currency)} of payment "
            f"{d.payment_id}, but was opened for {fmt(known.amount, known.currency)} of payment "
            f"{known.payment_id}"
        )


def opened_journal(d: Dispute) -> Journal:
    return Journal(
        key=f"dispute:{d.dispute_id}:OPENED",
        legal_entity=d.legal_entity,
        currency=d.currency,
        description=f"Dispute {d.dispute_id} opened on payment {d.payment_id}",
        lines=(
            debit(DISPUTED_RECEIVABLES, d.amount),
            debit(PAYMENT_FEES, d.fee_amount),
            credit(GATEWAY_CLEARING, d.amount + d.fee_amount),
        ),
        accounting_date=d.opened_at.astimezone(UTC).date(),
    )


def _closed_key(d: Dispute) -> str:
    # One key for either outcome: the ERP itself refuses a second one.
    return f"dispute:{d.dispute_id}:closed"


def won_journal(d: Dispute, won_at: datetime) -> Journal:
    return Journal(
        key=_closed_key(d),
        legal_entity=d.legal_entity,
        currency=d.currency,
        description=f"Dispute {d.dispute_id} won on payment {d.payment_id}",
        lines=(debit(GATEWAY_CLEARING, d.amount), credit(DISPUTED_RECEIVABLES, d.amount)),
        accounting_date=won_at.astimezone(UTC).date(),
    )


def lose(
    d: Dispute, policy: str, unapplied_open: Decimal, paid: Sequence[PaidInvoice]
) -> DisputeLoss:
    """What a lost dispute takes back from its payment, by policy (see the module)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown lost-dispute policy {policy!r}")
    if policy == WRITE_OFF_POLICY:
        return DisputeLoss(policy, (), d.amount)
    left = d.amount
    reversals: list[Reversal] = []
    take = min(left, max(unapplied_open, ZERO))
    if take > 0:
        reversals.append(Reversal(d.payment_id, None, take))
        left -= take
    for p in paid:
        if left == 0:
            break
        if p.credited or p.amount <= 0:
            continue
        take = min(left, p.amount)
        reversals.append(Reversal(d.payment_id, p.invoice_id, take))
        left -= take
    return DisputeLoss(policy, tuple(reversals), left)


def lost_journal(d: Dispute, loss: DisputeLoss, lost_at: datetime) -> Journal:
    unapplied = sum((x.amount for x in loss.reversals if x.invoice_id is None), ZERO)
    reopened = [
        debit(ACCOUNTS_RECEIVABLE, x.amount) for x in loss.reversals if x.invoice_id is not None
    ]
    return Journal(
        key=_closed_key(d),
        legal_entity=d.legal_entity,
        currency=d.currency,
        description=f"Dispute {d.dispute_id} lost on payment {d.payment_id} ({loss.policy})",
        lines=(
            debit(UNAPPLIED_CASH, unapplied),
            *reopened,
            debit(WRITE_OFF, loss.written_off),
            credit(DISPUTED_RECEIVABLES, d.amount),
        ),
        accounting_date=lost_at.astimezone(UTC).date(),
    )

"""payment-settler: refunds and disputes, booked once each (a dispute once per status).

A refund or dispute naming a payment not booked yet waits for it (DependencyNotReady); a
dispute's outcome that arrives before its opening books the opening too (disputes.py says
why). They publish nothing: their journals are the ERP's, tied to erp.refunds and
erp.disputes, which `finsync reconcile` checks.
"""

from __future__ import annotations

from typing import Never

from finsync.contract.events import DisputeStatus, DisputeUpdated, RefundSettled
from finsync.domain.accounting import ZERO
from finsync.errors import DependencyNotReady, InvalidEvent
from finsync.ports.erp import CreditHolder

from . import disputes, refunds
from .handler import Systems


def settle_refund(refund: RefundSettled, systems: Systems) -> list[Never]:
    refunds.validate(refund)  # a bad refund is rejected before waiting for anything
    erp, what = systems.erp, f"refund {refund.refund_id}"
    holder = CreditHolder(refund.account_id, refund.legal_entity, refund.currency)
    paid = []
    if refund.payment_id is not None:
        named = erp.booked_payment(refund.payment_id)
        if named is None:
            raise DependencyNotReady(
                f"{what} is of payment {refund.payment_id}, which is not booked yet"
            )
        if (named.account_id, named.legal_entity, named.currency) != (
            holder.account_id,
            holder.legal_entity,
            holder.currency,
        ):
            raise InvalidEvent(
                f"{what} is to account {refund.account_id} in {refund.legal_entity} "
                f"{refund.currency}, but payment {refund.payment_id} is from account "
                f"{named.account_id} in {named.legal_entity} {named.currency}"
            )
        paid = erp.paid_invoices(refund.payment_id)
    booking = refunds.allocate(
        refund,
        erp.credit_held(holder),
        erp.unapplied_cash(holder, refund.payment_id),
        paid,
    )
    erp.book_refund(booking, refunds.refund_journal(booking))
    return []


def update_dispute(update: DisputeUpdated, systems: Systems) -> list[Never]:
    disputes.validate(update)
    erp = systems.erp
    known = erp.dispute(update.dispute_id)
    if update.status == DisputeStatus.OPENED or known is None:
        opened = disputes.opening(update, erp.booked_payment(update.payment_id), known)
        if opened is not None:
            erp.open_dispute(opened, disputes.opened_journal(opened))
        if update.status == DisputeStatus.OPENED:
            return []
        known = opened
    assert known is not None  # opened above, or before
    dispute = disputes.check_outcome(update, known)
    if update.status == DisputeStatus.WON:
        journal = disputes.won_journal(dispute, update.updated_at)
        erp.close_dispute(dispute.dispute_id, update.status.value, update.updated_at, journal)
        return []
    policy = systems.lost_disputes
    if policy == disputes.REOPEN:
        payment = erp.booked_payment(dispute.payment_id)  # locked: its cash is taken back once
        unapplied = payment.unapplied_open if payment else ZERO
        loss = disputes.lose(dispute, policy, unapplied, erp.paid_invoices(dispute.payment_id))
    else:
        loss = disputes.lose(dispute, policy, ZERO, ())
    journal = disputes.lost_journal(dispute, loss, update.updated_at)
    erp.close_dispute(dispute.dispute_id, update.status.value, update.updated_at, journal, loss)
    return []

"""payment-settler: a settled payment is applied to its invoices in the ERP, once.

Cash is booked the day it arrives. A payment for an invoice not posted yet is a deposit on the
payer, earmarked for that invoice (invoice-poster applies it when the invoice posts). Only a
payment from an account not synced yet waits, through retries with backoff: its customer would
hold the cash. An invoice outside the payer's account hierarchy is not paid: the cash waits,
unapplied, for a review.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC

from finsync.contract.events import (
    Allocation,
    Application,
    ApplicationKind,
    PaymentApplied,
    PaymentSettled,
)
from finsync.domain.payer import LinkOf, may_pay
from finsync.domain.payer import stranger as outside
from finsync.domain.write_off import Tolerances
from finsync.errors import DependencyNotReady, InvalidEvent
from finsync.ports.crossref import CrossReference
from finsync.ports.erp import Erp

from .cash import payment_journal, validate
from .cross_currency import convert, foreign_invoice, not_applied
from .remittance import Found, split, targets

SOURCE = "finsync.payment-settler"


@dataclass(frozen=True)
class Systems:
    erp: Erp
    crossref: CrossReference
    tolerances: Tolerances  # per currency, the largest short payment written off
    lost_disputes: str = "reopen"  # how a lost dispute is booked (FINSYNC_LOST_DISPUTES)

    def flush(self) -> None:
        self.erp.flush()


def settle_payment(payment: PaymentSettled, systems: Systems) -> list[PaymentApplied]:
    validate(payment)  # a bad payment is rejected before waiting for anything
    what = f"payment {payment.payment_id}"
    payer = systems.crossref.link(payment.account_id)
    if payer is None:
        raise DependencyNotReady(f"{what} is from account {payment.account_id}, not synced yet")
    found = []
    for target in targets(payment):
        item = systems.erp.open_item(target.invoice_id, lock=True)
        if item is None:  # a prepayment: its cash is earmarked, unless the invoice posts now
            item = systems.erp.open_item_for_earmark(target.invoice_id)
        stranger = None
        if item is not None and not may_pay(payer.account_id, item.account_id, _link(systems)):
            stranger = outside(item.invoice_id, item.account_id, payer.account_id)
        found.append(Found(target, item, stranger))
    cross = None
    foreign = foreign_invoice(payment, [f.item for f in found])
    if foreign is not None:  # applied at the day's cross rate, where the entity does that
        day = payment.settled_at.astimezone(UTC).date()
        rate = systems.erp.cross_rate(foreign.legal_entity, payment.currency, foreign.currency, day)
        if rate is None:
            raise InvalidEvent(not_applied(payment, foreign))
        payment, cross = convert(payment, foreign.currency, rate)
    if all(f.item is None for f in found) and payment.currency != payer.currency:
        raise InvalidEvent(
            f"{what} has no posted invoice and is in {payment.currency}, but account "
            f"{payment.account_id} is billed in {payer.currency}"
        )
    application, settled = split(
        payment, found, payer.erp_customer_id, payer.legal_entity, systems.tolerances
    )
    application = replace(application, cross=cross)
    journal = payment_journal(application)
    posted = systems.erp.apply_payment(application, journal)
    applications = [
        Application(
            invoice_id=x.invoice_id,
            applied_amount=x.applied_amount,
            written_off_amount=x.written_off_amount,
            invoice_open_after=settled[x.invoice_id].open_after,
            kind=ApplicationKind.SETTLEMENT,
        )
        for x in application.applications
    ]
    earmarked = [Allocation(invoice_id=e.invoice_id, amount=e.amount) for e in application.earmarks]
    single = settled.get(application.invoice_id or "")
    return [
        payment.follow(
            PaymentApplied,
            source=SOURCE,
            payment_id=payment.payment_id,
            invoice_id=application.invoice_id,
            currency=payment.currency,
            applied_amount=application.applied_amount,
            unapplied_amount=application.unapplied_amount,
            invoice_open_after=single.open_after if single else None,
            status=application.status,
            journal_entry_id=posted.journal_entry_id,
            journal_lines=posted.booked(journal),  # with their functional amounts
            functional_currency=posted.functional_currency,
            account_id=payment.account_id,
            erp_customer_id=payer.erp_customer_id,
            legal_entity=application.legal_entity,
            written_off_amount=application.written_off_amount,
            accounting_date=posted.accounting_date,
            applications=applications,
            review_reason=application.review_reason,
            earmarked=earmarked or None,
        )
    ]


def _link(systems: Systems) -> LinkOf:
    return lambda account_id: systems.crossref.link(account_id)

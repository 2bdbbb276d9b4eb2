"""payment-settler: a settled payment is applied to its invoice in the ERP, once.

A payment for an invoice not posted yet waits, through retries with backoff, for the posting;
so does a payment from an account not synced yet, whose customer would hold its unapplied cash.
"""

from __future__ import annotations

from dataclasses import dataclass

from finsync.contract.events import PaymentApplied, PaymentSettled
from finsync.domain.write_off import Tolerances
from finsync.errors import DependencyNotReady, InvalidEvent
from finsync.ports.crossref import CrossReference
from finsync.ports.erp import Erp

from .cash import apply, payment_journal, validate

SOURCE = "finsync.payment-settler"


@dataclass(frozen=True)
class Systems:
    erp: Erp
    crossref: CrossReference
    tolerances: Tolerances  # per currency, the largest short payment written off

    def flush(self) -> None:
        self.erp.flush()


def settle_payment(payment: PaymentSettled, systems: Systems) -> list[PaymentApplied]:
    validate(payment)  # a bad payment is rejected before waiting for anything
    what = f"payment {payment.payment_id}"
    payer = systems.crossref.link(payment.account_id)
    if payer is None:
        raise DependencyNotReady(f"{what} is from account {payment.account_id}, not synced yet")
    invoice = None
    if payment.invoice_id is not None:
        invoice = systems.erp.open_item(payment.invoice_id, lock=True)
        if invoice is None:
            raise DependencyNotReady(
                f"{what} is for invoice {payment.invoice_id}, which is not posted yet"
            )
    elif payment.currency != payer.currency:
        raise InvalidEvent(
            f"{what} has no invoice and is in {payment.currency}, but account "
            f"{payment.account_id} is billed in {payer.currency}"
        )
    application = apply(
        payment, invoice, payer.erp_customer_id, payer.legal_entity, systems.tolerances
    )
    journal = payment_journal(application)
    posted = systems.erp.apply_payment(application, journal)
    open_after = invoice.open_amount - application.settles if invoice else None
    return [
        payment.follow(
            PaymentApplied,
            source=SOURCE,
            payment_id=payment.payment_id,
            invoice_id=payment.invoice_id,
            currency=payment.currency,
            applied_amount=application.applied_amount,
            unapplied_amount=application.unapplied_amount,
            invoice_open_after=open_after,
            status=application.status,
            journal_entry_id=posted.journal_entry_id,
            journal_lines=list(journal.lines),
            account_id=payment.account_id,
            erp_customer_id=payer.erp_customer_id,
            legal_entity=application.legal_entity,
            written_off_amount=application.written_off_amount,
            accounting_date=posted.accounting_date,
        )
    ]

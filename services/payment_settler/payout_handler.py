"""payment-settler: a payout is booked as a bank deposit, matched against gateway clearing, once.

A payout that names a payment, refund or dispute the ERP does not hold yet waits for it, through
retries with backoff (the service's retry budget, a day by default), then becomes a dead letter
to replay once the document is there: a payout is never booked as a mismatch for a document
that is merely late.
"""

from __future__ import annotations

from finsync.contract.events import PayoutDifference, PayoutPaid, PayoutReconciled
from finsync.errors import DependencyNotReady

from .handler import SOURCE, Systems
from .payouts import match, payout_journal, references, validate, waiting_for

SHOWN = 5  # missing documents named in the retry reason


def book_payout(payout: PayoutPaid, systems: Systems) -> list[PayoutReconciled]:
    validate(payout)  # a bad payout is rejected before waiting for anything
    documents = systems.erp.clearing_documents(references(payout))
    missing = waiting_for(payout, documents)
    if missing:
        more = f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
        raise DependencyNotReady(
            f"payout {payout.payout_id} names {', '.join(missing[:SHOWN])}{more}, not booked yet"
        )
    booking = match(payout, documents)
    journal = payout_journal(booking)
    posted = systems.erp.book_payout(booking, journal)
    return [
        payout.follow(
            PayoutReconciled,
            source=SOURCE,
            payout_id=payout.payout_id,
            legal_entity=payout.legal_entity,
            currency=payout.currency,
            amount=payout.amount,
            status=booking.status,
            matched_amount=booking.matched_amount,
            differences=[
                PayoutDifference(
                    type=d.type,
                    reference_id=d.reference_id,
                    expected_net=d.expected_net,
                    reported_net=d.reported_net,
                    reason=d.reason,
                )
                for d in booking.differences
            ],
            journal_entry_id=posted.journal_entry_id,
            journal_lines=posted.booked(journal),  # with their functional amounts
            accounting_date=posted.accounting_date,
        )
    ]

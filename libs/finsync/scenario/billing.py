"""The reference billing system in the scenario: the invoices its run will issue, predicted so
that payments can settle ahead of them, and a release with a bug that publishes malformed
invoices. (The invoice run and the credit memos are billing's own jobs; `stages` calls them.)
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

from finsync.contract.events import Event, InvoiceIssued, OpportunityClosed
from finsync.domain.billing_schedule import due_invoices, phase_end
from finsync.ports.billing import Phase
from finsync.reference.billing import jobs as billing_jobs
from finsync.runtime import db
from finsync.runtime.messages import Outgoing
from finsync.scenario.plan import UNREADABLE, Scenario
from finsync.settings import Settings


def malformed_invoices(s: Scenario, template: InvoiceIssued) -> list[Event | Outgoing]:
    """A billing release with a bug: an invoice whose lines do not add up, and JSON bytes."""
    wrong = template.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "invoice_id": f"INV-{s.tag}-MALFORMED",
            "total": template.total + 10,
        }
    )
    unreadable = f"INV-{s.tag}-UNREADABLE"
    s.expected.dead_letter("invoice-poster", wrong.invoice_id, "InvalidEvent")
    s.expected.dead_letter("invoice-poster", unreadable, "UndecodableEvent")
    return [wrong, Outgoing(InvoiceIssued.TOPIC, unreadable.encode(), UNREADABLE)]


def tax_rates(settings: Settings) -> dict[str, Decimal]:
    """Billing's tax rate per legal entity, to predict what its invoices will total."""
    with db.connect(settings) as conn:
        rows = conn.execute("SELECT legal_entity, tax_rate FROM billing.legal_entities").fetchall()
    return {r[0]: r[1] for r in rows}


def predicted_invoices(
    o: OpportunityClosed, as_of: date, tax_rate: Decimal
) -> list[tuple[str, date, Decimal]]:
    """(invoice id, billing date, total) of the invoices billing will issue for the opportunity
    by `as_of`."""
    phases = [
        Phase(x.line_id, x.sku, x.description, x.quantity, x.unit_price, x.billing_period,
              x.start_date, phase_end(x.start_date, x.billing_period, x.term_months))
        for x in o.lines
    ]  # fmt: skip
    return [
        (
            billing_jobs.invoice_id(o.opportunity_id, d.billing_date),
            d.billing_date,
            d.subtotal + d.tax_total,
        )
        for d in due_invoices(enumerate(phases, 1), o.currency, tax_rate, as_of)
    ]


def next_invoice(o: OpportunityClosed, as_of: date, tax_rate: Decimal) -> tuple[str, date] | None:
    """The first invoice billing will issue for the opportunity after `as_of`, if any."""
    later = predicted_invoices(o, as_of + timedelta(days=400), tax_rate)
    return next(((i, d) for i, d, _ in later if d > as_of), None)

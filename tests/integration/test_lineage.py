"""Lineage on the real stack: a small order-to-cash flow through all four services and the
billing system's invoice run, traced by its invoice id and by its account id end to end; an
opportunity that waits in retry for its account says so; an invoice that became a dead letter
gives the letter's id, class and reason.

The deal's phases start in 2001, so the invoice run (which bills every subscription due by its
date) bills only this test's subscriptions, whatever else the test database holds."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from finsync.contract.events import (
    BillingPeriod,
    InvoiceIssued,
    InvoiceLine,
    OpportunityClosed,
    OpportunityLine,
    PaymentSettled,
)
from finsync.contract.topics import SERVICES
from finsync.ops import lineage
from finsync.reference.billing import jobs as billing_jobs
from finsync.runtime import clients, db
from finsync.runtime.serde import Serde
from finsync.scenario.opportunities import contract_value
from finsync.settings import Settings
from tests.support import ServiceProcess, crm_account, eventually, publish

pytestmark = pytest.mark.integration

START, AS_OF = date(2001, 2, 1), date(2001, 3, 15)  # billed: 1 Feb (both lines) and 1 Mar
# Retries every second at most, and never out of budget: the waiting opportunity must wait.
ENV = {"FINSYNC_RETRY_BASE_SECONDS": "0.5", "FINSYNC_RETRY_MAX_SECONDS": "1"}
D = Decimal


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    logs = tmp_path_factory.mktemp("lineage")
    running = [ServiceProcess(name, logs, ENV).start(wait=False) for name in SERVICES]
    try:
        for service in running:
            service.wait_log("started", 90)
        yield
    finally:
        for service in running:  # all asked at once: they stop side by side
            if service.proc is not None and service.proc.poll() is None:
                service.proc.send_signal(signal.SIGTERM)
        for service in running:
            service.stop()


def _trace(settings: Settings, business_id: str, **caps: Any) -> lineage.Lineage | None:
    with db.connect(settings) as conn:
        return lineage.trace(conn, business_id, **caps)


def _deal(opportunity_id: str, account_id: str) -> OpportunityClosed:
    lines = [
        OpportunityLine(line_id="1", sku="ONBOARDING", description="Onboarding", quantity=D(1),
                        unit_price=D("500.00"), billing_period=BillingPeriod.ONE_TIME,
                        start_date=START, term_months=1),
        OpportunityLine(line_id="2", sku="PLAT-SEAT", description="Platform seat", quantity=D(2),
                        unit_price=D("45.00"), billing_period=BillingPeriod.MONTHLY,
                        start_date=START, term_months=2),
    ]  # fmt: skip
    return OpportunityClosed(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), source="crm",
        correlation_id=f"o2c-{opportunity_id}", opportunity_id=opportunity_id,
        account_id=account_id, closed_at=datetime(2001, 1, 29, tzinfo=UTC), currency="EUR",
        legal_entity="ACME-DE", lines=lines, total_contract_value=contract_value(lines, "EUR"),
    )  # fmt: skip


def _unbalanced_invoice(invoice_id: str, account_id: str) -> InvoiceIssued:
    line = InvoiceLine(line_id="1", description="Seats", sku="PLAT-SEAT", amount=D("100.00"),
                       tax_amount=D("19.00"))  # fmt: skip
    return InvoiceIssued(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), source="billing",
        correlation_id=f"corr-{invoice_id}", invoice_id=invoice_id,
        invoice_number=f"ACME-DE-{invoice_id}", account_id=account_id, legal_entity="ACME-DE",
        currency="EUR", issued_on=START, due_on=START + timedelta(days=30), lines=[line],
        subtotal=D("100.00"), tax_total=D("19.00"), total=D("120.00"),
    )  # fmt: skip


def _payment(payment_id: str, account_id: str, invoice_id: str, amount: Decimal) -> PaymentSettled:
    return PaymentSettled(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), source="payments",
        correlation_id=f"corr-{payment_id}", payment_id=payment_id, account_id=account_id,
        invoice_id=invoice_id, amount=amount, fee_amount=D(0), currency="EUR",
        settled_at=datetime.now(UTC), method="WIRE", gateway_reference=f"GW-{payment_id}",
    )  # fmt: skip


def test_an_order_to_cash_flow_is_traced_end_to_end_with_its_retries_and_dead_letters(
    settings: Settings, serde: Serde, services: None
) -> None:
    tag = uuid.uuid4().hex[:10]
    account_id, opportunity_id = f"ACC-LIN-{tag}", f"OPP-LIN-{tag}"
    bad_invoice, payment_id = f"INV-LIN-BAD-{tag}", f"PAY-LIN-{tag}"

    # The deal arrives before its account: it waits in retry, and its lineage says so.
    deal = _deal(opportunity_id, account_id)
    publish(settings, serde, [deal])

    def waiting() -> lineage.Lineage | None:
        found = _trace(settings, opportunity_id)
        missing = found.root.missing if found else None
        return found if missing and missing.why == "retrying" else None

    early = eventually(waiting, 30, "the opportunity waiting in retry")
    assert (early.kind, [h.kind for h in early.hops]) == ("opportunity", ["opportunity"])
    assert early.root.missing is not None and early.root.waiting is not None
    assert early.root.missing.detail.startswith("waiting in retry at subscription-activator since")

    account = crm_account(account_id, 1, f"Lineage Probe {tag} GmbH")
    publish(settings, serde, [account, _unbalanced_invoice(bad_invoice, account_id)])
    eventually(
        lambda: (t := _trace(settings, opportunity_id)) and t.root.kind == "account",
        30,
        "the opportunity activated once its account synced",
    )

    issued = billing_jobs.run_invoices(settings, AS_OF).invoices
    first, second = (billing_jobs.invoice_id(opportunity_id, d) for d in (START, date(2001, 3, 1)))
    assert {first, second} <= {i.invoice_id for i in issued}
    [invoice] = [i for i in issued if i.invoice_id == first]
    traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    payment = _payment(payment_id, account_id, first, invoice.total)

    def posted() -> lineage.Lineage | None:
        found = _trace(settings, first)
        return found if found and found.hops[-1].kind == "posting" else None

    eventually(posted, 60, "the invoice posted")
    clients.send(
        clients.producer(settings, "test"),
        [serde.outgoing(payment, [("traceparent", traceparent.encode())])],
    )

    def paid() -> lineage.Lineage | None:
        found = _trace(settings, first)
        return found if found and found.find("payment", payment_id) else None

    chain = eventually(paid, 30, "the payment applied")
    assert [h.kind for h in chain.hops] == [
        "account", "opportunity", "subscription", "invoice", "posting", "payment",
    ]  # fmt: skip
    assert [h.parent for h in chain.hops] == [None, 0, 1, 2, 3, 4]
    acc, opp, sub, inv, posting, pay = chain.hops
    assert (acc.id, opp.id, inv.id, pay.id) == (account_id, opportunity_id, first, payment_id)
    assert chain.kind == "invoice" and not chain.capped
    assert [e.event_id for e in acc.events] == [str(account.event_id)]
    assert [e.event_id for e in opp.events] == [str(deal.event_id)]
    assert [e.event_id for e in inv.events] == [str(invoice.event_id)]
    assert [e.event_id for e in pay.events] == [str(payment.event_id)]
    # One trace from the deal's activation through billing to the posting; the payment's is
    # the one its gateway sent.
    assert sub.trace_id is not None and opp.trace_id == sub.trace_id == inv.trace_id
    assert pay.trace_id == traceparent.split("-")[1]
    assert posting.state.startswith("PAID") and [j.amount for j in posting.journals] == [
        invoice.total
    ]
    assert sum(x.debit for x in posting.journals[0].lines) == invoice.total
    assert (pay.amount, pay.currency) == (invoice.total, "EUR") and pay.journals
    assert all(h.missing is None for h in chain.hops)

    # By the account: everything under it, each invoice with its posting.
    tree = _trace(settings, account_id)
    assert tree is not None and tree.kind == "account" and tree.root.id == account_id
    assert {(h.kind, h.id) for h in tree.hops} >= {
        ("opportunity", opportunity_id), ("subscription", sub.id), ("invoice", first),
        ("invoice", second), ("payment", payment_id),
    }  # fmt: skip
    invoices = [h for h in tree.hops if h.kind == "invoice"]
    assert all([c.kind for c in tree.children(h)] == ["posting"] for h in invoices)
    narrow = _trace(settings, account_id, fan_out=1)
    assert narrow is not None and narrow.capped
    assert narrow.find("subscription", sub.id).more == 1

    # The invoice that broke the contract: known only by its dead letter, which says why.
    def dead() -> lineage.Lineage | None:
        found = _trace(settings, bad_invoice)
        missing = found.root.missing if found else None
        return found if missing and missing.why == "dead-letter" else None

    letter = eventually(dead, 30, "the dead letter in the index")
    assert (letter.kind, [h.kind for h in letter.hops]) == ("invoice", ["invoice"])
    missing = letter.root.missing
    assert missing is not None and missing.dead_letter is not None
    assert missing.dead_letter.error_class == "InvalidEvent"
    assert (
        "total 120.00 EUR is not subtotal 100.00 EUR + tax 19.00 EUR" in missing.dead_letter.reason
    )
    assert f"dead letter {missing.dead_letter.id} at invoice-poster" in missing.detail
    assert _trace(settings, f"NOTHING-{tag}") is None

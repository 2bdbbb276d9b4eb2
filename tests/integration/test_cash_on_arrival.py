"""Cash booked the day it arrives, on the real stack (payment-settler and invoice-poster as
processes, plain publishers): prepayments earmarked and applied when their invoice posts,
remittances over several invoices, payers outside the invoice's hierarchy held for review,
and unapplied cash auto-applied to a holder's open invoices, oldest due first."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from finsync.books import ledger, threeway
from finsync.contract.events import (
    Allocation,
    InvoiceIssued,
    InvoiceLine,
    PaymentApplied,
    PaymentSettled,
)
from finsync.runtime import db
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from tests.integration.port_support import ENTITY, a_synced_account, uid
from tests.support import FAST_RETRIES, ServiceProcess, TopicTail, eventually, publish

pytestmark = pytest.mark.integration

D = Decimal
TODAY = datetime.now(UTC).date()


def _run(name: str, tmp_path: Path, **env: str) -> Iterator[ServiceProcess]:
    service = ServiceProcess(name, tmp_path, {**FAST_RETRIES, **env}).start()
    yield service
    if service.proc and service.proc.poll() is None:
        assert service.stop() == 0


@pytest.fixture
def settler(tmp_path: Path) -> Iterator[ServiceProcess]:
    yield from _run("payment-settler", tmp_path)


@pytest.fixture
def poster(tmp_path: Path) -> Iterator[ServiceProcess]:
    yield from _run("invoice-poster", tmp_path)


def account(settings: Settings, parent: str | None = None) -> str:
    """A CRM account synced to its own ERP customer (account-sync is not under test)."""
    with db.connect(settings) as conn, conn.transaction():
        customer, _ = a_synced_account(conn, parent)
    return customer.account_id


def invoice(account_id: str, amount: str, due_in: int = 30, invoice_id: str = "") -> InvoiceIssued:
    invoice_id = invoice_id or uid("INV")
    line = InvoiceLine(
        line_id="1", description="Onboarding", sku="ONBOARDING", amount=D(amount), tax_amount=D(0)
    )
    return InvoiceIssued(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), source="billing",
        correlation_id=f"corr-{invoice_id}", invoice_id=invoice_id,
        invoice_number=f"{ENTITY}-{invoice_id}", account_id=account_id, legal_entity=ENTITY,
        currency="EUR", issued_on=TODAY, due_on=TODAY + timedelta(days=due_in), lines=[line],
        subtotal=D(amount), tax_total=D(0), total=D(amount),
    )  # fmt: skip


def payment(
    account_id: str,
    amount: str,
    invoice_id: str | None = None,
    method: str = "WIRE",
    fee: str = "0",
    allocations: list[tuple[str, str]] | None = None,
) -> PaymentSettled:
    payment_id = uid("PAY")
    return PaymentSettled(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), source="payments",
        correlation_id=f"corr-{payment_id}", payment_id=payment_id, account_id=account_id,
        invoice_id=invoice_id, amount=D(amount), fee_amount=D(fee), currency="EUR",
        settled_at=datetime.now(UTC), method=method, gateway_reference=uid("GW"),
        allocations=None if allocations is None
        else [Allocation(invoice_id=i, amount=D(a)) for i, a in allocations],
    )  # fmt: skip


def row(settings: Settings, sql: str, *params: object) -> tuple[object, ...] | None:
    with db.connect(settings) as conn:
        return conn.execute(sql, params).fetchone()


def rows(settings: Settings, sql: str, *params: object) -> list[tuple[object, ...]]:
    with db.connect(settings) as conn:
        return conn.execute(sql, params).fetchall()


def open_amount(settings: Settings, invoice_id: str) -> object:
    r = row(settings, "SELECT open_amount FROM erp.ar_open_items WHERE invoice_id = %s", invoice_id)
    return r[0] if r else None


def held(settings: Settings, payment_id: str) -> object:
    r = row(settings, "SELECT unapplied_open FROM erp.payments WHERE payment_id = %s", payment_id)
    return r[0] if r else None


def applications(settings: Settings, payment_id: str) -> set[tuple[object, ...]]:
    return set(
        rows(
            settings,
            "SELECT invoice_id, kind, applied_amount, written_off_amount "
            "FROM erp.payment_applications WHERE payment_id = %s",
            payment_id,
        )
    )


def no_breaks(settings: Settings, since: datetime, *ids: str) -> None:
    with db.connect(settings) as conn:
        found = ledger.gl_ar(conn, {"entity": None, "since": since})
        found += ledger.gl_unapplied(conn, {"entity": None, "since": since})
    mine = [f for f in found if any(i in f.scope or i in " ".join(f.documents) for i in ids)]
    assert mine == []


def applied_events(tail: TopicTail, serde: Serde, payment_id: str) -> list[PaymentApplied]:
    out = []
    for record in tail.poll(2.0):
        event = serde.decode(PaymentApplied.TOPIC, record.value)
        assert isinstance(event, PaymentApplied)
        if event.payment_id == payment_id:
            out.append(event)
    return out


def test_a_prepayment_is_booked_at_once_and_applied_when_its_invoice_posts(
    settings: Settings, serde: Serde, settler: ServiceProcess, poster: ServiceProcess
) -> None:
    since = datetime.now(UTC)
    payer = account(settings)
    inv = invoice(payer, "119.00")
    pay = payment(payer, "119.00", inv.invoice_id, method="CARD", fee="3.00")
    tail = TopicTail(settings, PaymentApplied.TOPIC)
    publish(settings, serde, [pay])
    eventually(lambda: held(settings, pay.payment_id) == D("119.00"), 30, "the deposit")
    assert row(
        settings,
        "SELECT cash_account, invoice_id, status FROM erp.payments WHERE payment_id = %s",
        pay.payment_id,
    ) == ("1010", None, "UNAPPLIED")
    assert rows(
        settings,
        "SELECT invoice_id, amount, applied FROM erp.payment_earmarks WHERE payment_id = %s",
        pay.payment_id,
    ) == [(inv.invoice_id, D("119.00"), False)]

    publish(settings, serde, [inv])
    eventually(lambda: open_amount(settings, inv.invoice_id) == D(0), 30, "the earmark applied")
    assert held(settings, pay.payment_id) == D(0)
    assert applications(settings, pay.payment_id) == {
        (inv.invoice_id, "EARMARKED", D("119.00"), D(0))
    }
    events: list[PaymentApplied] = []

    def both() -> bool:
        events.extend(applied_events(tail, serde, pay.payment_id))
        return len(events) >= 2

    eventually(both, 30, "both payment-applied events")
    tail.close()
    settled, earmarked = sorted(events, key=lambda e: e.source != "finsync.payment-settler")
    assert settled.earmarked and settled.earmarked[0].invoice_id == inv.invoice_id
    assert earmarked.source == "finsync.invoice-poster"
    assert earmarked.invoice_id == inv.invoice_id and earmarked.applied_amount == D("119.00")
    assert earmarked.applications and earmarked.applications[0].kind == "EARMARKED"
    assert earmarked.invoice_open_after == D(0) and earmarked.unapplied_amount == D(0)
    no_breaks(settings, since, inv.invoice_id, pay.payment_id)


def test_a_remittance_over_three_invoices_applies_earmarks_and_keeps_the_rest(
    settings: Settings, serde: Serde, settler: ServiceProcess, poster: ServiceProcess
) -> None:
    since = datetime.now(UTC)
    payer = account(settings)
    first, second, later = (invoice(payer, a) for a in ("100.00", "200.00", "50.00"))
    publish(settings, serde, [first, second])
    eventually(lambda: open_amount(settings, second.invoice_id) == D("200.00"), 30, "posted")
    pay = payment(payer, "400.00", allocations=[(first.invoice_id, "100.00"),
                  (second.invoice_id, "150.00"), (later.invoice_id, "50.00")])  # fmt: skip
    publish(settings, serde, [pay])
    eventually(lambda: held(settings, pay.payment_id) == D("150.00"), 30, "the payment")
    assert open_amount(settings, first.invoice_id) == D(0)
    assert open_amount(settings, second.invoice_id) == D("50.00")
    assert applications(settings, pay.payment_id) == {
        (first.invoice_id, "SETTLEMENT", D("100.00"), D(0)),
        (second.invoice_id, "SETTLEMENT", D("150.00"), D(0)),
    }
    publish(settings, serde, [later])
    eventually(lambda: held(settings, pay.payment_id) == D("100.00"), 30, "the earmark applied")
    assert open_amount(settings, later.invoice_id) == D(0)
    assert (later.invoice_id, "EARMARKED", D("50.00"), D(0)) in applications(
        settings, pay.payment_id
    )
    no_breaks(settings, since, pay.payment_id, first.invoice_id, later.invoice_id)


def test_a_strangers_invoice_is_not_paid_and_the_cash_waits_for_review(
    settings: Settings, serde: Serde, settler: ServiceProcess, poster: ServiceProcess
) -> None:
    owner, stranger = account(settings), account(settings)
    inv = invoice(owner, "80.00")
    publish(settings, serde, [inv])
    eventually(lambda: open_amount(settings, inv.invoice_id) == D("80.00"), 30, "posted")
    pay = payment(stranger, "80.00", inv.invoice_id)
    publish(settings, serde, [pay])
    eventually(lambda: held(settings, pay.payment_id) == D("80.00"), 30, "the payment")
    [(reason,)] = rows(
        settings, "SELECT review_reason FROM erp.payments WHERE payment_id = %s", pay.payment_id
    )
    assert inv.invoice_id in str(reason) and owner in str(reason)
    assert open_amount(settings, inv.invoice_id) == D("80.00")
    with db.connect(settings) as conn:  # reconcile lists it as held, not as a break
        [review] = [f for f in threeway.under_review(conn, None) if pay.payment_id in f.scope]
    assert not review.is_break and inv.invoice_id in review.held
    # Never auto-applied later either: the stranger's next invoice leaves it alone.
    own = invoice(stranger, "30.00")
    publish(settings, serde, [own])
    eventually(lambda: open_amount(settings, own.invoice_id) == D("30.00"), 30, "posted")
    assert held(settings, pay.payment_id) == D("80.00")


def test_a_payer_in_the_invoices_hierarchy_pays_it(
    settings: Settings, serde: Serde, settler: ServiceProcess, poster: ServiceProcess
) -> None:
    parent = account(settings)
    child, sibling = account(settings, parent=parent), account(settings, parent=parent)
    inv = invoice(sibling, "60.00")
    publish(settings, serde, [inv])
    eventually(lambda: open_amount(settings, inv.invoice_id) == D("60.00"), 30, "posted")
    pay = payment(child, "60.00", inv.invoice_id)
    publish(settings, serde, [pay])
    eventually(lambda: open_amount(settings, inv.invoice_id) == D(0), 30, "applied")
    assert held(settings, pay.payment_id) == D(0)


def test_unapplied_cash_goes_to_the_oldest_due_invoice_first(
    settings: Settings, serde: Serde, settler: ServiceProcess, poster: ServiceProcess
) -> None:
    since = datetime.now(UTC)
    payer = account(settings)
    old = invoice(payer, "100.00", due_in=10)
    publish(settings, serde, [old])
    eventually(lambda: open_amount(settings, old.invoice_id) == D("100.00"), 30, "posted")
    on_account = payment(payer, "150.00")
    publish(settings, serde, [on_account])
    eventually(lambda: held(settings, on_account.payment_id) == D("150.00"), 30, "the payment")
    new = invoice(payer, "80.00", due_in=40)
    publish(settings, serde, [new])
    eventually(lambda: held(settings, on_account.payment_id) == D(0), 30, "auto-applied")
    assert open_amount(settings, old.invoice_id) == D(0)
    assert open_amount(settings, new.invoice_id) == D("30.00")
    assert applications(settings, on_account.payment_id) == {
        (old.invoice_id, "AUTO", D("100.00"), D(0)),
        (new.invoice_id, "AUTO", D("50.00"), D(0)),
    }
    no_breaks(settings, since, on_account.payment_id, old.invoice_id, new.invoice_id)


def test_with_auto_apply_off_unapplied_cash_waits_but_earmarks_apply(
    settings: Settings, serde: Serde, settler: ServiceProcess, tmp_path: Path
) -> None:
    off = ServiceProcess("invoice-poster", tmp_path, {**FAST_RETRIES, "FINSYNC_AUTO_APPLY": "off"})
    off.start()
    try:
        payer = account(settings)
        on_account = payment(payer, "40.00")
        prepaid = invoice(payer, "25.00")
        prepayment = payment(payer, "25.00", prepaid.invoice_id)
        publish(settings, serde, [on_account, prepayment])
        eventually(lambda: held(settings, prepayment.payment_id) == D("25.00"), 30, "payments")
        eventually(lambda: held(settings, on_account.payment_id) == D("40.00"), 30, "payments")
        other = invoice(payer, "30.00")
        publish(settings, serde, [prepaid, other])
        eventually(lambda: open_amount(settings, other.invoice_id) == D("30.00"), 30, "posted")
        eventually(lambda: open_amount(settings, prepaid.invoice_id) == D(0), 30, "earmark")
        assert held(settings, on_account.payment_id) == D("40.00")
    finally:
        assert off.stop() == 0

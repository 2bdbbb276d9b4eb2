"""Payouts on the real stack: card payments (and refunds, disputes) reach gateway clearing
(1010) through payment-settler, and a payout matched against them moves them to the bank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from finsync.books import clearing
from finsync.books.findings import Finding
from finsync.contract.events import (
    DisputeStatus,
    DisputeUpdated,
    PaymentSettled,
    PayoutItem,
    PayoutItemType,
    PayoutPaid,
    PayoutReconciled,
    PayoutStatus,
    RefundSettled,
)
from finsync.domain.accounting import (
    CASH,
    GATEWAY_CLEARING,
    PAYOUT_DIFFERENCES,
    Journal,
    credit,
    debit,
)
from finsync.reference.erp.adapter import ReferenceErp
from finsync.runtime import db
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from tests.integration.port_support import ENTITY, a_synced_account, uid
from tests.support import FAST_RETRIES, ServiceProcess, TopicTail, eventually, publish, scalar

pytestmark = pytest.mark.integration

D = Decimal
T = PayoutItemType
NOW = datetime.now(UTC)
ENVELOPE = dict(occurred_at=NOW, source="gateway")


@pytest.fixture
def settler(tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess("payment-settler", tmp_path, FAST_RETRIES).start()
    yield service
    if service.proc and service.proc.poll() is None:
        assert service.stop() == 0


@pytest.fixture
def payer(settings: Settings) -> str:
    """A CRM account synced to the ERP, billed in EUR by ACME-DE."""
    with db.connect(settings) as conn, conn.transaction():
        customer, _ = a_synced_account(conn)
    account: str = customer.account_id
    return account


def card_payment(account: str, amount: str, fee: str) -> PaymentSettled:
    """A card payment with no invoice: unapplied cash on the payer, its net in clearing."""
    payment_id = uid("PAY")
    return PaymentSettled(
        event_id=uuid.uuid4(),
        correlation_id=f"corr-{payment_id}",
        payment_id=payment_id,
        account_id=account,
        amount=D(amount),
        fee_amount=D(fee),
        currency="EUR",
        settled_at=NOW,
        method="CARD",
        gateway_reference=f"GW-{payment_id}",
        **ENVELOPE,
    )


def item(type_: PayoutItemType, ref: str | None, net: str, fee: str = "0.00") -> PayoutItem:
    return PayoutItem(type=type_, reference_id=ref, gross=D(net) + D(fee), fee=D(fee), net=D(net))


def payout(amount: str, *items: PayoutItem) -> PayoutPaid:
    payout_id = uid("PO")
    return PayoutPaid(
        event_id=uuid.uuid4(),
        correlation_id=f"corr-{payout_id}",
        payout_id=payout_id,
        legal_entity=ENTITY,
        currency="EUR",
        amount=D(amount),
        arrival_date=NOW.date(),
        items=list(items),
        **ENVELOPE,
    )


def booked(settings: Settings, table: str, column: str, *ids: str) -> None:
    eventually(
        lambda: (
            scalar(
                settings, f"SELECT count(*) FROM erp.{table} WHERE {column} = ANY(%s)", list(ids)
            )
            == len(ids)
        ),
        60,
        f"{table} {', '.join(ids)}",
    )


def reconciled(
    settings: Settings, serde: Serde, tail: TopicTail, p: PayoutPaid
) -> PayoutReconciled:
    [event] = eventually(
        lambda: [
            serde.decode(PayoutReconciled.TOPIC, r.value)
            for r in tail.poll(0.5)
            if r.key_text == p.payout_id
        ],
        60,
        f"erp.payout-reconciled of {p.payout_id}",
    )
    assert isinstance(event, PayoutReconciled)
    return event


def net_on(settings: Settings, account: str, *keys: str) -> Decimal:
    """Net debit on the account by the journals with these idempotency keys."""
    value = scalar(
        settings,
        "SELECT COALESCE(sum(l.debit - l.credit), 0) FROM erp.journal_lines l "
        "JOIN erp.journal_entries e USING (entry_id) "
        "WHERE l.account_code = %s AND e.idempotency_key = ANY(%s)",
        account,
        list(keys),
    )
    assert isinstance(value, Decimal)
    return value


def journal_of(settings: Settings, table: str, column: str, document: str) -> str:
    key = scalar(
        settings,
        f"SELECT e.idempotency_key FROM erp.{table} d JOIN erp.journal_entries e "
        f"ON e.entry_id = d.journal_entry_id WHERE d.{column} = %s",
        document,
    )
    assert isinstance(key, str)
    return key


def findings(settings: Settings, since: datetime, *names: str) -> list[Finding]:
    with db.connect(settings) as conn:
        found = clearing.run(conn, None, since)
    return [f for f in found if any(n in f.scope or n in f.detail for n in names)]


def test_card_payments_then_a_payout_that_matches_them_move_clearing_to_the_bank(
    settings: Settings, serde: Serde, settler: ServiceProcess, payer: str
) -> None:
    started = datetime.now(UTC)
    first, second = card_payment(payer, "100.00", "3.20"), card_payment(payer, "50.00", "1.75")
    tail = TopicTail(settings, PayoutReconciled.TOPIC)
    publish(settings, serde, [first, second])
    booked(settings, "payments", "payment_id", first.payment_id, second.payment_id)
    keys = [journal_of(settings, "payments", "payment_id", p.payment_id) for p in (first, second)]
    assert net_on(settings, GATEWAY_CLEARING, *keys) == D("145.05")  # 96.80 + 48.25

    p = payout(
        "140.05",
        item(T.PAYMENT, first.payment_id, "96.80", "3.20"),
        item(T.PAYMENT, second.payment_id, "48.25", "1.75"),
        item(T.FEE, None, "-5.00", "5.00"),  # the gateway's monthly fee, withheld
    )
    publish(settings, serde, [p])
    event = reconciled(settings, serde, tail, p)
    assert (event.status, event.amount, event.matched_amount, event.differences) == (
        PayoutStatus.MATCHED,
        D("140.05"),
        D("145.05"),
        [],
    )
    assert event.accounting_date == p.arrival_date
    assert [(x.account_code, x.debit, x.credit) for x in event.journal_lines] == [
        (CASH, D("140.05"), 0),
        (GATEWAY_CLEARING, 0, D("145.05")),
        ("6100", D("5.00"), 0),
    ]
    payout_key = f"payout:{p.payout_id}"
    assert net_on(settings, GATEWAY_CLEARING, *keys, payout_key) == 0  # clearing back to zero
    assert net_on(settings, CASH, payout_key) == D("140.05")
    assert (
        scalar(
            settings,
            "SELECT count(*) FROM erp.payout_items WHERE payout_id = %s "
            "AND matched_kind = 'PAYMENT'",
            p.payout_id,
        )
        == 2
    )
    assert findings(settings, started, first.payment_id, second.payment_id, p.payout_id) == []

    # The same payment in a second payout: the bank is right, clearing does not move twice.
    again = payout("96.80", item(T.PAYMENT, first.payment_id, "96.80", "3.20"))
    publish(settings, serde, [again])
    repeat = reconciled(settings, serde, tail, again)
    assert repeat.status is PayoutStatus.MISMATCH
    [d] = repeat.differences
    assert d.reason == f"paid out already by payout {p.payout_id}"
    assert net_on(settings, GATEWAY_CLEARING, *keys, payout_key, f"payout:{again.payout_id}") == 0
    tail.close()


def test_a_mismatched_payout_holds_its_differences_in_1090_and_reconcile_names_it(
    settings: Settings, serde: Serde, settler: ServiceProcess, payer: str
) -> None:
    started = datetime.now(UTC)
    paid = card_payment(payer, "100.00", "3.20")
    tail = TopicTail(settings, PayoutReconciled.TOPIC)
    publish(settings, serde, [paid])
    booked(settings, "payments", "payment_id", paid.payment_id)
    p = payout(
        "101.79",
        item(T.PAYMENT, paid.payment_id, "96.79", "3.21"),  # the gateway says 96.79, we 96.80
        item(T.ADJUSTMENT, None, "5.00"),
    )
    publish(settings, serde, [p])
    event = reconciled(settings, serde, tail, p)
    tail.close()
    assert (event.status, event.matched_amount) == (PayoutStatus.MISMATCH, 0)
    assert [
        (d.type, d.reference_id, d.expected_net, d.reported_net, d.reason)
        for d in event.differences
    ] == [
        (
            "PAYMENT",
            paid.payment_id,
            D("96.80"),
            D("96.79"),
            "clearing holds 96.80 EUR for it, the payout 96.79 EUR",
        ),
        ("ADJUSTMENT", None, None, D("5.00"), "an adjustment: no document to match"),
    ]
    payout_key = f"payout:{p.payout_id}"
    assert net_on(settings, PAYOUT_DIFFERENCES, payout_key) == D("-101.79")
    assert net_on(settings, CASH, payout_key) == D("101.79")
    assert net_on(settings, GATEWAY_CLEARING, payout_key) == 0  # the payment is still in transit

    [found] = findings(settings, started, paid.payment_id, p.payout_id)
    assert (found.check, found.scope) == ("payouts", f"payout {p.payout_id}")
    assert found.detail == (
        f"101.79 EUR on 1090 unresolved: PAYMENT {paid.payment_id} 96.79 EUR: clearing holds "
        "96.80 EUR for it, the payout 96.79 EUR; ADJUSTMENT 5.00 EUR: an adjustment: no "
        "document to match"
    )
    env = {**os.environ, "FINSYNC_DATABASE_URL": settings.database_url}
    done = subprocess.run(
        [sys.executable, "-m", "finsync.cli.main", "reconcile", "--json",
         "--since", started.isoformat()],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    report = json.loads(done.stdout)
    assert done.returncode == 1
    names = [c["name"] for c in report["checks"]]
    assert "gl-clearing" in names and "payouts" in names
    assert [b["scope"] for b in report["breaks"] if b["check"] == "payouts"].count(
        f"payout {p.payout_id}"
    ) == 1


def test_a_payout_before_its_payment_waits_for_it(
    settings: Settings, serde: Serde, tmp_path: Path, payer: str
) -> None:
    patient = {**FAST_RETRIES, "FINSYNC_RETRY_BUDGET_SECONDS": "120"}
    settler = ServiceProcess("payment-settler", tmp_path, patient).start()
    try:
        late = card_payment(payer, "80.00", "2.00")
        tail = TopicTail(settings, PayoutReconciled.TOPIC)
        p = payout("78.00", item(T.PAYMENT, late.payment_id, "78.00", "2.00"))
        publish(settings, serde, [p])
        with pytest.raises(AssertionError):  # nothing booked while the payment is unknown
            eventually(lambda: scalar(settings, "SELECT 1 FROM erp.payouts WHERE payout_id = %s",
                                      p.payout_id), 3, "no payout")  # fmt: skip
        publish(settings, serde, [late])
        event = reconciled(settings, serde, tail, p)
        tail.close()
    finally:
        assert settler.stop() == 0
    assert (event.status, event.matched_amount) == (PayoutStatus.MATCHED, D("78.00"))


def test_a_payout_with_a_refund_and_a_dispute_opened_then_won(
    settings: Settings, serde: Serde, settler: ServiceProcess, payer: str
) -> None:
    started = datetime.now(UTC)
    refunded, disputed = card_payment(payer, "100.00", "3.20"), card_payment(payer, "60.00", "2.00")
    tail = TopicTail(settings, PayoutReconciled.TOPIC)
    publish(settings, serde, [refunded, disputed])
    booked(settings, "payments", "payment_id", refunded.payment_id, disputed.payment_id)
    refund = RefundSettled(
        event_id=uuid.uuid4(),
        correlation_id=refunded.correlation_id,
        refund_id=uid("RF"),
        account_id=payer,
        payment_id=refunded.payment_id,
        legal_entity=ENTITY,
        currency="EUR",
        amount=D("20.00"),
        fee_amount=D("0.50"),
        refunded_at=NOW,
        gateway_reference="GW-RF",
        **ENVELOPE,
    )
    dispute_id = uid("DP")

    def dispute(status: DisputeStatus) -> DisputeUpdated:
        return DisputeUpdated(
            event_id=uuid.uuid4(),
            correlation_id=disputed.correlation_id,
            dispute_id=dispute_id,
            payment_id=disputed.payment_id,
            account_id=payer,
            legal_entity=ENTITY,
            currency="EUR",
            status=status,
            amount=D("30.00"),
            fee_amount=D("15.00"),
            updated_at=NOW,
            **ENVELOPE,
        )

    publish(settings, serde, [refund, dispute(DisputeStatus.OPENED)])
    booked(settings, "refunds", "refund_id", refund.refund_id)
    booked(settings, "disputes", "dispute_id", dispute_id)
    publish(settings, serde, [dispute(DisputeStatus.WON)])
    eventually(
        lambda: (
            scalar(settings, "SELECT status FROM erp.disputes WHERE dispute_id = %s", dispute_id)
            == "WON"
        ),
        60,
        "the dispute won",
    )
    p = payout(
        "89.30",  # 96.80 + 58.00 - 20.50 - 45.00 + 30.00, less a fee of 30.00 withheld
        item(T.PAYMENT, refunded.payment_id, "96.80", "3.20"),
        item(T.PAYMENT, disputed.payment_id, "58.00", "2.00"),
        item(T.REFUND, refund.refund_id, "-20.50", "0.50"),
        item(T.DISPUTE, dispute_id, "-45.00", "15.00"),
        item(T.DISPUTE, dispute_id, "30.00"),
        item(T.FEE, None, "-30.00", "30.00"),
    )
    publish(settings, serde, [p])
    event = reconciled(settings, serde, tail, p)
    tail.close()
    assert (event.status, event.matched_amount) == (PayoutStatus.MATCHED, D("119.30"))
    kinds = scalar(
        settings,
        "SELECT array_agg(matched_kind ORDER BY line_no) FROM erp.payout_items "
        "WHERE payout_id = %s",
        p.payout_id,
    )
    assert kinds == ["PAYMENT", "PAYMENT", "REFUND", "DISPUTE_OPENED", "DISPUTE_WON", None]
    with db.connect(settings) as conn:
        entries = [
            r[0]
            for r in conn.execute(
                "SELECT journal_entry_id FROM erp.payments WHERE payment_id = ANY(%s) "
                "UNION ALL SELECT journal_entry_id FROM erp.refunds WHERE refund_id = %s "
                "UNION ALL SELECT opened_entry_id FROM erp.disputes WHERE dispute_id = %s "
                "UNION ALL SELECT closed_entry_id FROM erp.disputes WHERE dispute_id = %s "
                "UNION ALL SELECT journal_entry_id FROM erp.payouts WHERE payout_id = %s",
                ([refunded.payment_id, disputed.payment_id], refund.refund_id, dispute_id,
                 dispute_id, p.payout_id),
            )
        ]  # fmt: skip
        [[left]] = conn.execute(
            "SELECT COALESCE(sum(debit - credit), 0) FROM erp.journal_lines "
            "WHERE account_code = %s AND entry_id = ANY(%s)",
            (GATEWAY_CLEARING, entries),
        ).fetchall()
    assert left == 0  # everything that went through clearing came out in the payout
    ids = (refunded.payment_id, disputed.payment_id, refund.refund_id, dispute_id, p.payout_id)
    assert findings(settings, started, *ids) == []


def test_reconcile_catches_clearing_and_payout_differences_moved_by_no_document(
    conn: psycopg.Connection,
) -> None:
    key = f"manual:{uid('J')}"
    erp = ReferenceErp(conn)
    moved = (debit(GATEWAY_CLEARING, D("12.34")), credit(PAYOUT_DIFFERENCES, D("12.34")))
    erp.post_journal(Journal(key, ENTITY, "EUR", "moved by hand", moved, NOW.date()))
    erp.flush()
    found = clearing.run(conn, ENTITY, None)
    assert [(f.check, f.detail) for f in found if key in f.documents] == [
        ("gl-clearing", f"journal {key} debits 1010 with 12.34 EUR, and no document explains it"),
        ("payouts", f"journal {key} credits 1090 with 12.34 EUR, and no document explains it"),
    ]
    # And the balances no longer equal what the documents hold.
    assert {f.check for f in found if f.scope == f"{ENTITY} EUR"} == {"gl-clearing", "payouts"}

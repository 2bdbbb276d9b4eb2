"""Refunds and disputes on the real stack: payment-settler books them from plain Kafka records,
and the books (AR, 2100, 2400, 1260) tie to them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from finsync.books import customer_credit, ledger, refunds_disputes
from finsync.books.findings import Finding
from finsync.contract.events import DisputeStatus, DisputeUpdated, PaymentSettled, RefundSettled
from finsync.contract.topics import dlq_topic
from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    CASH,
    CUSTOMER_CREDIT,
    DISPUTED_RECEIVABLES,
    GATEWAY_CLEARING,
    PAYMENT_FEES,
    REVENUE,
    UNAPPLIED_CASH,
    WRITE_OFF,
    Journal,
    credit,
    debit,
)
from finsync.reference.erp.adapter import ReferenceErp
from finsync.runtime import db, dlq
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from tests.integration.port_support import (
    ENTITY,
    a_synced_account,
    an_invoice,
    invoice_journal,
    uid,
)
from tests.support import (
    FAST_RETRIES,
    ServiceProcess,
    TopicTail,
    eventually,
    journals,
    lines_of,
    publish,
    scalar,
)

pytestmark = pytest.mark.integration

D = Decimal
# Retried long enough for a status that arrives before its opening to wait for it.
PATIENT = {"FINSYNC_RETRY_BASE_SECONDS": "0.3", "FINSYNC_RETRY_BUDGET_SECONDS": "60"}


def settler_process(tmp_path: Path, env: dict[str, str]) -> Iterator[ServiceProcess]:
    service = ServiceProcess("payment-settler", tmp_path, env).start()
    yield service
    if service.proc and service.proc.poll() is None:
        assert service.stop() == 0


@pytest.fixture
def settler(tmp_path: Path) -> Iterator[ServiceProcess]:
    yield from settler_process(tmp_path, FAST_RETRIES)


@pytest.fixture
def patient_settler(tmp_path: Path) -> Iterator[ServiceProcess]:
    yield from settler_process(tmp_path, PATIENT)


@pytest.fixture
def writing_off_settler(tmp_path: Path) -> Iterator[ServiceProcess]:
    yield from settler_process(tmp_path, {**FAST_RETRIES, "FINSYNC_LOST_DISPUTES": "write-off"})


def envelope() -> dict[str, object]:
    return dict(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        source="gateway",
        correlation_id=uid("corr"),
    )


def customer(settings: Settings, *invoices: str) -> tuple[str, list[str]]:
    """A synced customer and its posted invoices, committed."""
    with db.connect(settings) as conn, conn.transaction():
        erp = ReferenceErp(conn)
        c, _ = a_synced_account(conn)
        ids = []
        for amount in invoices:
            item = an_invoice(c.account_id, amount)
            erp.post_invoice(item, invoice_journal(item))
            ids.append(item.invoice_id)
        erp.flush()
    return c.account_id, ids


def pay(
    settings: Settings, serde: Serde, account: str, amount: str, invoice_id: str | None = None
) -> str:
    payment = PaymentSettled(
        **envelope(),
        payment_id=uid("PAY"),
        account_id=account,
        invoice_id=invoice_id,
        amount=D(amount),
        fee_amount=D(0),
        currency="EUR",
        settled_at=datetime.now(UTC),
        method="CARD",
        gateway_reference=uid("GW"),
    )
    publish(settings, serde, [payment])
    booked(settings, f"payment:{payment.payment_id}")
    return payment.payment_id


def refund(account: str, amount: str, payment_id: str | None, fee: str = "0") -> RefundSettled:
    return RefundSettled(
        **envelope(),
        refund_id=uid("RF"),
        account_id=account,
        payment_id=payment_id,
        legal_entity=ENTITY,
        currency="EUR",
        amount=D(amount),
        fee_amount=D(fee),
        refunded_at=datetime.now(UTC),
        gateway_reference=uid("GW"),
    )


def dispute(
    account: str, payment_id: str, status: str, amount: str, dispute_id: str = ""
) -> DisputeUpdated:
    return DisputeUpdated(
        **envelope(),
        dispute_id=dispute_id or uid("DP"),
        payment_id=payment_id,
        account_id=account,
        legal_entity=ENTITY,
        currency="EUR",
        status=DisputeStatus(status),
        amount=D(amount),
        fee_amount=D("15.00"),
        updated_at=datetime.now(UTC),
        reason="product_not_received",
    )


def booked(settings: Settings, key: str) -> None:
    eventually(lambda: journals(settings, key) == 1, 30, key)


def invoice_state(settings: Settings, invoice_id: str) -> tuple[Decimal, Decimal]:
    with db.connect(settings) as conn:
        row = conn.execute(
            "SELECT open_amount, paid_amount FROM erp.ar_open_items WHERE invoice_id = %s",
            (invoice_id,),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def unapplied_open(settings: Settings, payment_id: str) -> object:
    return scalar(
        settings, "SELECT unapplied_open FROM erp.payments WHERE payment_id = %s", payment_id
    )


def findings_about(settings: Settings, since: datetime, *names: str) -> list[Finding]:
    """What the AR, 2100, 2400 and 1260 checks find about these documents."""
    with db.connect(settings) as conn:
        p: dict[str, object] = {"entity": None, "since": since}
        found = ledger.gl_ar(conn, p) + ledger.gl_unapplied(conn, p)
        found += customer_credit.run(conn, None, since)
        found += refunds_disputes.run(conn, None, since)
    return [f for f in found if any(n in f.scope or n in " ".join(f.documents) for n in names)]


def test_a_refund_from_the_customer_credit_balance(
    settings: Settings, serde: Serde, settler: ServiceProcess
) -> None:
    started = datetime.now(UTC)
    account, [invoice_id] = customer(settings, "100.00")
    payment_id = pay(settings, serde, account, "100.00", invoice_id)
    memo_id = uid("CM")
    with db.connect(settings) as conn, conn.transaction():  # a memo on the paid invoice
        erp = ReferenceErp(conn)
        memo = Journal(
            key=f"credit-memo:{memo_id}",
            legal_entity=ENTITY,
            currency="EUR",
            description="memo",
            lines=(debit(REVENUE, D(60)), credit(CUSTOMER_CREDIT, D(60))),
        )
        erp.post_credit_memo(memo_id, invoice_id, D(60), memo, to_credit=D(60))
        erp.flush()
    r = refund(account, "45.00", None, fee="0.50")
    publish(settings, serde, [r])
    booked(settings, f"refund:{r.refund_id}")
    assert lines_of(settings, f"refund:{r.refund_id}") == {
        CUSTOMER_CREDIT: D("45.00"),
        PAYMENT_FEES: D("0.50"),
        GATEWAY_CLEARING: D("-45.50"),
    }
    held = scalar(
        settings,
        "SELECT held FROM erp.customer_credit_balances WHERE account_id = %s",
        account,
    )
    assert held == D("15.00")
    assert invoice_state(settings, invoice_id) == (D(0), D("100.00"))  # not reopened
    names = (account, invoice_id, payment_id, r.refund_id)
    assert findings_about(settings, started, *names) == []


def test_a_refund_from_unapplied_cash_then_a_paid_invoice_which_reopens(
    settings: Settings, serde: Serde, settler: ServiceProcess
) -> None:
    started = datetime.now(UTC)
    account, [invoice_id] = customer(settings, "100.00")
    payment_id = pay(settings, serde, account, "130.00", invoice_id)  # 30.00 unapplied
    assert unapplied_open(settings, payment_id) == D("30.00")
    first = refund(account, "20.00", payment_id)
    publish(settings, serde, [first])
    booked(settings, f"refund:{first.refund_id}")
    assert lines_of(settings, f"refund:{first.refund_id}") == {
        UNAPPLIED_CASH: D("20.00"),
        GATEWAY_CLEARING: D("-20.00"),
    }
    assert unapplied_open(settings, payment_id) == D("10.00")
    assert invoice_state(settings, invoice_id) == (D(0), D("100.00"))

    second = refund(account, "50.00", payment_id, fee="1.00")  # 10.00 unapplied, 40.00 reopens
    publish(settings, serde, [second])
    booked(settings, f"refund:{second.refund_id}")
    assert lines_of(settings, f"refund:{second.refund_id}") == {
        UNAPPLIED_CASH: D("10.00"),
        ACCOUNTS_RECEIVABLE: D("40.00"),
        PAYMENT_FEES: D("1.00"),
        GATEWAY_CLEARING: D("-51.00"),
    }
    assert unapplied_open(settings, payment_id) == D(0)
    assert invoice_state(settings, invoice_id) == (D("40.00"), D("60.00"))
    with db.connect(settings) as conn:
        row = conn.execute(
            "SELECT from_credit, from_unapplied, from_invoices FROM erp.refunds "
            "WHERE refund_id = %s",
            (second.refund_id,),
        ).fetchone()
    assert row == (D(0), D("10.00"), D("40.00"))
    names = (invoice_id, payment_id, first.refund_id, second.refund_id)
    assert findings_about(settings, started, *names) == []
    with db.connect(settings) as conn, conn.transaction():  # a reopening without its journal
        conn.execute(
            "UPDATE erp.payment_reversals SET amount = amount - 1 "
            "WHERE document_id = %s AND invoice_id IS NOT NULL",
            (second.refund_id,),
        )
        p: dict[str, object] = {"entity": None, "since": started}
        found = ledger.gl_ar(conn, p) + refunds_disputes.taken_back(conn, p)
        raise psycopg.Rollback
    assert sorted(
        (f.check, f.scope)
        for f in found
        if set(f.documents) & {f"invoice {invoice_id}", f"refund {second.refund_id}"}
    ) == [("gl-ar", f"invoice {invoice_id}"), ("gl-ar", f"refund {second.refund_id}")]


def test_an_over_refund_is_dead_lettered_with_its_figures(
    settings: Settings, serde: Serde, settler: ServiceProcess
) -> None:
    account, [invoice_id] = customer(settings, "100.00")
    payment_id = pay(settings, serde, account, "100.00", invoice_id)
    r = refund(account, "120.00", payment_id)
    tail = TopicTail(settings, dlq_topic("payment-settler"))
    try:
        publish(settings, serde, [r])
        [letter] = eventually(
            lambda: [x for x in tail.poll(0.5) if x.key_text == r.refund_id], 60, "dead letter"
        )
    finally:
        tail.close()
    why = dlq.DeadLetter("payment-settler", letter)
    assert why.error_class == "InvalidEvent"
    assert "120.00 EUR is more than account" in why.reason
    assert "100.00 EUR paid on invoices" in why.reason and "20.00 EUR short" in why.reason
    assert journals(settings, f"refund:{r.refund_id}") == 0
    assert invoice_state(settings, invoice_id) == (D(0), D("100.00"))
    with db.connect(settings) as conn:  # reconcile shows it, with the dead letter's reason
        [finding] = refunds_disputes.booked(conn, [r], [], lambda *_: why.reason)
    assert finding.scope == f"refund {r.refund_id}" and finding.held == why.reason
    assert "refunded 120.00 EUR, not booked in the ERP" in finding.detail


def test_a_dispute_opened_then_won(
    settings: Settings, serde: Serde, settler: ServiceProcess
) -> None:
    started = datetime.now(UTC)
    account, [invoice_id] = customer(settings, "100.00")
    payment_id = pay(settings, serde, account, "100.00", invoice_id)
    opened = dispute(account, payment_id, "OPENED", "100.00")
    publish(settings, serde, [opened])
    booked(settings, f"dispute:{opened.dispute_id}:OPENED")
    assert lines_of(settings, f"dispute:{opened.dispute_id}:OPENED") == {
        DISPUTED_RECEIVABLES: D("100.00"),
        PAYMENT_FEES: D("15.00"),
        GATEWAY_CLEARING: D("-115.00"),
    }
    assert findings_about(settings, started, opened.dispute_id) == []
    won = dispute(account, payment_id, "WON", "100.00", opened.dispute_id)
    publish(settings, serde, [won])
    booked(settings, f"dispute:{opened.dispute_id}:closed")
    assert lines_of(settings, f"dispute:{opened.dispute_id}:closed") == {
        GATEWAY_CLEARING: D("100.00"),
        DISPUTED_RECEIVABLES: D("-100.00"),
    }
    status = scalar(
        settings, "SELECT status FROM erp.disputes WHERE dispute_id = %s", opened.dispute_id
    )
    assert status == "WON"
    assert invoice_state(settings, invoice_id) == (D(0), D("100.00"))
    with db.connect(settings) as conn:
        assert refunds_disputes.booked(conn, [], [won], lambda *_: "") == []
        [late] = refunds_disputes.booked(
            conn, [], [won.model_copy(update={"status": "LOST"})], lambda *_: ""
        )
    assert late.detail == "LOST at the gateway, WON in the ERP"
    assert findings_about(settings, started, opened.dispute_id, invoice_id, payment_id) == []


def test_a_lost_dispute_reopens_what_its_payment_settled(
    settings: Settings, serde: Serde, settler: ServiceProcess
) -> None:
    started = datetime.now(UTC)
    account, [invoice_id] = customer(settings, "80.00")
    payment_id = pay(settings, serde, account, "100.00", invoice_id)  # 20.00 unapplied
    opened = dispute(account, payment_id, "OPENED", "100.00")
    lost = dispute(account, payment_id, "LOST", "100.00", opened.dispute_id)
    publish(settings, serde, [opened, lost])
    booked(settings, f"dispute:{opened.dispute_id}:closed")
    assert lines_of(settings, f"dispute:{opened.dispute_id}:closed") == {
        UNAPPLIED_CASH: D("20.00"),
        ACCOUNTS_RECEIVABLE: D("80.00"),
        DISPUTED_RECEIVABLES: D("-100.00"),
    }
    assert invoice_state(settings, invoice_id) == (D("80.00"), D(0))
    assert unapplied_open(settings, payment_id) == D(0)
    with db.connect(settings) as conn:
        row = conn.execute(
            "SELECT status, outcome_policy, lost_to_unapplied, lost_to_invoices, "
            "lost_written_off FROM erp.disputes WHERE dispute_id = %s",
            (opened.dispute_id,),
        ).fetchone()
    assert row == ("LOST", "reopen", D("20.00"), D("80.00"), D(0))
    assert findings_about(settings, started, opened.dispute_id, invoice_id, payment_id) == []


def test_a_lost_dispute_is_written_off_when_the_setting_says_so(
    settings: Settings, serde: Serde, writing_off_settler: ServiceProcess
) -> None:
    started = datetime.now(UTC)
    account, [invoice_id] = customer(settings, "100.00")
    payment_id = pay(settings, serde, account, "100.00", invoice_id)
    opened = dispute(account, payment_id, "OPENED", "60.00")
    lost = dispute(account, payment_id, "LOST", "60.00", opened.dispute_id)
    publish(settings, serde, [opened, lost])
    booked(settings, f"dispute:{opened.dispute_id}:closed")
    assert lines_of(settings, f"dispute:{opened.dispute_id}:closed") == {
        WRITE_OFF: D("60.00"),
        DISPUTED_RECEIVABLES: D("-60.00"),
    }
    assert invoice_state(settings, invoice_id) == (D(0), D("100.00"))
    policy = scalar(
        settings,
        "SELECT outcome_policy FROM erp.disputes WHERE dispute_id = %s",
        opened.dispute_id,
    )
    assert policy == "write-off"
    assert findings_about(settings, started, opened.dispute_id, invoice_id, payment_id) == []


def test_a_loss_that_arrives_first_waits_for_its_payment_and_then_applies(
    settings: Settings, serde: Serde, patient_settler: ServiceProcess
) -> None:
    """Gateway webhooks arrive out of order: the LOST before the payment (another key, waited
    for) and before its OPENED (the same key: the LOST books the opening itself)."""
    started = datetime.now(UTC)
    account, [invoice_id] = customer(settings, "100.00")
    payment = PaymentSettled(
        **envelope(),
        payment_id=uid("PAY"),
        account_id=account,
        invoice_id=invoice_id,
        amount=D("100.00"),
        fee_amount=D(0),
        currency="EUR",
        settled_at=datetime.now(UTC),
        method="CARD",
        gateway_reference=uid("GW"),
    )
    opened = dispute(account, payment.payment_id, "OPENED", "100.00")
    lost = dispute(account, payment.payment_id, "LOST", "100.00", opened.dispute_id)
    publish(settings, serde, [lost])
    time.sleep(3)  # retried meanwhile, nothing booked
    assert journals(settings, f"dispute:{opened.dispute_id}:closed") == 0
    publish(settings, serde, [payment])
    booked(settings, f"dispute:{opened.dispute_id}:closed")
    assert lines_of(settings, f"dispute:{opened.dispute_id}:OPENED") == {
        DISPUTED_RECEIVABLES: D("100.00"),
        PAYMENT_FEES: D("15.00"),
        GATEWAY_CLEARING: D("-115.00"),
    }
    assert lines_of(settings, f"dispute:{opened.dispute_id}:closed") == {
        ACCOUNTS_RECEIVABLE: D("100.00"),
        DISPUTED_RECEIVABLES: D("-100.00"),
    }
    assert invoice_state(settings, invoice_id) == (D("100.00"), D(0))
    publish(settings, serde, [opened])  # late: takes no effect
    eventually(
        lambda: scalar(
            settings,
            "SELECT count(*) FROM finsync.inbox WHERE service = 'payment-settler' "
            "AND document_key = %s",
            opened.document_key,
        ),
        30,
        "the late opening consumed",
    )
    assert journals(settings, f"dispute:{opened.dispute_id}:OPENED") == 1
    assert invoice_state(settings, invoice_id) == (D("100.00"), D(0))
    status = scalar(
        settings, "SELECT status FROM erp.disputes WHERE dispute_id = %s", opened.dispute_id
    )
    assert status == "LOST"
    assert findings_about(settings, started, opened.dispute_id, invoice_id) == []


def test_a_planted_break_in_disputed_receivables_is_caught(settings: Settings) -> None:
    key = f"planted:{uid('JE')}"
    with db.connect(settings) as conn, conn.transaction():
        before = refunds_disputes.run(conn, ENTITY, None)
        erp = ReferenceErp(conn)
        erp.post_journal(
            Journal(
                key=key,
                legal_entity=ENTITY,
                currency="EUR",
                description="a hand-made entry on 1260",
                lines=(debit(DISPUTED_RECEIVABLES, D("7.00")), credit(CASH, D("7.00"))),
            )
        )
        erp.flush()
        found = refunds_disputes.run(conn, ENTITY, None)
        raise psycopg.Rollback
    assert [f.check for f in found if key in f.documents] == ["gl-disputed"]
    balance = [f for f in found if f.scope == f"{ENTITY} EUR"]
    assert balance and balance != [f for f in before if f.scope == f"{ENTITY} EUR"]

"""Credit memos above the open amount, on the real stack: the excess is held as customer credit
(2400) and the customer's next invoice uses it, through the invoice-poster process."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from finsync.adapters.crossref import CrossReferenceStore
from finsync.books import customer_credit, ledger
from finsync.books.findings import Finding
from finsync.contract.events import (
    CreditMemoIssued,
    InvoiceIssued,
    InvoiceLine,
    PaymentSettled,
    PaymentStatus,
)
from finsync.domain.accounting import CUSTOMER_CREDIT, REVENUE, Journal, credit, debit
from finsync.errors import InvalidEvent
from finsync.ports.crossref import AccountLink
from finsync.ports.erp import CreditHolder
from finsync.reference.erp.adapter import ReferenceErp
from finsync.runtime import db
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from services.invoice_poster.handler import post_invoice
from services.payment_settler.cash import NO_OVERRIDES
from services.payment_settler.handler import Systems, settle_payment
from tests.integration.port_support import (
    ENTITY,
    a_customer,
    a_payment,
    an_invoice,
    invoice_journal,
    payment_journal,
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
    publish_to_partition,
    scalar,
)

pytestmark = pytest.mark.integration

D = Decimal
TODAY = datetime.now(UTC).date()


@pytest.fixture
def poster(tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess("invoice-poster", tmp_path, FAST_RETRIES).start()
    yield service
    if service.proc and service.proc.poll() is None:
        assert service.stop() == 0


def seat(line_id: str, amount: str) -> InvoiceLine:
    net = D(amount)
    return InvoiceLine(
        line_id=line_id,
        description="Onboarding",
        sku="ONBOARDING",
        amount=net,
        tax_amount=(net * D("0.19")).quantize(D("0.01")),
    )


def invoice(account: str, *amounts: str) -> InvoiceIssued:
    """A one-time charge per amount, at 19 % (no schedules: revenue at once)."""
    lines = [seat(str(n), a) for n, a in enumerate(amounts, 1)]
    subtotal = sum((x.amount for x in lines), D(0))
    tax = sum((x.tax_amount for x in lines), D(0))
    invoice_id = uid("INV")
    return InvoiceIssued(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        source="billing",
        correlation_id=f"corr-{invoice_id}",
        invoice_id=invoice_id,
        invoice_number=f"{ENTITY}-{invoice_id}",
        account_id=account,
        legal_entity=ENTITY,
        currency="EUR",
        issued_on=TODAY,
        due_on=TODAY + timedelta(days=30),
        lines=lines,
        subtotal=subtotal,
        tax_total=tax,
        total=subtotal + tax,
    )


def memo(inv: InvoiceIssued, line_id: str = "1") -> CreditMemoIssued:
    [x] = [x for x in inv.lines if x.line_id == line_id]
    return CreditMemoIssued(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        source="billing",
        correlation_id=inv.correlation_id,
        credit_memo_id=f"CM-{inv.invoice_id}-{line_id}",
        invoice_id=inv.invoice_id,
        account_id=inv.account_id,
        legal_entity=inv.legal_entity,
        currency=inv.currency,
        issued_on=TODAY,
        lines=[x],
        subtotal=x.amount,
        tax_total=x.tax_amount,
        total=x.amount + x.tax_amount,
    )


def posted(settings: Settings, key: str) -> None:
    eventually(lambda: journals(settings, key) == 1, 30, key)


def pay(settings: Settings, inv: InvoiceIssued, amount: str) -> None:
    """The customer pays, straight into the ERP (payment-settler's part is not under test)."""
    with db.connect(settings) as conn:
        erp = ReferenceErp(conn)
        customer_id = erp.create_customer(a_customer(account_id=inv.account_id))
        status = PaymentStatus.PAID if D(amount) == inv.total else PaymentStatus.PARTIALLY_PAID
        payment = a_payment(
            customer_id, inv.account_id, inv.invoice_id, amount, amount, status=status
        )
        erp.apply_payment(payment, payment_journal(payment))
        erp.flush()


def open_amount(settings: Settings, invoice_id: str) -> object:
    return scalar(
        settings, "SELECT open_amount FROM erp.ar_open_items WHERE invoice_id = %s", invoice_id
    )


def held(settings: Settings, account: str) -> object:
    return scalar(
        settings,
        "SELECT held FROM erp.customer_credit_balances WHERE account_id = %s "
        "AND legal_entity = %s AND currency = 'EUR'",
        account,
        ENTITY,
    )


def credit_ledger(settings: Settings, account: str) -> list[tuple[str, str, Decimal]]:
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT kind, document_id, amount FROM erp.customer_credits WHERE account_id = %s "
            "ORDER BY created_at, kind",
            (account,),
        ).fetchall()
    return [(k, d, a) for k, d, a in rows]


def findings_about(settings: Settings, since: datetime, *names: str) -> list[Finding]:
    """What the AR and the 2400 checks find about these documents or holders. (The others
    look for billing's side of them: these were published straight, as billing would.)"""
    with db.connect(settings) as conn:
        found = ledger.gl_ar(conn, {"entity": None, "since": since})
        found += customer_credit.run(conn, None, since)
    return [f for f in found if any(n in f.scope or n in " ".join(f.documents) for n in names)]


def test_a_memo_on_a_paid_invoice_is_held_as_credit_and_the_next_invoice_uses_it(
    settings: Settings, serde: Serde, poster: ServiceProcess
) -> None:
    # Reported: the memo was dead-lettered ("exceeds the open amount of invoice") after billing
    # had issued it, so billing and the ERP disagreed for good.
    started = datetime.now(UTC)
    account = uid("ACC")
    first = invoice(account, "100.00")  # 119.00
    publish(settings, serde, [first])
    posted(settings, f"invoice:{first.invoice_id}")
    pay(settings, first, "119.00")
    credit_memo = memo(first)
    publish(settings, serde, [credit_memo])
    posted(settings, f"credit-memo:{credit_memo.credit_memo_id}")
    assert lines_of(settings, f"credit-memo:{credit_memo.credit_memo_id}") == {
        REVENUE: D("100.00"),
        "2200": D("19.00"),
        CUSTOMER_CREDIT: D("-119.00"),  # nothing was open: all of it is owed to the customer
    }
    assert open_amount(settings, first.invoice_id) == D(0)
    assert held(settings, account) == D("119.00")

    tail = TopicTail(settings, "erp.invoice-posted")
    second = invoice(account, "200.00")  # 238.00
    publish(settings, serde, [second])
    posted(settings, f"invoice:{second.invoice_id}")
    posted(settings, f"credit-application:{second.invoice_id}")
    assert lines_of(settings, f"credit-application:{second.invoice_id}") == {
        CUSTOMER_CREDIT: D("119.00"),
        "1200": D("-119.00"),
    }
    assert open_amount(settings, second.invoice_id) == D("119.00")  # 238.00 - 119.00
    assert held(settings, account) == D(0)
    assert credit_ledger(settings, account) == [
        ("CREATED", credit_memo.credit_memo_id, D("119.00")),
        ("USED", second.invoice_id, D("-119.00")),
    ]
    events = eventually(
        lambda: [
            serde.decode("erp.invoice-posted", r.value)
            for r in tail.poll(0.5)
            if r.key_text == second.invoice_id
        ],
        30,
        "erp.invoice-posted of the second invoice",
    )
    [event] = events
    entry = scalar(
        settings,
        "SELECT entry_id FROM erp.journal_entries WHERE idempotency_key = %s",
        f"credit-application:{second.invoice_id}",
    )
    assert (event.credit_applied, event.credit_journal_entry_id) == (D("119.00"), entry)  # type: ignore[attr-defined]
    assert findings_about(settings, started, account, first.invoice_id, second.invoice_id) == []


def test_a_memo_on_a_partly_paid_invoice_clears_what_is_open_and_holds_the_rest(
    settings: Settings, serde: Serde, poster: ServiceProcess
) -> None:
    started = datetime.now(UTC)
    account = uid("ACC")
    inv = invoice(account, "100.00", "100.00")  # 238.00
    publish(settings, serde, [inv])
    posted(settings, f"invoice:{inv.invoice_id}")
    pay(settings, inv, "188.00")  # 50.00 left open
    credit_memo = memo(inv)  # 119.00
    publish(settings, serde, [credit_memo])
    posted(settings, f"credit-memo:{credit_memo.credit_memo_id}")
    assert lines_of(settings, f"credit-memo:{credit_memo.credit_memo_id}") == {
        REVENUE: D("100.00"),
        "2200": D("19.00"),
        "1200": D("-50.00"),
        CUSTOMER_CREDIT: D("-69.00"),
    }
    assert open_amount(settings, inv.invoice_id) == D(0)
    assert held(settings, account) == D("69.00")
    assert findings_about(settings, started, account, inv.invoice_id) == []


def test_two_invoices_posted_at_once_do_not_both_use_the_same_credit(
    settings: Settings, serde: Serde, tmp_path: Path
) -> None:
    started = datetime.now(UTC)
    posters = [ServiceProcess("invoice-poster", tmp_path, FAST_RETRIES).start() for _ in "ab"]
    try:
        account = uid("ACC")
        first = invoice(account, "100.00")
        publish(settings, serde, [first])
        posted(settings, f"invoice:{first.invoice_id}")
        pay(settings, first, "119.00")
        publish(settings, serde, [memo(first)])
        eventually(lambda: held(settings, account) == D("119.00"), 30, "the credit held")
        a, b = invoice(account, "200.00"), invoice(account, "200.00")
        publish_to_partition(settings, serde, 0, [a])  # the two instances share the partitions
        publish_to_partition(settings, serde, 2, [b])
        for x in (a, b):
            posted(settings, f"invoice:{x.invoice_id}")
    finally:
        for p in posters:
            assert p.stop() == 0
    used = [journals(settings, f"credit-application:{x.invoice_id}") for x in (a, b)]
    assert sorted(used) == [0, 1]
    assert sorted([open_amount(settings, a.invoice_id), open_amount(settings, b.invoice_id)]) == [
        D("119.00"),
        D("238.00"),
    ]
    assert held(settings, account) == D(0)
    assert sum(x[2] for x in credit_ledger(settings, account)) == D(0)
    assert findings_about(settings, started, account, a.invoice_id, b.invoice_id) == []


def memo_journal(memo_id: str, amount: Decimal) -> Journal:
    return Journal(
        key=f"credit-memo:{memo_id}",
        legal_entity=ENTITY,
        currency="EUR",
        description="memo",
        lines=(debit(REVENUE, amount), credit(CUSTOMER_CREDIT, amount)),
    )


def test_a_posting_waits_for_another_that_uses_the_same_credit_and_then_finds_it_gone(
    settings: Settings,
) -> None:
    """The port itself: credit_held() locks the holder's balance until the transaction ends."""
    customer = a_customer()
    holder = CreditHolder(customer.account_id, ENTITY, "EUR")
    with db.connect(settings) as conn:  # a paid invoice, and a memo on it all held as credit
        erp = ReferenceErp(conn)
        customer_id = erp.create_customer(customer)
        item = an_invoice(customer.account_id, "119.00")
        erp.post_invoice(item, invoice_journal(item))
        erp.flush()  # payments are applied at once, not buffered
        payment = a_payment(
            customer_id,
            customer.account_id,
            item.invoice_id,
            "119.00",
            "119.00",
            status=PaymentStatus.PAID,
        )
        erp.apply_payment(payment, payment_journal(payment))
        memo_id = uid("CM")
        erp.post_credit_memo(
            memo_id,
            item.invoice_id,
            D("119.00"),
            memo_journal(memo_id, D("119.00")),
            to_credit=D("119.00"),
        )
        erp.flush()
    first, second = db.connect(settings), db.connect(settings)
    try:
        using = ReferenceErp(first)
        assert using.credit_held(holder) == D("119.00")
        seen: list[Decimal] = []
        waiting = threading.Thread(
            target=lambda: seen.append(ReferenceErp(second).credit_held(holder))
        )
        waiting.start()
        time.sleep(1)
        assert waiting.is_alive() and seen == []  # held off by the lock
        next_item = an_invoice(customer.account_id, "200.00")
        using.post_invoice(next_item, invoice_journal(next_item))
        using.apply_credit(
            next_item.invoice_id,
            holder,
            D("119.00"),
            Journal(
                key=f"credit-application:{next_item.invoice_id}",
                legal_entity=ENTITY,
                currency="EUR",
                description="use",
                lines=(debit(CUSTOMER_CREDIT, D("119.00")), credit("1200", D("119.00"))),
            ),
        )
        using.flush()
        first.commit()
        waiting.join(30)
        assert seen == [D(0)]  # it read the balance as the first left it
        second.rollback()
        assert ReferenceErp(second).open_item(next_item.invoice_id).open_amount == D("81.00")  # type: ignore[union-attr]
    finally:
        first.close()
        second.close()


def test_the_erp_refuses_credit_from_a_memo_that_does_not_clear_the_invoice_first(
    settings: Settings,
) -> None:
    with db.connect(settings) as conn, conn.transaction():
        erp = ReferenceErp(conn)
        item = an_invoice(uid("ACC"), "119.00")
        erp.post_invoice(item, invoice_journal(item))
        memo_id = uid("CM")
        with pytest.raises(InvalidEvent, match="only what is above it becomes credit"):
            erp.post_credit_memo(
                memo_id,
                item.invoice_id,
                D("100.00"),
                memo_journal(memo_id, D("100.00")),
                to_credit=D("100.00"),
            )
        raise psycopg.Rollback


def test_a_payment_on_an_invoice_credit_covered_is_unapplied_cash(settings: Settings) -> None:
    """payment-settler's rule for any over-payment: the invoice is not open."""
    customer = a_customer()
    with db.connect(settings) as conn, conn.transaction():
        erp = ReferenceErp(conn)
        customer_id = erp.create_customer(customer)
        CrossReferenceStore(conn).save(
            AccountLink(
                customer.account_id,
                customer_id,
                uid("BA"),
                1,
                customer.name,
                "muller",
                "DE",
                "EUR",
                ENTITY,
            )
        )
        paid = an_invoice(customer.account_id, "300.00")
        erp.post_invoice(paid, invoice_journal(paid))
        erp.flush()  # payments are applied at once, not buffered
        payment = a_payment(
            customer_id,
            customer.account_id,
            paid.invoice_id,
            "300.00",
            "300.00",
            status=PaymentStatus.PAID,
        )
        erp.apply_payment(payment, payment_journal(payment))
        memo_id = uid("CM")
        erp.post_credit_memo(
            memo_id,
            paid.invoice_id,
            D("300.00"),
            memo_journal(memo_id, D("300.00")),
            to_credit=D("300.00"),
        )
        covered = invoice(customer.account_id, "200.00")  # 238.00, all of it from credit
        [event] = post_invoice(covered, erp)
        assert event.credit_applied == D("238.00")
        assert erp.open_item(covered.invoice_id).open_amount == D(0)  # type: ignore[union-attr]
        assert erp.credit_held(CreditHolder.of(erp.open_item(covered.invoice_id))) == D("62.00")  # type: ignore[arg-type]
        settled = PaymentSettled(
            event_id=uuid.uuid4(),
            occurred_at=datetime.now(UTC),
            source="gateway",
            correlation_id="c",
            payment_id=uid("PAY"),
            account_id=customer.account_id,
            invoice_id=covered.invoice_id,
            amount=D("238.00"),
            fee_amount=D(0),
            currency="EUR",
            settled_at=datetime.now(UTC),
            method="CARD",
            gateway_reference=uid("GW"),
        )
        [applied] = settle_payment(settled, Systems(erp, CrossReferenceStore(conn), NO_OVERRIDES))
        erp.flush()
        assert (applied.status, applied.applied_amount, applied.unapplied_amount) == (
            PaymentStatus.UNAPPLIED,
            D(0),
            D("238.00"),
        )
        assert applied.invoice_open_after == D(0)
        raise psycopg.Rollback

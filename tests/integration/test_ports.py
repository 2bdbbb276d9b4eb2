"""Contract tests of the ports (Erp, Billing, CrossReference) on their real adapters.

Each port's tests are written against the port's methods only, and run once per adapter in
ERPS, BILLINGS and CROSSREFS: another adapter of the same port joins by adding an `Adapter`
there. What a port never reads back (a customer, a recorded payment, a subscription's phases)
is read through the adapter's probe, a small reader that each adapter brings along.

A few tests at the end check what the reference ERP's database itself guarantees (balanced,
append-only journals; the AR item status), whatever writes to it.

Every test runs in one transaction that is rolled back at the end, so it leaves no data;
ids are unique anyway, so nothing the other users of the stack write can match them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

import psycopg
import pytest
from psycopg.errors import CheckViolation, RaiseException, UniqueViolation

from finsync.adapters.crossref import CrossReferenceStore
from finsync.contract.events import BillingPeriod, PaymentStatus
from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    CASH,
    PAYMENT_FEES,
    REVENUE,
    UNAPPLIED_CASH,
    WRITE_OFF,
    ZERO,
    Journal,
    credit,
    debit,
)
from finsync.errors import InvalidEvent
from finsync.ports.billing import Billing, BillingAccount, NewSubscription, Phase
from finsync.ports.crossref import AccountLink, CrossReference, MatchRule
from finsync.ports.erp import CashApplication, Customer, Erp, OpenItem
from finsync.reference.billing.adapter import ReferenceBilling
from finsync.reference.erp.adapter import ReferenceErp
from finsync.runtime import db
from finsync.settings import Settings

pytestmark = pytest.mark.integration

ENTITY, CURRENCY, COUNTRY = "ACME-DE", "EUR", "DE"


# --- adapters under test --------------------------------------------------------------------

P = TypeVar("P")
Q = TypeVar("Q")


@dataclass(frozen=True)
class Adapter(Generic[P, Q]):
    """One adapter of a port: how to make it on a connection, and its probe."""

    name: str
    make: Callable[[psycopg.Connection], P]
    probe: Callable[[psycopg.Connection], Q]


class ErpProbe(Protocol):
    def customer(self, customer_id: str) -> Customer | None: ...

    def payment(self, payment_id: str) -> CashApplication | None: ...


class BillingProbe(Protocol):
    def account(self, billing_account_id: str) -> BillingAccount | None: ...

    def subscription(self, subscription_id: str) -> NewSubscription | None: ...


class ReferenceErpProbe:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def customer(self, customer_id: str) -> Customer | None:
        row = self.conn.execute(
            "SELECT account_id, name, country, currency, legal_entity, tax_id, email_domain, "
            "parent_customer_id FROM erp.customers WHERE customer_id = %s",
            (customer_id,),
        ).fetchone()
        return None if row is None else Customer(*row)

    def payment(self, payment_id: str) -> CashApplication | None:
        row = self.conn.execute(
            "SELECT payment_id, account_id, customer_id, invoice_id, legal_entity, currency, "
            "amount, fee_amount, applied_amount, written_off_amount, unapplied_amount, status, "
            "settled_at, method, gateway_reference FROM erp.payments WHERE payment_id = %s",
            (payment_id,),
        ).fetchone()
        if row is None:
            return None
        fields: list[Any] = list(row)
        fields[11] = PaymentStatus(fields[11])
        return CashApplication(*fields)


class ReferenceBillingProbe:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def account(self, billing_account_id: str) -> BillingAccount | None:
        row = self.conn.execute(
            "SELECT account_id, name, country, currency, legal_entity, email_domain, "
            "parent_billing_account_id FROM billing.accounts WHERE billing_account_id = %s",
            (billing_account_id,),
        ).fetchone()
        return None if row is None else BillingAccount(*row)

    def subscription(self, subscription_id: str) -> NewSubscription | None:
        row = self.conn.execute(
            "SELECT opportunity_id, account_id, billing_account_id, legal_entity, currency, "
            "correlation_id FROM billing.subscriptions WHERE subscription_id = %s",
            (subscription_id,),
        ).fetchone()
        if row is None:
            return None
        phases = tuple(
            Phase(line_id, sku, text, quantity, price, BillingPeriod(period), start, end)
            for line_id, sku, text, quantity, price, period, start, end in self.conn.execute(
                "SELECT line_id, sku, description, quantity, unit_price, billing_period, "
                "start_date, end_date FROM billing.subscription_phases "
                "WHERE subscription_id = %s ORDER BY phase_no",
                (subscription_id,),
            )
        )
        return NewSubscription(*row[:5], correlation_id=row[5], phases=phases)


def _no_probe(conn: psycopg.Connection) -> None:
    return None


ERPS: list[Adapter[Erp, ErpProbe]] = [Adapter("reference", ReferenceErp, ReferenceErpProbe)]
BILLINGS: list[Adapter[Billing, BillingProbe]] = [
    Adapter("reference", ReferenceBilling, ReferenceBillingProbe)
]
CROSSREFS: list[Adapter[CrossReference, None]] = [
    Adapter("postgres", CrossReferenceStore, _no_probe)
]


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def conn(settings: Settings) -> Iterator[psycopg.Connection]:
    """A connection inside a transaction that is always rolled back."""
    with db.connect(settings) as connection, connection.transaction():
        # The stack is shared: wait for nobody's locks for long.
        connection.execute("SET LOCAL lock_timeout = '20s'")
        yield connection
        raise psycopg.Rollback


@pytest.fixture(params=ERPS, ids=lambda a: a.name)
def erp_adapter(request: pytest.FixtureRequest) -> Adapter[Erp, ErpProbe]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def erp(erp_adapter: Adapter[Erp, ErpProbe], conn: psycopg.Connection) -> Erp:
    return erp_adapter.make(conn)


@pytest.fixture
def erp_probe(erp_adapter: Adapter[Erp, ErpProbe], conn: psycopg.Connection) -> ErpProbe:
    return erp_adapter.probe(conn)


@pytest.fixture
def fresh_erp(erp_adapter: Adapter[Erp, ErpProbe], conn: psycopg.Connection) -> Callable[[], Erp]:
    """A new unit of work on the same transaction, as the runtime makes after a failure."""
    return lambda: erp_adapter.make(conn)


@pytest.fixture(params=BILLINGS, ids=lambda a: a.name)
def billing_adapter(request: pytest.FixtureRequest) -> Adapter[Billing, BillingProbe]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def billing(billing_adapter: Adapter[Billing, BillingProbe], conn: psycopg.Connection) -> Billing:
    return billing_adapter.make(conn)


@pytest.fixture
def billing_probe(
    billing_adapter: Adapter[Billing, BillingProbe], conn: psycopg.Connection
) -> BillingProbe:
    return billing_adapter.probe(conn)


@pytest.fixture(params=CROSSREFS, ids=lambda a: a.name)
def crossref(request: pytest.FixtureRequest, conn: psycopg.Connection) -> CrossReference:
    adapter: Adapter[CrossReference, None] = request.param
    return adapter.make(conn)


@contextmanager
def rejected(conn: psycopg.Connection, *errors: type[Exception]) -> Iterator[None]:
    """The block must fail with one of `errors`; it runs in a savepoint, so the test's
    transaction goes on after it."""
    with pytest.raises(errors or (Exception,)), conn.transaction():
        yield


# --- test data ------------------------------------------------------------------------------


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12].upper()}"


def a_customer(**changes: Any) -> Customer:
    fields: dict[str, Any] = {
        "account_id": uid("ACC"),
        "name": "Müller Maschinenbau GmbH",
        "country": COUNTRY,
        "currency": CURRENCY,
        "legal_entity": ENTITY,
        "tax_id": uid("DE"),
        "email_domain": "mueller.example",
        "parent_customer_id": None,
    }
    return Customer(**(fields | changes))


def an_invoice(account_id: str, amount: str = "100.00") -> OpenItem:
    invoice_id = uid("INV")
    return OpenItem(
        invoice_id=invoice_id,
        invoice_number=f"{ENTITY}-2026-{invoice_id[-6:]}",
        account_id=account_id,
        legal_entity=ENTITY,
        currency=CURRENCY,
        issued_on=date(2026, 1, 31),
        due_on=date(2026, 3, 2),
        original_amount=Decimal(amount),
        open_amount=Decimal(amount),
    )


def invoice_journal(item: OpenItem, key: str | None = None) -> Journal:
    return Journal(
        key=key or f"invoice:{item.invoice_id}",
        legal_entity=item.legal_entity,
        currency=item.currency,
        description=f"invoice {item.invoice_number}",
        lines=(
            debit(ACCOUNTS_RECEIVABLE, item.original_amount),
            credit(REVENUE, item.original_amount),
        ),
    )


def a_payment(
    customer_id: str,
    account_id: str,
    invoice_id: str | None,
    amount: str,
    applied: str = "0",
    written_off: str = "0",
    fee: str = "0",
    status: PaymentStatus | None = None,
    payment_id: str | None = None,
) -> CashApplication:
    total, settled = Decimal(amount), Decimal(applied)
    if status is None:
        status = PaymentStatus.UNAPPLIED if not settled else PaymentStatus.PARTIALLY_PAID
    return CashApplication(
        payment_id=payment_id or uid("PAY"),
        account_id=account_id,
        customer_id=customer_id,
        invoice_id=invoice_id,
        legal_entity=ENTITY,
        currency=CURRENCY,
        amount=total,
        fee_amount=Decimal(fee),
        applied_amount=settled,
        written_off_amount=Decimal(written_off),
        unapplied_amount=total - settled,
        status=status,
        settled_at=datetime(2026, 2, 10, 9, 30, 15, 123456, tzinfo=UTC),
        method="CARD",
        gateway_reference=uid("GW"),
    )


def payment_journal(a: CashApplication, key: str | None = None) -> Journal:
    return Journal(
        key=key or f"payment:{a.payment_id}",
        legal_entity=a.legal_entity,
        currency=a.currency,
        description=f"payment {a.payment_id}",
        lines=(
            debit(CASH, a.amount - a.fee_amount),
            debit(PAYMENT_FEES, a.fee_amount),
            debit(WRITE_OFF, a.written_off_amount),
            credit(ACCOUNTS_RECEIVABLE, a.applied_amount + a.written_off_amount),
            credit(UNAPPLIED_CASH, a.unapplied_amount),
        ),
    )


def credit_memo_journal(amount: Decimal, key: str | None = None) -> Journal:
    return Journal(
        key=key or f"credit-memo:{uid('CM')}",
        legal_entity=ENTITY,
        currency=CURRENCY,
        description="credit memo",
        lines=(debit(REVENUE, amount), credit(ACCOUNTS_RECEIVABLE, amount)),
    )


def posted_invoice(erp: Erp, account_id: str, amount: str = "100.00") -> OpenItem:
    item = an_invoice(account_id, amount)
    erp.post_invoice(item, invoice_journal(item))
    erp.flush()
    return item


def open_amount(erp: Erp, invoice_id: str) -> Decimal:
    item = erp.open_item(invoice_id)
    assert item is not None
    return item.open_amount


# --- Erp ------------------------------------------------------------------------------------


def test_erp_creates_a_customer_and_returns_its_id(erp: Erp, erp_probe: ErpProbe) -> None:
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    erp.flush()
    assert isinstance(customer_id, str) and customer_id
    assert erp_probe.customer(customer_id) == customer


def test_erp_gives_each_customer_its_own_id(erp: Erp) -> None:
    assert erp.create_customer(a_customer()) != erp.create_customer(a_customer())


def test_erp_rejects_a_second_customer_for_the_same_crm_account(
    erp: Erp, fresh_erp: Callable[[], Erp], erp_probe: ErpProbe, conn: psycopg.Connection
) -> None:
    first = a_customer()
    customer_id = erp.create_customer(first)
    erp.flush()
    with rejected(conn, UniqueViolation):
        again = fresh_erp()
        again.create_customer(replace(first, name="Someone Else AG"))
        again.flush()
    assert erp_probe.customer(customer_id) == first


def test_erp_updates_a_customers_details(erp: Erp, erp_probe: ErpProbe) -> None:
    parent = erp.create_customer(a_customer())
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    changed = replace(
        customer,
        name="Müller Maschinenbau AG",
        country="AT",
        tax_id=uid("ATU"),
        email_domain="mueller.example.at",
        parent_customer_id=parent,
    )
    erp.update_customer(customer_id, changed)
    erp.flush()
    assert erp_probe.customer(customer_id) == changed


def test_erp_posts_an_invoice_that_opens_an_ar_item_for_its_whole_amount(erp: Erp) -> None:
    item = an_invoice(uid("ACC"), "1931.50")
    posted = erp.post_invoice(item, invoice_journal(item))
    assert posted.document_id and posted.journal_entry_id
    assert posted.posted_at.tzinfo is not None
    found = erp.open_item(item.invoice_id)
    assert found == item
    assert found.open_amount == found.original_amount == Decimal("1931.50")


def test_erp_gives_each_posting_its_own_journal_entry(erp: Erp) -> None:
    first, second = an_invoice(uid("ACC")), an_invoice(uid("ACC"))
    a = erp.post_invoice(first, invoice_journal(first))
    b = erp.post_invoice(second, invoice_journal(second))
    erp.flush()
    assert a.journal_entry_id != b.journal_entry_id
    assert a.document_id != b.document_id


def test_erp_has_no_open_item_for_an_invoice_not_posted(erp: Erp) -> None:
    assert erp.open_item(uid("INV")) is None
    assert erp.open_item(uid("INV"), lock=True) is None


def test_erp_rejects_a_second_post_of_the_same_invoice(
    erp: Erp, fresh_erp: Callable[[], Erp], conn: psycopg.Connection
) -> None:
    item = posted_invoice(erp, uid("ACC"))
    with rejected(conn, UniqueViolation):
        again = fresh_erp()
        # Another journal key: the invoice itself is the idempotency key.
        again.post_invoice(item, invoice_journal(item, key=uid("resent")))
        again.flush()
    assert fresh_erp().open_item(item.invoice_id) == item


def test_erp_rejects_a_second_post_of_the_same_invoice_in_one_unit_of_work(
    erp: Erp, conn: psycopg.Connection
) -> None:
    item = an_invoice(uid("ACC"))
    with rejected(conn, UniqueViolation):
        erp.post_invoice(item, invoice_journal(item))
        erp.post_invoice(item, invoice_journal(item, key=uid("resent")))
        erp.flush()


def test_erp_rejects_a_second_journal_with_the_same_key(
    erp: Erp, fresh_erp: Callable[[], Erp], conn: psycopg.Connection
) -> None:
    first = posted_invoice(erp, uid("ACC"))
    with rejected(conn, UniqueViolation):
        again = fresh_erp()
        other = an_invoice(uid("ACC"))
        again.post_invoice(other, invoice_journal(other, key=f"invoice:{first.invoice_id}"))
        again.flush()


def test_erp_locks_and_returns_an_open_item(erp: Erp) -> None:
    item = posted_invoice(erp, uid("ACC"))
    assert erp.open_item(item.invoice_id, lock=True) == item
    assert erp.open_item(item.invoice_id, lock=True) == item  # a lock we hold lets us in again


def test_erp_applies_a_partial_payment_and_records_it(erp: Erp, erp_probe: ErpProbe) -> None:
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    item = posted_invoice(erp, customer.account_id, "100.00")
    assert erp.open_item(item.invoice_id, lock=True) == item
    payment = a_payment(customer_id, customer.account_id, item.invoice_id, "40.00", "40.00")
    posted = erp.apply_payment(payment, payment_journal(payment))
    erp.flush()
    assert posted.document_id and posted.journal_entry_id
    assert open_amount(erp, item.invoice_id) == Decimal("60.00")
    assert erp_probe.payment(payment.payment_id) == payment


def test_erp_reduces_the_open_amount_by_what_is_applied_and_what_is_written_off(
    erp: Erp, erp_probe: ErpProbe
) -> None:
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    item = posted_invoice(erp, customer.account_id, "100.00")
    payment = a_payment(
        customer_id,
        customer.account_id,
        item.invoice_id,
        amount="99.97",
        applied="99.97",
        written_off="0.03",
        fee="2.90",
        status=PaymentStatus.PAID,
    )
    erp.apply_payment(payment, payment_journal(payment))
    erp.flush()
    assert open_amount(erp, item.invoice_id) == ZERO
    assert erp_probe.payment(payment.payment_id) == payment


def test_erp_applies_an_overpayment_up_to_the_open_amount_and_keeps_the_rest_unapplied(
    erp: Erp, erp_probe: ErpProbe
) -> None:
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    item = posted_invoice(erp, customer.account_id, "100.00")
    payment = a_payment(
        customer_id,
        customer.account_id,
        item.invoice_id,
        amount="150.00",
        applied="100.00",
        status=PaymentStatus.PAID,
    )
    assert payment.unapplied_amount == Decimal("50.00")
    erp.apply_payment(payment, payment_journal(payment))
    erp.flush()
    assert open_amount(erp, item.invoice_id) == ZERO
    assert erp_probe.payment(payment.payment_id) == payment


def test_erp_applies_payments_one_after_the_other_within_a_unit_of_work(erp: Erp) -> None:
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    item = posted_invoice(erp, customer.account_id, "100.00")
    for amount in ("30.00", "45.00"):
        payment = a_payment(customer_id, customer.account_id, item.invoice_id, amount, amount)
        erp.apply_payment(payment, payment_journal(payment))
    assert open_amount(erp, item.invoice_id) == Decimal("25.00")


def test_erp_rejects_a_second_application_of_the_same_payment(
    erp: Erp, fresh_erp: Callable[[], Erp], erp_probe: ErpProbe, conn: psycopg.Connection
) -> None:
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    item = posted_invoice(erp, customer.account_id, "100.00")
    payment = a_payment(customer_id, customer.account_id, item.invoice_id, "40.00", "40.00")
    erp.apply_payment(payment, payment_journal(payment))
    erp.flush()
    with rejected(conn, UniqueViolation):
        again = fresh_erp()
        # Another journal key: the payment id itself is the idempotency key.
        again.apply_payment(payment, payment_journal(payment, key=uid("resent")))
        again.flush()
    assert open_amount(fresh_erp(), item.invoice_id) == Decimal("60.00")
    assert erp_probe.payment(payment.payment_id) == payment


def test_erp_keeps_a_payment_without_invoice_as_unapplied_cash_and_leaves_ar_alone(
    erp: Erp, erp_probe: ErpProbe
) -> None:
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    item = posted_invoice(erp, customer.account_id, "100.00")
    payment = a_payment(customer_id, customer.account_id, None, "100.00")
    assert payment.status is PaymentStatus.UNAPPLIED and payment.settles == ZERO
    erp.apply_payment(payment, payment_journal(payment))
    erp.flush()
    assert erp.open_item(item.invoice_id) == item
    recorded = erp_probe.payment(payment.payment_id)
    assert recorded == payment
    assert recorded.invoice_id is None and recorded.unapplied_amount == Decimal("100.00")


def test_erp_reduces_the_open_amount_by_a_credit_memo(erp: Erp) -> None:
    item = posted_invoice(erp, uid("ACC"), "100.00")
    amount = Decimal("30.00")
    posted = erp.post_credit_memo(uid("CM"), item.invoice_id, amount, credit_memo_journal(amount))
    erp.flush()
    assert posted.document_id and posted.journal_entry_id
    assert open_amount(erp, item.invoice_id) == Decimal("70.00")


@pytest.mark.parametrize(
    "amount",
    [
        "30.00",
        "60.00",  # more than the first post left open: still "posted before", not a refund
    ],
)
def test_erp_rejects_a_second_post_of_the_same_credit_memo(
    erp: Erp, fresh_erp: Callable[[], Erp], conn: psycopg.Connection, amount: str
) -> None:
    item = posted_invoice(erp, uid("ACC"), "100.00")
    memo_id = uid("CM")
    erp.post_credit_memo(
        memo_id, item.invoice_id, Decimal(amount), credit_memo_journal(Decimal(amount))
    )
    erp.flush()
    with rejected(conn, UniqueViolation):
        again = fresh_erp()
        # Another journal key: the credit memo itself is the idempotency key.
        again.post_credit_memo(
            memo_id, item.invoice_id, Decimal(amount), credit_memo_journal(Decimal(amount))
        )
        again.flush()
    assert open_amount(fresh_erp(), item.invoice_id) == Decimal("100.00") - Decimal(amount)


def test_erp_refuses_a_credit_memo_larger_than_what_is_open(erp: Erp) -> None:
    item = posted_invoice(erp, uid("ACC"), "100.00")
    amount = Decimal("100.01")
    with pytest.raises(InvalidEvent, match=item.invoice_id):
        erp.post_credit_memo(uid("CM"), item.invoice_id, amount, credit_memo_journal(amount))
    assert open_amount(erp, item.invoice_id) == Decimal("100.00")


# --- Billing --------------------------------------------------------------------------------


def a_billing_account(**changes: Any) -> BillingAccount:
    fields: dict[str, Any] = {
        "account_id": uid("ACC"),
        "name": "Müller Maschinenbau GmbH",
        "country": COUNTRY,
        "currency": CURRENCY,
        "legal_entity": ENTITY,
        "email_domain": "mueller.example",
        "parent_billing_account_id": None,
    }
    return BillingAccount(**(fields | changes))


def a_subscription(billing_account_id: str, account_id: str, **changes: Any) -> NewSubscription:
    fields: dict[str, Any] = {
        "opportunity_id": uid("OPP"),
        "account_id": account_id,
        "billing_account_id": billing_account_id,
        "legal_entity": ENTITY,
        "currency": CURRENCY,
        "correlation_id": str(uuid.uuid4()),
        "phases": (
            Phase(
                line_id="L1",
                sku="PLAT-ENT",
                description="Platform, enterprise",
                quantity=Decimal("25"),
                unit_price=Decimal("49.90"),
                billing_period=BillingPeriod.MONTHLY,
                start_date=date(2026, 1, 31),
                end_date=date(2027, 1, 30),
            ),
            Phase(
                line_id="L2",
                sku="ONBOARD",
                description="Onboarding",
                quantity=Decimal("1"),
                unit_price=Decimal("1500.00"),
                billing_period=BillingPeriod.ONE_TIME,
                start_date=date(2026, 1, 31),
                end_date=date(2026, 1, 31),
            ),
        ),
    }
    return NewSubscription(**(fields | changes))


def test_billing_creates_an_account_with_a_ba_number(
    billing: Billing, billing_probe: BillingProbe
) -> None:
    account = a_billing_account()
    billing_account_id = billing.create_account(account)
    assert re.fullmatch(r"BA-\d{6,}", billing_account_id), billing_account_id
    assert billing_probe.account(billing_account_id) == account


def test_billing_gives_each_account_its_own_number(billing: Billing) -> None:
    first = billing.create_account(a_billing_account())
    second = billing.create_account(a_billing_account())
    assert first != second


def test_billing_rejects_a_second_account_for_the_same_crm_account(
    billing: Billing, billing_probe: BillingProbe, conn: psycopg.Connection
) -> None:
    account = a_billing_account()
    billing_account_id = billing.create_account(account)
    with rejected(conn, UniqueViolation):
        billing.create_account(replace(account, name="Someone Else AG"))
    assert billing_probe.account(billing_account_id) == account


def test_billing_rejects_an_account_of_a_legal_entity_it_does_not_invoice_for(
    billing: Billing,
) -> None:
    with pytest.raises(InvalidEvent, match="ACME-XX"):
        billing.create_account(a_billing_account(legal_entity="ACME-XX"))


def test_billing_updates_an_accounts_details(billing: Billing, billing_probe: BillingProbe) -> None:
    parent_id = billing.create_account(a_billing_account())
    account = a_billing_account()
    billing_account_id = billing.create_account(account)
    changed = replace(
        account,
        name="Müller Maschinenbau AG",
        country="AT",
        legal_entity="ACME-UK",
        email_domain="mueller.example.at",
        parent_billing_account_id=parent_id,
    )
    billing.update_account(billing_account_id, changed)
    assert billing_probe.account(billing_account_id) == changed


def test_billing_creates_a_subscription_named_after_its_opportunity_with_its_phases(
    billing: Billing, billing_probe: BillingProbe
) -> None:
    account = a_billing_account()
    billing_account_id = billing.create_account(account)
    subscription = a_subscription(billing_account_id, account.account_id)
    subscription_id = billing.create_subscription(subscription)
    assert subscription_id == f"SUB-{subscription.opportunity_id}"
    assert billing_probe.subscription(subscription_id) == subscription


def test_billing_rejects_a_second_subscription_for_the_same_opportunity(
    billing: Billing, billing_probe: BillingProbe, conn: psycopg.Connection
) -> None:
    account = a_billing_account()
    billing_account_id = billing.create_account(account)
    subscription = a_subscription(billing_account_id, account.account_id)
    subscription_id = billing.create_subscription(subscription)
    with rejected(conn, UniqueViolation):
        billing.create_subscription(
            replace(subscription, correlation_id=str(uuid.uuid4()), phases=subscription.phases[:1])
        )
    assert billing_probe.subscription(subscription_id) == subscription


def test_billing_rejects_a_subscription_of_a_legal_entity_it_does_not_invoice_for(
    billing: Billing, billing_probe: BillingProbe
) -> None:
    account = a_billing_account()
    billing_account_id = billing.create_account(account)
    subscription = a_subscription(billing_account_id, account.account_id, legal_entity="ACME-XX")
    with pytest.raises(InvalidEvent, match="ACME-XX"):
        billing.create_subscription(subscription)
    assert billing_probe.subscription(f"SUB-{subscription.opportunity_id}") is None


# --- CrossReference -------------------------------------------------------------------------


def a_link(**changes: Any) -> AccountLink:
    """An account that owns its customer; its name is unique, so only this test matches it."""
    name = f"Müller {uuid.uuid4().hex[:10]} GmbH"
    fields: dict[str, Any] = {
        "account_id": uid("ACC"),
        "erp_customer_id": uid("CUS"),
        "billing_account_id": uid("BA"),
        "version": 1,
        "name": name,
        "normalized_name": name.lower().replace("ü", "u").removesuffix(" gmbh"),
        "country": COUNTRY,
        "currency": CURRENCY,
        "legal_entity": ENTITY,
        "tax_id": uid("DE").lower(),
        "email_domain": "mueller.example",
    }
    return AccountLink(**(fields | changes))


def duplicate_of(owner: AccountLink, rule: MatchRule, **changes: Any) -> AccountLink:
    return replace(
        a_link(**changes),
        erp_customer_id=owner.erp_customer_id,
        billing_account_id=owner.billing_account_id,
        match_rule=rule,
        matched_account_id=owner.account_id,
    )


def probe_of(link: AccountLink, **changes: Any) -> dict[str, Any]:
    """The arguments of match() for a new account like `link`."""
    fields = {
        "tax_id": link.tax_id,
        "normalized_name": link.normalized_name,
        "country": link.country,
        "legal_entity": link.legal_entity,
        "currency": link.currency,
    }
    return fields | changes


def test_crossref_has_no_link_for_an_account_not_synced(crossref: CrossReference) -> None:
    assert crossref.link(uid("ACC")) is None


def test_crossref_returns_the_link_it_saved(crossref: CrossReference) -> None:
    parent = a_link()
    link = a_link(parent_account_id=parent.account_id)
    crossref.save(parent)
    crossref.save(link)
    assert crossref.link(link.account_id) == link
    assert crossref.link(link.account_id).owns_customer


def test_crossref_returns_a_linked_duplicate_with_its_rule_and_owner(
    crossref: CrossReference,
) -> None:
    owner = a_link()
    crossref.save(owner)
    for rule in MatchRule:
        duplicate = duplicate_of(owner, rule, tax_id=None)
        crossref.save(duplicate)
        found = crossref.link(duplicate.account_id)
        assert found == duplicate
        assert isinstance(found.match_rule, MatchRule) and found.match_rule is rule
        assert found.matched_account_id == owner.account_id and not found.owns_customer


def test_crossref_replaces_a_link_saved_again(crossref: CrossReference) -> None:
    link = a_link()
    crossref.save(link)
    newer = replace(
        link,
        version=2,
        name="Müller Holding GmbH",
        normalized_name=f"muller holding {uuid.uuid4().hex[:8]}",
        tax_id=None,
        email_domain=None,
        erp_customer_id=uid("CUS"),
    )
    crossref.save(newer)
    assert crossref.link(link.account_id) == newer


def test_crossref_matches_an_owner_with_the_same_tax_id_whatever_its_name(
    crossref: CrossReference,
) -> None:
    owner = a_link()
    crossref.save(owner)
    assert crossref.match(**probe_of(owner, normalized_name="another name")) == owner


def test_crossref_matches_an_owner_with_the_same_name_and_country_when_either_has_no_tax_id(
    crossref: CrossReference,
) -> None:
    with_tax_id, without_tax_id = a_link(), a_link(tax_id=None)
    crossref.save(with_tax_id)
    crossref.save(without_tax_id)
    assert crossref.match(**probe_of(with_tax_id, tax_id=None)) == with_tax_id
    assert crossref.match(**probe_of(without_tax_id, tax_id=uid("de"))) == without_tax_id
    assert crossref.match(**probe_of(without_tax_id, tax_id=None)) == without_tax_id


def test_crossref_does_not_match_the_same_name_when_both_have_different_tax_ids(
    crossref: CrossReference,
) -> None:
    owner = a_link()
    crossref.save(owner)
    assert crossref.match(**probe_of(owner, tax_id=uid("de"))) is None


def test_crossref_does_not_match_the_same_name_in_another_country(
    crossref: CrossReference,
) -> None:
    owner = a_link(tax_id=None)
    crossref.save(owner)
    assert crossref.match(**probe_of(owner, country="AT")) is None


@pytest.mark.parametrize("by", ["tax id", "name and country"])
@pytest.mark.parametrize(
    "other", [{"legal_entity": "ACME-UK"}, {"currency": "GBP"}], ids=["entity", "currency"]
)
def test_crossref_does_not_match_across_legal_entities_or_currencies(
    crossref: CrossReference, by: str, other: dict[str, str]
) -> None:
    owner = a_link(tax_id=uid("de") if by == "tax id" else None)
    crossref.save(owner)
    if by == "tax id":
        assert crossref.match(**probe_of(owner, normalized_name="another name")) == owner
        assert crossref.match(**probe_of(owner, normalized_name="another name", **other)) is None
    else:
        assert crossref.match(**probe_of(owner)) == owner
        assert crossref.match(**probe_of(owner, **other)) is None


def test_crossref_never_matches_a_linked_duplicate_only_the_owner(
    crossref: CrossReference,
) -> None:
    owner = a_link()
    crossref.save(owner)
    # A duplicate by tax id, under a name of its own: its tax id finds the owner, its name
    # alone (which only it has) finds nothing.
    by_tax_id = duplicate_of(owner, MatchRule.TAX_ID, tax_id=owner.tax_id)
    crossref.save(by_tax_id)
    assert crossref.match(**probe_of(by_tax_id)) == owner
    assert crossref.match(**probe_of(by_tax_id, tax_id=None)) is None
    # A duplicate with a tax id that only it has: that tax id finds nothing.
    by_name = duplicate_of(owner, MatchRule.NAME_COUNTRY, tax_id=uid("de"))
    crossref.save(by_name)
    assert crossref.match(**probe_of(by_name)) is None


def test_crossref_prefers_a_tax_id_match_to_a_name_match(crossref: CrossReference) -> None:
    by_name = a_link(tax_id=None)
    by_tax_id = a_link()
    crossref.save(by_name)
    crossref.save(by_tax_id)
    assert crossref.match(**probe_of(by_name, tax_id=by_tax_id.tax_id)) == by_tax_id


# --- the reference ERP's database -----------------------------------------------------------


def _entry(conn: psycopg.Connection) -> str:
    entry_id = uid("JE-TEST")
    conn.execute(
        "INSERT INTO erp.journal_entries (entry_id, idempotency_key, legal_entity, currency, "
        "description) VALUES (%s, %s, %s, %s, 'contract test')",
        (entry_id, uid("test"), ENTITY, CURRENCY),
    )
    return entry_id


def _lines(conn: psycopg.Connection, entry_id: str, *lines: tuple[int, str, str, str]) -> None:
    """Lines (line_no, account, debit, credit) of an entry, in one statement."""
    conn.execute(
        "INSERT INTO erp.journal_lines (entry_id, line_no, account_code, debit, credit) "
        "SELECT %s, * FROM unnest(%s::int[], %s::text[], %s::numeric[], %s::numeric[])",
        (
            entry_id,
            [n for n, _, _, _ in lines],
            [account for _, account, _, _ in lines],
            [Decimal(d) for _, _, d, _ in lines],
            [Decimal(c) for _, _, _, c in lines],
        ),
    )


def test_reference_erp_stores_a_balanced_journal(conn: psycopg.Connection) -> None:
    entry_id = _entry(conn)
    _lines(
        conn,
        entry_id,
        (1, "1200", "119.00", "0"),
        (2, "4000", "0", "100.00"),
        (3, "2200", "0", "19.00"),
    )
    _lines(conn, entry_id, (4, "6100", "1.00", "0"), (5, "1000", "0", "1.00"))  # appended
    row = conn.execute(
        "SELECT sum(debit), sum(credit) FROM erp.journal_lines WHERE entry_id = %s", (entry_id,)
    ).fetchone()
    assert row == (Decimal("120.00"), Decimal("120.00"))


def test_reference_erp_refuses_an_unbalanced_journal(conn: psycopg.Connection) -> None:
    entry_id = _entry(conn)
    with pytest.raises(CheckViolation, match="not balanced"), conn.transaction():
        _lines(conn, entry_id, (1, "1200", "119.00", "0"), (2, "4000", "0", "118.99"))
    with pytest.raises(CheckViolation, match="not balanced"), conn.transaction():
        _lines(conn, entry_id, (1, "1200", "119.00", "0"))  # half an entry is unbalanced too
    row = conn.execute(
        "SELECT count(*) FROM erp.journal_lines WHERE entry_id = %s", (entry_id,)
    ).fetchone()
    assert row == (0,)


def test_reference_erp_refuses_to_change_a_posted_journal(conn: psycopg.Connection) -> None:
    entry_id = _entry(conn)
    _lines(conn, entry_id, (1, "1200", "119.00", "0"), (2, "4000", "0", "119.00"))
    with pytest.raises(RaiseException, match="append-only"), conn.transaction():
        conn.execute("UPDATE erp.journal_lines SET debit = 1 WHERE entry_id = %s", (entry_id,))
    with pytest.raises(RaiseException, match="append-only"), conn.transaction():
        conn.execute("DELETE FROM erp.journal_lines WHERE entry_id = %s", (entry_id,))
    with pytest.raises(RaiseException, match="append-only"), conn.transaction():
        conn.execute("DELETE FROM erp.journal_entries WHERE entry_id = %s", (entry_id,))


def _status(conn: psycopg.Connection, invoice_id: str) -> str:
    row = conn.execute(
        "SELECT status FROM erp.ar_open_items WHERE invoice_id = %s", (invoice_id,)
    ).fetchone()
    assert row is not None
    return str(row[0])


# Each step: ("pay", applied, written off) or ("credit", amount); then the status expected.
Step = tuple[str, str, str]


@pytest.mark.parametrize(
    ("steps", "statuses"),
    [
        ([("pay", "40.00", "0"), ("pay", "60.00", "0")], ["PARTIALLY_PAID", "PAID"]),
        ([("pay", "99.97", "0.03")], ["PAID"]),
        ([("credit", "30.00", "")], ["OPEN"]),
        ([("credit", "100.00", "")], ["CREDITED"]),
        ([("pay", "40.00", "0"), ("credit", "60.00", "")], ["PARTIALLY_PAID", "PAID"]),
        ([("credit", "60.00", ""), ("pay", "40.00", "0")], ["OPEN", "PAID"]),
    ],
    ids=[
        "paid-in-two",
        "short-paid-within-tolerance",
        "partly-credited",
        "fully-credited",
        "paid-then-credited",
        "credited-then-paid",
    ],
)
def test_reference_erp_ar_status_follows_the_amounts(
    conn: psycopg.Connection, steps: list[Step], statuses: list[str]
) -> None:
    erp = ReferenceErp(conn)
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    item = posted_invoice(erp, customer.account_id, "100.00")
    assert _status(conn, item.invoice_id) == "OPEN"
    for (kind, amount, written_off), status in zip(steps, statuses, strict=True):
        if kind == "pay":
            payment = a_payment(
                customer_id,
                customer.account_id,
                item.invoice_id,
                amount,
                amount,
                written_off,
                status=PaymentStatus.PAID if status == "PAID" else PaymentStatus.PARTIALLY_PAID,
            )
            erp.apply_payment(payment, payment_journal(payment))
        else:
            money = Decimal(amount)
            erp.post_credit_memo(uid("CM"), item.invoice_id, money, credit_memo_journal(money))
        erp.flush()
        assert _status(conn, item.invoice_id) == status

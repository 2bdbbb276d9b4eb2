"""The adapters the port contract tests run on, and the test data they share.

Each port's tests are written against the port's methods only, and run once per adapter in
ERPS, BILLINGS and CROSSREFS: another adapter of the same port joins by adding an `Adapter`
there. What a port never reads back (a customer, a recorded payment, a subscription's phases)
is read through the adapter's probe, a small reader that each adapter brings along.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

import psycopg
import pytest

from finsync.adapters.crossref import CrossReferenceStore
from finsync.contract.events import BillingPeriod, PaymentStatus
from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    CASH,
    PAYMENT_FEES,
    REVENUE,
    UNAPPLIED_CASH,
    WRITE_OFF,
    Journal,
    credit,
    debit,
)
from finsync.ports.billing import Billing, BillingAccount, NewSubscription, Phase
from finsync.ports.crossref import AccountLink, CrossReference
from finsync.ports.erp import CashApplication, Customer, Erp, OpenItem
from finsync.reference.billing.adapter import ReferenceBilling
from finsync.reference.erp.adapter import ReferenceErp

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


# --- assertions -----------------------------------------------------------------------------


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


def a_synced_account(
    conn: psycopg.Connection, parent: str | None = None, **changes: Any
) -> tuple[Customer, str]:
    """A CRM account as account-sync leaves it (it is not under test): its ERP customer, its
    billing account and their cross-reference, agreeing with each other, so the books'
    customers check finds nothing. Returns the customer and its ERP id."""
    customer = a_customer(**changes)
    customer_id = ReferenceErp(conn).create_customer(customer)
    billing_account_id = ReferenceBilling(conn).create_account(
        BillingAccount(
            customer.account_id, customer.name, customer.country, customer.currency,
            customer.legal_entity, customer.email_domain, None,
        )
    )  # fmt: skip
    CrossReferenceStore(conn).save(
        AccountLink(
            customer.account_id, customer_id, billing_account_id, 1, customer.name,
            customer.name.lower(), customer.country, customer.currency, customer.legal_entity,
            parent_account_id=parent,
        )
    )  # fmt: skip
    return customer, customer_id


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

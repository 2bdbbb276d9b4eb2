"""Contract tests of the Billing port, run on each adapter in `port_support.BILLINGS`."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.errors import UniqueViolation

from finsync.contract.events import BillingPeriod
from finsync.errors import InvalidEvent
from finsync.ports.billing import Billing, BillingAccount, NewSubscription, Phase
from tests.integration.port_support import (
    COUNTRY,
    CURRENCY,
    ENTITY,
    BillingProbe,
    rejected,
    uid,
)

pytestmark = pytest.mark.integration


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


def test_billing_counts_the_subscriptions_of_accounts_with_a_phase_not_ended(
    billing: Billing,
) -> None:
    def phase(start: date, end: date) -> Phase:
        return Phase("L1", "PLAT", "Platform", Decimal(1), Decimal("10.00"),
                     BillingPeriod.MONTHLY, start, end)  # fmt: skip

    billing_account = billing.create_account(a_billing_account())
    first, second = uid("ACC"), uid("ACC")
    as_of = date(2026, 6, 15)
    for account_id, phases in [
        (first, (phase(date(2025, 1, 1), date(2026, 6, 14)),)),  # ended the day before
        (first, (phase(date(2025, 1, 1), date(2025, 12, 31)), phase(date(2026, 1, 1),
                 date(2026, 6, 15)))),  # its last phase ends that day: not ended yet
        (second, (phase(date(2026, 9, 1), date(2027, 8, 31)),)),  # not started yet
        (uid("ACC"), (phase(date(2026, 1, 1), date(2026, 12, 31)),)),  # someone else's
    ]:  # fmt: skip
        billing.create_subscription(a_subscription(billing_account, account_id, phases=phases))
    assert billing.active_subscriptions([first, second], as_of) == 2
    assert billing.active_subscriptions([first], as_of) == 1
    assert billing.active_subscriptions([first], date(2026, 6, 16)) == 0
    assert billing.active_subscriptions([uid("ACC")], as_of) == 0

"""subscription-activator's contract rule and handler, as a specification."""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from finsync.contract.events import BillingPeriod, OpportunityClosed, OpportunityLine
from finsync.errors import DependencyNotReady, InvalidEvent
from finsync.ports.crossref import AccountLink
from services.subscription_activator.contract import phases
from services.subscription_activator.handler import Systems, activate_subscription

D = Decimal
ENVELOPE = dict(occurred_at=datetime(2026, 1, 20, tzinfo=UTC), source="crm", correlation_id="c-9")


def line(
    line_id="1",
    period=BillingPeriod.MONTHLY,
    term=12,
    quantity="10",
    price="49.00",
    start=date(2026, 1, 31),
):
    return OpportunityLine(
        line_id=line_id,
        sku=f"SKU-{line_id}",
        description="Platform seat",
        quantity=D(quantity),
        unit_price=D(price),
        billing_period=period,
        start_date=start,
        term_months=term,
    )


def opportunity(lines=None, total=None, **overrides):
    lines = [line()] if lines is None else lines
    fields = dict(
        event_id=uuid.uuid4(),
        opportunity_id="OPP-1",
        account_id="A-1",
        closed_at=datetime(2026, 1, 20, tzinfo=UTC),
        currency="EUR",
        legal_entity="ACME-DE",
        lines=lines,
        total_contract_value=D("5880.00") if total is None else D(total),
        **ENVELOPE,
    )
    return OpportunityClosed(**{**fields, **overrides})


def test_each_line_becomes_a_phase_that_runs_its_term():
    [phase] = phases(opportunity())
    assert phase.line_id == "1" and phase.sku == "SKU-1"
    assert (phase.quantity, phase.unit_price) == (D("10"), D("49.00"))
    assert phase.billing_period is BillingPeriod.MONTHLY
    assert phase.start_date == date(2026, 1, 31)
    assert phase.end_date == date(2027, 1, 30)


def test_phases_follow_the_lines_in_order():
    lines = [
        line("1", BillingPeriod.ANNUAL, 24, "2", "1200.00", date(2026, 3, 1)),
        line("2", BillingPeriod.QUARTERLY, 12, "1", "300.00", date(2026, 3, 1)),
        line("3", BillingPeriod.ONE_TIME, 1, "1", "2500.00", date(2026, 3, 15)),
    ]
    # 2 x 1200 x 2 years + 300 x 4 quarters + 2500 once
    result = phases(opportunity(lines, total="8500.00"))
    assert [p.line_id for p in result] == ["1", "2", "3"]
    assert [p.end_date for p in result] == [date(2028, 2, 29), date(2027, 2, 28), date(2026, 3, 15)]


def test_a_one_time_phase_ends_on_its_start_date():
    [phase] = phases(opportunity([line(period=BillingPeriod.ONE_TIME, term=12)], total="490.00"))
    assert phase.end_date == phase.start_date == date(2026, 1, 31)


def test_the_contract_value_is_each_period_charge_rounded_times_the_periods():
    # 3 x 33.335 = 100.005 -> 100.01 a month, 12 months
    lines = [line(quantity="3", price="33.335")]
    assert phases(opportunity(lines, total="1200.12"))
    with pytest.raises(InvalidEvent):
        phases(opportunity(lines, total="1200.06"))


def test_a_contract_value_off_by_a_cent_is_rejected_with_both_amounts():
    with pytest.raises(InvalidEvent) as err:
        phases(opportunity(total="5880.01"))
    assert "5880.00 EUR" in str(err.value)
    assert "5880.01 EUR" in str(err.value)


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        ([], "no lines"),
        ([line("1"), line("1")], "duplicate line ids"),
        ([line(quantity="0")], "quantity 0"),
        ([line(quantity="-1")], "quantity -1"),
        ([line(price="-1.00")], "negative unit price"),
        ([line(term=0)], "term of 0 months"),
        ([line(period=BillingPeriod.ONE_TIME, term=0)], "term of 0 months"),
        ([line(period=BillingPeriod.ANNUAL, term=6)], "not a whole number of ANNUAL"),
        ([line(period=BillingPeriod.QUARTERLY, term=10)], "not a whole number of QUARTERLY"),
    ],
)
def test_a_contract_that_cannot_be_billed_is_rejected_with_a_reason(lines, reason):
    with pytest.raises(InvalidEvent, match=reason):
        phases(opportunity(lines))


def test_an_unknown_currency_is_rejected():
    with pytest.raises(InvalidEvent, match="unknown currency"):
        phases(opportunity(currency="EURO"))


def test_a_contract_value_finer_than_the_currency_allows_is_rejected():
    with pytest.raises(InvalidEvent, match="decimals"):
        phases(opportunity([line(price="49")], total="5880.5", currency="JPY"))


class FakeBilling:
    def __init__(self):
        self.subscriptions = []

    def create_subscription(self, subscription):
        self.subscriptions.append(subscription)
        return f"SUB-{len(self.subscriptions)}"


class FakeCrossReference:
    def __init__(self, *links):
        self.links = {x.account_id: x for x in links}

    def link(self, account_id):
        return self.links.get(account_id)


def synced_account(**overrides):
    fields = dict(
        account_id="A-1",
        erp_customer_id="C-1",
        billing_account_id="B-7",
        version=1,
        name="ACME Software",
        normalized_name="acme software",
        country="DE",
        currency="EUR",
        legal_entity="ACME-DE",
    )
    return AccountLink(**{**fields, **overrides})


def systems(*links):
    return Systems(billing=FakeBilling(), crossref=FakeCrossReference(*links))


def test_an_opportunity_for_a_synced_account_activates_one_subscription():
    s = systems(synced_account())
    event = opportunity()
    [activated] = activate_subscription(event, s)
    [created] = s.billing.subscriptions
    assert created.opportunity_id == "OPP-1"
    assert created.billing_account_id == "B-7"
    assert created.correlation_id == "c-9"
    assert (created.legal_entity, created.currency) == ("ACME-DE", "EUR")
    assert created.phases == phases(event)
    assert activated.subscription_id == "SUB-1"
    assert activated.opportunity_id == "OPP-1" and activated.account_id == "A-1"
    assert activated.billing_account_id == "B-7"
    assert activated.currency == "EUR"
    assert activated.correlation_id == "c-9"
    assert activated.causation_id == str(event.event_id)
    [phase] = activated.phases
    assert (phase.sku, phase.quantity, phase.unit_price) == ("SKU-1", D("10"), D("49.00"))
    assert (phase.start_date, phase.end_date) == (date(2026, 1, 31), date(2027, 1, 30))


def test_an_opportunity_for_an_account_not_synced_yet_waits():
    s = systems()
    with pytest.raises(DependencyNotReady, match="A-1"):
        activate_subscription(opportunity(), s)
    assert s.billing.subscriptions == []


def test_an_invalid_contract_is_rejected_before_waiting_for_its_account():
    with pytest.raises(InvalidEvent):
        activate_subscription(opportunity(total="1.00"), systems())


def test_an_opportunity_in_another_currency_than_its_account_is_rejected():
    s = systems(synced_account(currency="USD"))
    with pytest.raises(InvalidEvent, match="billed in USD"):
        activate_subscription(opportunity(), s)
    assert s.billing.subscriptions == []


def test_an_opportunity_for_another_legal_entity_than_its_account_is_rejected():
    s = systems(synced_account(legal_entity="ACME-US"))
    with pytest.raises(InvalidEvent, match="belongs to ACME-US"):
        activate_subscription(opportunity(), s)
    assert s.billing.subscriptions == []

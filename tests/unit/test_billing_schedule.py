"""When a contract line bills, and what: the calendar and money rules, as a specification."""

from datetime import date
from decimal import Decimal
from itertools import pairwise

import pytest

from finsync.contract.events import BillingPeriod
from finsync.domain.billing_schedule import (
    Period,
    add_months,
    billing_periods,
    due_invoices,
    money,
    period_charge,
    periods_in_term,
    phase_end,
)
from finsync.ports.billing import Phase

D = Decimal
MONTHLY, QUARTERLY, ANNUAL, ONE_TIME = (
    BillingPeriod.MONTHLY,
    BillingPeriod.QUARTERLY,
    BillingPeriod.ANNUAL,
    BillingPeriod.ONE_TIME,
)


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2027, 1, 31), 1, date(2027, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),
        (date(2026, 1, 31), 3, date(2026, 4, 30)),
        (date(2026, 1, 15), 1, date(2026, 2, 15)),
        (date(2026, 11, 30), 2, date(2027, 1, 30)),
        (date(2026, 12, 31), 12, date(2027, 12, 31)),
        (date(2028, 2, 29), 12, date(2029, 2, 28)),
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2026, 5, 17), 0, date(2026, 5, 17)),
    ],
)
def test_adding_months_keeps_the_day_or_clamps_to_the_months_last_day(day, months, expected):
    assert add_months(day, months) == expected


@pytest.mark.parametrize(
    ("period", "term", "count"),
    [
        (MONTHLY, 12, 12),
        (MONTHLY, 1, 1),
        (QUARTERLY, 12, 4),
        (QUARTERLY, 10, None),
        (ANNUAL, 36, 3),
        (ANNUAL, 6, None),
        (ONE_TIME, 1, 1),
        (ONE_TIME, 24, 1),
    ],
)
def test_a_line_bills_once_per_whole_billing_period_of_its_term(period, term, count):
    assert periods_in_term(period, term) == count


@pytest.mark.parametrize(
    ("start", "period", "term", "end"),
    [
        (date(2026, 1, 31), MONTHLY, 12, date(2027, 1, 30)),
        (date(2026, 1, 1), MONTHLY, 12, date(2026, 12, 31)),
        (date(2026, 3, 1), ANNUAL, 24, date(2028, 2, 29)),
        (date(2026, 2, 1), QUARTERLY, 3, date(2026, 4, 30)),
        (date(2026, 3, 15), ONE_TIME, 12, date(2026, 3, 15)),
    ],
)
def test_a_phase_ends_the_day_before_its_term_is_over(start, period, term, end):
    assert phase_end(start, period, term) == end


def test_monthly_periods_from_a_months_last_day_follow_the_calendar():
    periods = billing_periods(MONTHLY, date(2026, 1, 31), date(2027, 1, 30), date(2026, 3, 31))
    assert periods == [
        Period(date(2026, 1, 31), date(2026, 2, 27)),
        Period(date(2026, 2, 28), date(2026, 3, 30)),
        Period(date(2026, 3, 31), date(2026, 4, 29)),
    ]


def test_a_whole_term_has_as_many_periods_as_it_bills():
    start, end = date(2026, 1, 31), date(2027, 1, 30)
    periods = billing_periods(MONTHLY, start, end, date(2030, 1, 1))
    assert len(periods) == periods_in_term(MONTHLY, 12) == 12
    assert periods[-1] == Period(date(2026, 12, 31), date(2027, 1, 30))
    assert all((b.start - a.end).days == 1 for a, b in pairwise(periods))


def test_quarterly_and_annual_periods():
    quarters = billing_periods(QUARTERLY, date(2026, 1, 1), date(2026, 12, 31), date(2026, 12, 31))
    assert [(p.start, p.end) for p in quarters] == [
        (date(2026, 1, 1), date(2026, 3, 31)),
        (date(2026, 4, 1), date(2026, 6, 30)),
        (date(2026, 7, 1), date(2026, 9, 30)),
        (date(2026, 10, 1), date(2026, 12, 31)),
    ]
    years = billing_periods(ANNUAL, date(2026, 3, 1), date(2028, 2, 29), date(2030, 1, 1))
    assert years == [
        Period(date(2026, 3, 1), date(2027, 2, 28)),
        Period(date(2027, 3, 1), date(2028, 2, 29)),
    ]


def test_only_periods_starting_on_or_before_the_as_of_date_bill():
    start, end = date(2026, 1, 1), date(2026, 12, 31)
    assert billing_periods(MONTHLY, start, end, date(2025, 12, 31)) == []
    assert [p.start for p in billing_periods(MONTHLY, start, end, date(2026, 1, 1))] == [start]
    assert len(billing_periods(MONTHLY, start, end, date(2026, 2, 28))) == 2
    assert len(billing_periods(MONTHLY, start, end, date(2026, 3, 1))) == 3


def test_the_last_period_ends_with_the_phase():
    periods = billing_periods(MONTHLY, date(2026, 1, 1), date(2026, 2, 15), date(2026, 12, 31))
    assert periods == [
        Period(date(2026, 1, 1), date(2026, 1, 31)),
        Period(date(2026, 2, 1), date(2026, 2, 15)),
    ]


def test_a_one_time_charge_bills_once_on_its_start_date_with_no_service_period():
    day = date(2026, 3, 15)
    assert billing_periods(ONE_TIME, day, day, date(2026, 3, 14)) == []
    assert billing_periods(ONE_TIME, day, day, day) == [Period(day, None)]
    assert billing_periods(ONE_TIME, day, day, date(2030, 1, 1)) == [Period(day, None)]


def test_money_rounds_half_up_to_the_currencys_minor_units():
    assert money(D("0.725"), "EUR") == D("0.73")
    assert money(D("1000.5"), "JPY") == D("1001")
    assert money(D("2.0005"), "KWD") == D("2.001")
    assert period_charge(D("3"), D("33.335"), "EUR") == D("100.01")
    assert str(period_charge(D("2"), D("49"), "EUR")) == "98.00"


def phase(phase_no, period, start, end, quantity="1", price="100.00", description=None):
    """A numbered phase, as billing stores it."""
    return phase_no, Phase(
        line_id=str(phase_no),
        sku=f"SKU-{phase_no}",
        description=description or f"Phase {phase_no}",
        quantity=D(quantity),
        unit_price=D(price),
        billing_period=period,
        start_date=start,
        end_date=end,
    )


def test_charges_starting_on_the_same_day_are_one_invoice():
    phases = [
        phase(1, MONTHLY, date(2026, 1, 1), date(2026, 12, 31), "10", "49.00", "Seats"),
        phase(2, ONE_TIME, date(2026, 1, 1), date(2026, 1, 1), "1", "2500.00", "Onboarding"),
        phase(3, QUARTERLY, date(2026, 2, 1), date(2027, 1, 31), "1", "300.00", "Support"),
    ]
    drafts = due_invoices(phases, "EUR", D("0.19"), as_of=date(2026, 3, 1))
    assert [d.billing_date for d in drafts] == [
        date(2026, 1, 1),
        date(2026, 2, 1),
        date(2026, 3, 1),
    ]
    assert [[c.phase_no for c in d.charges] for d in drafts] == [[1, 2], [1, 3], [1]]
    january = drafts[0]
    assert [c.amount for c in january.charges] == [D("490.00"), D("2500.00")]
    assert january.subtotal == D("2990.00")
    assert january.tax_total == D("93.10") + D("475.00")
    seats, onboarding = january.charges
    assert seats.description == "Seats (2026-01-01 to 2026-01-31)"
    assert seats.period == Period(date(2026, 1, 1), date(2026, 1, 31))
    assert onboarding.description == "Onboarding"
    assert onboarding.period == Period(date(2026, 1, 1), None)
    support = drafts[1].charges[1]
    assert support.period == Period(date(2026, 2, 1), date(2026, 4, 30))


def test_line_ids_number_each_invoices_charges_from_one_in_phase_order():
    phases = [
        phase(3, MONTHLY, date(2026, 1, 1), date(2026, 12, 31)),
        phase(1, MONTHLY, date(2026, 1, 1), date(2026, 12, 31)),
        phase(2, MONTHLY, date(2026, 2, 1), date(2026, 12, 31)),
    ]
    drafts = due_invoices(phases, "EUR", D(0), as_of=date(2026, 2, 1))
    assert [[(c.line_id, c.phase_no) for c in d.charges] for d in drafts] == [
        [("1", 1), ("2", 3)],
        [("1", 1), ("2", 2), ("3", 3)],
    ]


def test_periods_already_billed_are_not_billed_again():
    phases = [
        phase(1, MONTHLY, date(2026, 1, 1), date(2026, 12, 31)),
        phase(2, MONTHLY, date(2026, 1, 1), date(2026, 12, 31)),
    ]
    billed = {(1, date(2026, 1, 1)), (2, date(2026, 1, 1)), (1, date(2026, 2, 1))}
    drafts = due_invoices(phases, "EUR", D(0), as_of=date(2026, 2, 1), billed=billed)
    assert [(d.billing_date, [c.phase_no for c in d.charges]) for d in drafts] == [
        (date(2026, 2, 1), [2]),
    ]
    assert drafts[0].charges[0].line_id == "1"
    all_billed = billed | {(2, date(2026, 2, 1))}
    assert due_invoices(phases, "EUR", D(0), date(2026, 2, 1), all_billed) == []


def test_nothing_is_due_before_the_first_period_starts():
    phases = [phase(1, MONTHLY, date(2026, 1, 1), date(2026, 12, 31))]
    assert due_invoices(phases, "EUR", D("0.19"), as_of=date(2025, 12, 31)) == []


def test_amounts_and_tax_are_rounded_half_up_per_charge():
    phases = [
        phase(1, MONTHLY, date(2026, 1, 1), date(2026, 12, 31), "3", "33.335"),
        phase(2, MONTHLY, date(2026, 1, 1), date(2026, 12, 31), "1", "14.50"),
    ]
    [draft] = due_invoices(phases, "EUR", D("0.05"), as_of=date(2026, 1, 1))
    assert [c.amount for c in draft.charges] == [D("100.01"), D("14.50")]
    # 100.01 x 5% = 5.0005 -> 5.00; 14.50 x 5% = 0.725 -> 0.73 (half even would give 0.72)
    assert [c.tax_amount for c in draft.charges] == [D("5.00"), D("0.73")]
    assert draft.tax_total == D("5.73")  # the sum of rounded taxes, not the tax of the sum


def test_yen_charges_have_no_decimals():
    phases = [phase(1, ANNUAL, date(2026, 1, 1), date(2027, 12, 31), "3", "333.5")]
    drafts = due_invoices(phases, "JPY", D("0.10"), as_of=date(2027, 1, 1))
    assert [d.billing_date for d in drafts] == [date(2026, 1, 1), date(2027, 1, 1)]
    for d in drafts:
        [charge] = d.charges
        assert str(charge.amount) == "1001"  # 1000.5 rounded half up
        assert str(charge.tax_amount) == "100"  # 100.1


def test_a_free_line_bills_nothing_and_a_free_subscription_no_invoice():
    free = phase(1, BillingPeriod.MONTHLY, date(2026, 1, 1), date(2026, 12, 31), price="0.00")
    paid = phase(2, BillingPeriod.ONE_TIME, date(2026, 1, 1), date(2026, 1, 1))
    [invoice] = due_invoices([free, paid], "EUR", Decimal("0.19"), date(2026, 3, 15))
    assert [c.phase_no for c in invoice.charges] == [2]
    assert due_invoices([free], "EUR", Decimal("0.19"), date(2026, 3, 15)) == []

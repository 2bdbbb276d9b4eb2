"""Revenue schedules and credit-memo splits (finsync.domain.revenue), with exact figures."""

import random
from datetime import date, timedelta
from decimal import Decimal

import pytest

from finsync.domain.revenue import (
    ScheduleRow,
    last_closed_month,
    schedule,
    split_credit,
)

D = Decimal


def amounts(rows):
    return [str(r.amount) for r in rows]


def months(rows):
    return [f"{r.period:%Y-%m}" for r in rows]


def test_a_calendar_year_is_earned_by_day_not_in_twelve_equal_parts():
    rows = schedule(D("1200.00"), "EUR", date(2026, 1, 1), date(2026, 12, 31))
    assert months(rows) == [f"2026-{m:02d}" for m in range(1, 13)]
    assert amounts(rows) == [
        "101.92", "92.05", "101.92", "98.63", "101.92", "98.63",
        "101.92", "101.91", "98.63", "101.92", "98.63", "101.92",
    ]  # fmt: skip
    assert sum(r.amount for r in rows) == D("1200.00")
    assert all(r.period.day == 1 for r in rows)


def test_a_year_from_the_second_of_january_touches_thirteen_months():
    rows = schedule(D("1200.00"), "EUR", date(2026, 1, 2), date(2027, 1, 1))
    assert months(rows)[0] == "2026-01" and months(rows)[-1] == "2027-01"
    assert amounts(rows) == [
        "98.63", "92.05", "101.92", "98.63", "101.92", "98.63", "101.92",
        "101.92", "98.63", "101.91", "98.63", "101.92", "3.29",
    ]  # fmt: skip
    assert sum(r.amount for r in rows) == D("1200.00")


def test_an_annual_line_from_mid_january_has_partial_first_and_last_months():
    rows = schedule(D("1200.00"), "EUR", date(2026, 1, 15), date(2027, 1, 14))
    assert len(rows) == 13
    assert amounts(rows) == [
        "55.89", "92.06", "101.91", "98.63", "101.92", "98.63", "101.92",
        "101.92", "98.63", "101.91", "98.63", "101.92", "46.03",
    ]  # fmt: skip
    assert sum(r.amount for r in rows) == D("1200.00")


def test_a_leap_year_counts_the_twenty_ninth_of_february():
    rows = schedule(D("1200.00"), "EUR", date(2028, 1, 1), date(2028, 12, 31))
    assert amounts(rows)[:3] == ["101.64", "95.08", "101.64"]  # 31, 29, 31 of 366 days
    assert sum(r.amount for r in rows) == D("1200.00")
    across = schedule(D("290.00"), "EUR", date(2028, 2, 15), date(2028, 3, 14))
    assert amounts(across) == ["150.00", "140.00"]  # 15 and 14 days at 10.00 a day


def test_a_one_day_period_is_one_row_of_the_whole_amount():
    rows = schedule(D("75.50"), "EUR", date(2026, 3, 31), date(2026, 3, 31))
    assert rows == (ScheduleRow(date(2026, 3, 1), D("75.50")),)


def test_any_period_has_one_row_per_month_it_touches_each_by_its_days():
    rng = random.Random(13)
    for _ in range(2000):
        start = date(2023, 1, 1) + timedelta(days=rng.randint(0, 1500))
        end = start + timedelta(days=rng.choice([0, 1, 27, 30, 31, 59, 364, 365, 366, 1096]))
        cents = rng.randint(0, 10**9)
        rows = schedule(D(cents).scaleb(-2), "USD", start, end)
        expected, month = [], start.replace(day=1)
        while month <= end:
            expected.append(month)
            month = (month + timedelta(days=32)).replace(day=1)
        assert [r.period for r in rows] == expected, (start, end)
        assert sum(r.amount for r in rows) == D(cents).scaleb(-2)
        # Cumulatively rounded by day: through each month, within half a cent of its share.
        done, days = D(0), 0
        for r in rows:
            done += r.amount
            days += (min(calendar_end(r.period), end) - max(r.period, start)).days + 1
            share = D(cents).scaleb(-2) * days / ((end - start).days + 1)
            assert abs(done - share) <= D("0.005"), (start, end, r)


def calendar_end(month: date) -> date:
    return (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def test_yen_rows_are_whole_yen_and_add_up():
    rows = schedule(D("100000"), "JPY", date(2026, 1, 15), date(2027, 1, 14))
    assert amounts(rows) == [
        "4658", "7671", "8493", "8219", "8493", "8219", "8494",
        "8493", "8219", "8493", "8219", "8493", "3836",
    ]  # fmt: skip
    assert sum(r.amount for r in rows) == D("100000")


def test_dinar_rows_carry_three_decimals_and_add_up():
    rows = schedule(D("1000.000"), "KWD", date(2026, 1, 15), date(2027, 1, 14))
    assert amounts(rows) == [
        "46.575", "76.713", "84.931", "82.192", "84.931", "82.192", "84.932",
        "84.931", "82.192", "84.932", "82.191", "84.932", "38.356",
    ]  # fmt: skip
    # Ten fils over a year: whole fils, some months none, still exactly ten.
    tiny = schedule(D("0.010"), "KWD", date(2026, 1, 15), date(2027, 1, 14))
    assert amounts(tiny) == [
        "0.000", "0.001", "0.001", "0.001", "0.001", "0.001", "0.000",
        "0.001", "0.001", "0.001", "0.001", "0.001", "0.000",
    ]  # fmt: skip
    assert sum(r.amount for r in tiny) == D("0.010")


def test_a_schedule_refuses_what_it_cannot_hold():
    with pytest.raises(ValueError, match="before it starts"):
        schedule(D("10.00"), "EUR", date(2026, 2, 1), date(2026, 1, 31))
    with pytest.raises(ValueError, match="negative"):
        schedule(D("-10.00"), "EUR", date(2026, 1, 1), date(2026, 1, 31))
    with pytest.raises(ValueError, match="decimals"):
        schedule(D("10.5"), "JPY", date(2026, 1, 1), date(2026, 1, 31))


@pytest.mark.parametrize(
    ("through", "month"),
    [
        (date(2026, 3, 31), date(2026, 3, 1)),
        (date(2026, 3, 30), date(2026, 2, 1)),
        (date(2026, 1, 1), date(2025, 12, 1)),
        (date(2028, 2, 29), date(2028, 2, 1)),
    ],
)
def test_the_last_month_a_run_may_release_is_the_last_that_has_ended(through, month):
    assert last_closed_month(through) == month


# --- credit memos -----------------------------------------------------------------------------

YEAR = schedule(D("1200.00"), "EUR", date(2026, 1, 1), date(2026, 12, 31))


def test_crediting_a_whole_line_after_one_month_released_splits_at_the_release():
    unreleased = YEAR[1:]  # January released: 101.92 recognised
    split = split_credit(D("1200.00"), D("1200.00"), unreleased, "EUR")
    assert (split.revenue, split.deferred) == (D("101.92"), D("1098.08"))
    assert split.cancelled == unreleased  # every unreleased month in full


def test_a_partial_credit_takes_from_both_in_proportion_and_cancels_pro_rata():
    unreleased = YEAR[1:]
    split = split_credit(D("300.00"), D("1200.00"), unreleased, "EUR")
    assert (split.revenue, split.deferred) == (D("25.48"), D("274.52"))
    assert amounts(split.cancelled) == [
        "23.01", "25.48", "24.66", "25.48", "24.66", "25.48",
        "25.48", "24.65", "25.48", "24.66", "25.48",
    ]  # fmt: skip
    assert sum(r.amount for r in split.cancelled) == split.deferred
    assert all(c.amount <= r.amount for c, r in zip(split.cancelled, unreleased, strict=True))

    # The rest of the line later: all that is left, so whatever is still deferred is cancelled,
    # and revenue gets back exactly what January released.
    pairs = zip(unreleased, split.cancelled, strict=True)
    left = [ScheduleRow(r.period, r.amount - c.amount) for r, c in pairs]
    rest = split_credit(D("900.00"), D("900.00"), left, "EUR")
    assert (rest.revenue, rest.deferred) == (D("76.44"), D("823.56"))
    assert split.revenue + rest.revenue == D("101.92")


def test_a_partial_credit_in_yen_rounds_to_whole_yen():
    line = schedule(D("100000"), "JPY", date(2026, 1, 15), date(2027, 1, 14))
    split = split_credit(D("33333"), D("100000"), line[1:], "JPY")
    assert (split.revenue, split.deferred) == (D("1553"), D("31780"))
    assert amounts(split.cancelled) == [
        "2557", "2831", "2739", "2831", "2740", "2831",
        "2831", "2740", "2831", "2739", "2831", "1279",
    ]  # fmt: skip


def test_a_line_without_schedule_is_credited_from_revenue_alone():
    split = split_credit(D("40.00"), D("100.00"), (), "EUR")
    assert (split.revenue, split.deferred, split.cancelled) == (D("40.00"), D(0), ())
    split = split_credit(D("-5.00"), D("-5.00"), (), "EUR")  # a discount line, credited back
    assert (split.revenue, split.deferred, split.cancelled) == (D("-5.00"), D(0), ())


def test_a_fully_released_line_is_credited_from_revenue():
    split = split_credit(D("600.00"), D("1200.00"), (), "EUR")
    assert (split.revenue, split.deferred, split.cancelled) == (D("600.00"), D(0), ())

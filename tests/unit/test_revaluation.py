"""Revaluation of open foreign AR: the unrealised difference on 1210 / 7300, reversed on the
first day of the next period."""

from datetime import date
from decimal import Decimal as D

from finsync.domain.revaluation import journals, key, next_period, revalue


def lines(journal):
    return [
        (x.account_code, x.debit, x.credit, x.functional_debit, x.functional_credit, x.rate)
        for x in journal.lines
    ]


def test_open_eur_ar_worth_more_at_the_period_end_is_an_unrealised_gain_reversed_next_day():
    # 1,000.00 EUR booked at 0.8555 (855.50) and 100.01 at 0.85 (85.01); 0.86 on 31 March.
    r = revalue(
        "ACME-UK", "EUR", "GBP", date(2310, 3, 31), D("0.86"),
        [(D("1000.00"), D("855.50")), (D("100.01"), D("85.01"))],
    )  # fmt: skip
    assert (r.items, r.open_amount, r.booked, r.revalued) == (
        2, D("1100.01"), D("940.51"), D("946.01"),  # 946.0086
    )  # fmt: skip
    assert r.difference == D("5.50")
    booked, reversal = journals(r)
    assert (booked.key, booked.currency, booked.accounting_date) == (
        "fx-revaluation:ACME-UK:EUR:2310-03-31", "EUR", date(2310, 3, 31),
    )  # fmt: skip
    assert lines(booked) == [
        ("1210", D(0), D(0), D("5.50"), D(0), None),
        ("7300", D(0), D(0), D(0), D("5.50"), None),
    ]
    assert (reversal.key, reversal.accounting_date) == (
        "fx-revaluation-reversal:ACME-UK:EUR:2310-03-31", date(2310, 4, 1),
    )  # fmt: skip
    assert lines(reversal) == [
        ("1210", D(0), D(0), D(0), D("5.50"), None),
        ("7300", D(0), D(0), D("5.50"), D(0), None),
    ]


def test_a_fall_in_the_rate_is_an_unrealised_loss_and_no_difference_posts_nothing():
    r = revalue(
        "ACME-UK", "EUR", "GBP", date(2310, 12, 31), D("0.80"), [(D("1000.00"), D("855.50"))]
    )
    assert r.difference == D("-55.50")
    booked, reversal = journals(r)
    assert lines(booked) == [
        ("1210", D(0), D(0), D(0), D("55.50"), None),
        ("7300", D(0), D(0), D("55.50"), D(0), None),
    ]
    assert reversal.accounting_date == date(2311, 1, 1)  # December into January
    same = revalue(
        "ACME-UK", "EUR", "GBP", date(2310, 1, 31), D("0.8555"), [(D("1000.00"), D("855.50"))]
    )
    assert journals(same) is None
    assert key(same) == "fx-revaluation:ACME-UK:EUR:2310-01-31"


def test_the_next_period_starts_on_the_first_of_the_next_month():
    assert next_period(date(2026, 2, 28)) == date(2026, 3, 1)
    assert next_period(date(2026, 12, 31)) == date(2027, 1, 1)

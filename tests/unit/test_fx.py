"""FX rules: which rate a journal uses, and its lines in the functional currency."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from finsync.contract.events import JournalLine
from finsync.domain.accounting import Journal, credit, debit, reverse
from finsync.domain.fx import Rate, convert, find, inverse, lookup, missing_rate
from finsync.domain.fx_rates_file import RatesInvalid, parse

RATES = [
    Rate(date(2026, 1, 1), "EUR", "USD", D("1.0837")),
    Rate(date(2026, 2, 1), "EUR", "USD", D("1.0912")),
    Rate(date(2026, 1, 1), "USD", "JPY", D("156.25")),
]


def test_the_rate_of_the_latest_date_on_or_before_the_journal():
    assert lookup(RATES, "EUR", "USD", date(2026, 1, 31)) == D("1.0837")
    assert lookup(RATES, "EUR", "USD", date(2026, 2, 1)) == D("1.0912")
    assert lookup(RATES, "EUR", "USD", date(2027, 6, 30)) == D("1.0912")


def test_the_inverse_when_only_the_other_direction_is_loaded():
    assert lookup(RATES, "USD", "EUR", date(2026, 1, 15)) == D("0.9227646027")  # 0.92276460274…
    assert lookup(RATES, "JPY", "USD", date(2026, 3, 1)) == D("0.0064")
    assert inverse(D("156.25")) == D("0.0064000000")
    quote = find(RATES, "USD", "EUR", date(2026, 2, 3))
    assert quote is not None and quote.source == RATES[1]  # the row it came from


def test_the_direct_rate_wins_over_an_inverse_of_the_same_date():
    rates = [*RATES, Rate(date(2026, 1, 1), "USD", "EUR", D("0.9"))]
    assert lookup(rates, "USD", "EUR", date(2026, 1, 15)) == D("0.9")


def test_a_fresher_inverse_wins_over_a_stale_direct_rate():
    rates = [*RATES, Rate(date(2026, 1, 1), "USD", "EUR", D("0.9"))]
    # EUR->USD was loaded for February, USD->EUR only for January: February's, inverted.
    assert lookup(rates, "USD", "EUR", date(2026, 2, 15)) == D("0.9164222874")


def test_the_same_currency_is_one_and_a_missing_rate_is_none():
    assert lookup([], "JPY", "JPY", date(2020, 1, 1)) == 1
    assert find([], "JPY", "JPY", date(2020, 1, 1)).source is None  # type: ignore[union-attr]
    assert lookup(RATES, "EUR", "USD", date(2025, 12, 31)) is None  # only later rates
    assert lookup(RATES, "GBP", "USD", date(2026, 6, 1)) is None
    assert missing_rate("GBP", "USD", date(2026, 6, 1)) == (
        "no FX rate GBP->USD (or USD->GBP) on or before 2026-06-01: load one with "
        "`finsync erp rates load FILE`"
    )


def _functional(lines: tuple[JournalLine, ...]) -> list[tuple[str, D, D, D | None]]:
    return [(x.account_code, x.functional_debit, x.functional_credit, x.rate) for x in lines]  # type: ignore[misc]


def test_each_line_is_converted_and_rounded_to_the_functional_minor_units():
    lines = (debit("1200", D("119.00")), credit("4000", D("100.00")), credit("2200", D("19.00")))
    assert _functional(convert(lines, "USD", D("1.0837"))) == [
        ("1200", D("128.96"), D(0), D("1.0837")),  # 128.9603
        ("4000", D(0), D("108.37"), D("1.0837")),
        ("2200", D(0), D("20.59"), D("1.0837")),  # 20.5903
    ]


def test_the_rounding_residual_goes_to_the_largest_line():
    lines = (
        debit("1200", D("100.00")),
        credit("4000", D("33.33")),
        credit("4000", D("33.33")),
        credit("2200", D("33.34")),
    )
    # 49.995 and 49.995 round to 50.00 each, 50.01: credits 150.01 against 150.00.
    assert _functional(convert(lines, "USD", D("1.5"))) == [
        ("1200", D("150.01"), D(0), D("1.5")),
        ("4000", D(0), D("50.00"), D("1.5")),
        ("4000", D(0), D("50.00"), D("1.5")),
        ("2200", D(0), D("50.01"), D("1.5")),
    ]


def test_a_zero_decimal_functional_currency_balances_too():
    lines = (debit("1200", D("0.03")), *(credit("4000", D("0.01")) for _ in range(3)))
    booked = convert(lines, "JPY", D(150))
    # 4.5 -> 4 and 1.5 -> 2 three times (half to even): the debit takes the 2 yen.
    assert (
        _functional(booked) == [("1200", D(6), D(0), D(150))] + [("4000", D(0), D(2), D(150))] * 3
    )


def test_the_same_currency_books_at_rate_one():
    lines = (debit("1000", D("50.00")), credit("1200", D("50.00")))
    assert _functional(convert(lines, "EUR", D(1))) == [
        ("1000", D("50.00"), D(0), D(1)),
        ("1200", D(0), D("50.00"), D(1)),
    ]


def _carried_ar(amount: D, rate: D) -> JournalLine:
    return credit("1200", amount).model_copy(update={"rate": rate})


def test_a_carried_rate_that_relieves_less_than_the_cash_is_worth_is_a_loss():
    # AR booked at 1.10, the cash arrives at 1.05: 1050.00 USD for 1100.00 USD of AR.
    lines = (debit("1000", D("1000.00")), _carried_ar(D("1000.00"), D("1.10")))
    assert _functional(convert(lines, "USD", D("1.05"))) == [
        ("1000", D("1050.00"), D(0), D("1.05")),
        ("1200", D(0), D("1100.00"), D("1.10")),
        ("7200", D("50.00"), D(0), None),
    ]


def test_a_carried_rate_below_the_days_rate_is_a_gain_and_fees_convert_at_the_day():
    lines = (
        debit("1000", D("970.00")),
        debit("6100", D("30.00")),
        _carried_ar(D("1000.00"), D("1.10")),
    )
    # 970 x 1.1533 = 1118.701, 30 x 1.1533 = 34.599: 1118.70 + 34.60 = 1153.30 exactly.
    assert _functional(convert(lines, "USD", D("1.1533"))) == [
        ("1000", D("1118.70"), D(0), D("1.1533")),
        ("6100", D("34.60"), D(0), D("1.1533")),
        ("1200", D(0), D("1100.00"), D("1.10")),
        ("7100", D(0), D("53.30"), None),
    ]


def test_a_line_with_its_own_functional_amounts_keeps_them():
    fx_only = JournalLine(
        account_code="7200", debit=D(0), credit=D(0), functional_debit=D("3.00"), rate=None
    )
    lines = (debit("1000", D("10.00")), credit("1200", D("10.00")), fx_only)
    booked = convert(lines, "USD", D(2))
    assert _functional(booked)[2] == ("7200", D("3.00"), D(0), None)
    assert _functional(booked)[3] == ("7100", D(0), D("3.00"), None)  # it unbalanced them


def test_a_journal_keeps_a_line_with_only_a_functional_amount():
    fx_only = JournalLine(account_code="7100", debit=D(0), credit=D(0), functional_credit=D(1))
    journal = Journal(
        "k", "ACME-US", "EUR", "fx", (debit("1000", D(1)), credit("1200", D(1)), fx_only)
    )
    assert len(journal.lines) == 3
    [back] = reverse([fx_only])
    assert (back.functional_debit, back.functional_credit) == (D(1), None)


def test_a_rates_file_loads_every_rate():
    text = "date,from,to,rate\n2026-01-01,EUR,USD,1.0837\n\n2026-01-01,USD,JPY,156.25\n"
    assert parse(text) == [RATES[0], RATES[2]]


def test_a_bad_rates_file_lists_every_problem():
    text = (
        "date,from,to,rate\n"
        "2026-13-01,EUR,USD,1.08\n"
        "2026-01-01,EUR,XXX,-1\n"
        "2026-01-01,EUR,EUR,1\n"
        "2026-01-01,EUR,USD,1.12345678901\n"
        "2026-02-01,EUR,USD,abc\n"
        "2026-03-01,EUR,USD,1.1\n"
        "2026-03-01,EUR,USD,1.2\n"
        "2026-04-01,EUR\n"
    )
    with pytest.raises(RatesInvalid) as caught:
        parse(text)
    assert caught.value.errors == [
        "line 2: date '2026-13-01' is not a date (YYYY-MM-DD)",
        "line 3: to currency 'XXX' is not one finsync books",
        "line 3: rate -1 must be a positive number",
        "line 4: a rate from EUR to itself is always 1",
        "line 5: rate 1.12345678901 has more than 10 decimals",
        "line 6: rate 'abc' is not a number",
        "line 8: EUR->USD on 2026-03-01 is already on line 7",
        "line 9: 2 fields, expected 4 (date,from,to,rate)",
    ]


def test_a_rates_file_needs_its_header():
    with pytest.raises(RatesInvalid, match="line 1: the header must be date,from,to,rate"):
        parse("day,from,to,rate\n2026-01-01,EUR,USD,1\n")


def test_the_sample_rates_file_parses_and_covers_every_pair_each_month():
    from finsync.reference.erp.fx import SAMPLE

    rates = parse(SAMPLE.read_text(encoding="utf-8"))
    assert len(rates) == 36 * 6  # 2025-01..2027-12, six pairs
    for a, b in [("USD", "EUR"), ("GBP", "USD"), ("JPY", "EUR"), ("GBP", "JPY")]:
        assert lookup(rates, a, b, date(2025, 1, 1)) is not None
        assert lookup(rates, a, b, date(2027, 12, 31)) is not None

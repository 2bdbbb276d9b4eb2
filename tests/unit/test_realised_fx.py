"""Realised FX: AR relieved at the invoice's booked rate, the difference to 7100 / 7200."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from finsync.domain import fx
from finsync.domain.accounting import credit, debit
from finsync.domain.realised_fx import (
    BookedAr,
    Relief,
    carry_rate,
    functional_relief,
    relieve_at_booked_rates,
)

# ACME-UK books in GBP; an invoice of 1,000.00 EUR booked at 0.85: 850.00 GBP of AR.
INVOICE = BookedAr("INV-1", "GBP", D("0.85"), D("1000.00"), D("850.00"))


def _booked(lines: tuple[object, ...]) -> list[tuple[object, ...]]:
    return [
        (x.account_code, x.debit, x.credit, x.functional_debit, x.functional_credit, x.rate)  # type: ignore[attr-defined]
        for x in lines
    ]


def _pay(amount: str, booked: BookedAr, rate: str, fee: str = "0") -> list[tuple[object, ...]]:
    lines = (
        debit("1000", D(amount) - D(fee)),
        debit("6100", D(fee)),
        credit("1200", D(amount)),
    )
    lines = tuple(x for x in lines if x.debit or x.credit)
    carried = relieve_at_booked_rates(
        lines, [Relief(booked.invoice_id, D(amount))], {"INV-1": booked}
    )
    return _booked(fx.convert(carried, "GBP", D(rate)))


def test_a_payment_at_a_higher_rate_relieves_ar_at_the_booked_rate_and_books_a_gain() -> None:
    assert _pay("1000.00", INVOICE, "0.86") == [
        ("1000", D("1000.00"), D(0), D("860.00"), D(0), D("0.86")),
        ("1200", D(0), D("1000.00"), D(0), D("850.00"), D("0.85")),
        ("7100", D(0), D(0), D(0), D("10.00"), None),
    ]


def test_a_payment_at_a_lower_rate_books_a_loss_and_its_fee_at_the_days_rate() -> None:
    assert _pay("1000.00", INVOICE, "0.84", fee="20.00") == [
        ("1000", D("980.00"), D(0), D("823.20"), D(0), D("0.84")),
        ("6100", D("20.00"), D(0), D("16.80"), D(0), D("0.84")),
        ("1200", D(0), D("1000.00"), D(0), D("850.00"), D("0.85")),
        ("7200", D(0), D(0), D("10.00"), D(0), None),
    ]


def test_partial_payments_relieve_their_share_and_the_last_clears_what_is_open() -> None:
    # 100.01 EUR at 0.8555 is 85.558555: the invoice's journal booked 85.56 GBP of AR.
    invoice = BookedAr("INV-1", "GBP", D("0.8555"), D("100.01"), D("85.56"))
    assert functional_relief(D("50.00"), invoice) == D("42.78")  # 42.775, half to even
    assert _pay("50.00", invoice, "0.86") == [
        ("1000", D("50.00"), D(0), D("43.00"), D(0), D("0.86")),
        ("1200", D(0), D("50.00"), D(0), D("42.78"), D("0.8555")),
        ("7100", D(0), D(0), D(0), D("0.22"), None),
    ]
    rest = BookedAr("INV-1", "GBP", D("0.8555"), D("50.01"), D("42.78"))
    # 50.01 x 0.8555 would be 42.78 too; what clears takes exactly what is open.
    assert functional_relief(D("50.01"), rest) == D("42.78")
    assert _pay("50.01", rest, "0.80") == [
        ("1000", D("50.01"), D(0), D("40.01"), D(0), D("0.80")),  # 40.008
        ("1200", D(0), D("50.01"), D(0), D("42.78"), D("0.8555")),
        ("7200", D(0), D(0), D("2.77"), D(0), None),
    ]


def test_the_clearing_relief_takes_the_open_functional_amount_not_its_rounded_share() -> None:
    # The invoice's AR line absorbed its journal's rounding: 33.34 GBP, not 33.33 x 1 rounded.
    invoice = BookedAr("INV-1", "GBP", D("0.3333333333"), D("100.00"), D("33.34"))
    assert functional_relief(D("100.00"), invoice) == D("33.34")
    assert functional_relief(D("99.99"), invoice) == D("33.33")


def test_several_invoices_each_carry_their_rate_and_home_currency_ones_stay_one_line() -> None:
    lines = (debit("1000", D("300.00")), credit("1200", D("250.00")), credit("2100", D("50.00")))
    other = BookedAr("INV-2", "GBP", D("0.90"), D("100.00"), D("90.00"))
    carried = relieve_at_booked_rates(
        lines,
        [Relief("INV-1", D("100.00")), Relief("INV-2", D("100.00")), Relief("INV-3", D("50.00"))],
        {"INV-1": INVOICE, "INV-2": other},  # INV-3 is not foreign
    )
    assert _booked(fx.convert(carried, "GBP", D("0.88"))) == [
        ("1000", D("300.00"), D(0), D("264.00"), D(0), D("0.88")),
        ("1200", D(0), D("100.00"), D(0), D("85.00"), D("0.85")),  # of 850.00 at 0.85
        ("1200", D(0), D("100.00"), D(0), D("90.00"), D("0.90")),  # all of INV-2
        ("1200", D(0), D("50.00"), D(0), D("44.00"), D("0.88")),
        ("2100", D(0), D("50.00"), D(0), D("44.00"), D("0.88")),
        ("7100", D(0), D(0), D(0), D("1.00"), None),  # 264.00 in, 263.00 relieved
    ]


def test_invoices_in_the_functional_currency_leave_the_journal_as_it_was() -> None:
    lines = (debit("1000", D("100.00")), credit("1200", D("100.00")))
    assert relieve_at_booked_rates(lines, [Relief("INV-9", D("100.00"))], {}) == lines
    assert _booked(fx.convert(lines, "GBP", D(1))) == [
        ("1000", D("100.00"), D(0), D("100.00"), D(0), D(1)),
        ("1200", D(0), D("100.00"), D(0), D("100.00"), D(1)),
    ]


def test_relieving_more_than_the_journal_credits_to_ar_is_refused() -> None:
    lines = (debit("1000", D("10.00")), credit("1200", D("10.00")))
    with pytest.raises(ValueError, match=r"cannot relieve 20\.00"):
        relieve_at_booked_rates(lines, [Relief("INV-1", D("20.00"))], {"INV-1": INVOICE})


def test_held_cash_applied_later_relieves_2100_at_the_payments_rate_and_ar_at_the_invoices() -> (
    None
):
    # 1,000.00 EUR arrived at 0.86 (860.00 GBP on 2100), applied when the invoice posted at 0.85.
    lines = (debit("2100", D("1000.00")), credit("1200", D("1000.00")))
    carried = relieve_at_booked_rates(lines, [Relief("INV-1", D("1000.00"))], {"INV-1": INVOICE})
    carried = carry_rate(carried, "2100", D("0.86"))
    assert _booked(fx.convert(carried, "GBP", D("0.85"))) == [
        ("2100", D("1000.00"), D(0), D("860.00"), D(0), D("0.86")),
        ("1200", D(0), D("1000.00"), D(0), D("850.00"), D("0.85")),
        ("7100", D(0), D(0), D(0), D("10.00"), None),
    ]

"""Tax rounding, pure: how the tax of an invoice's lines is rounded under a legal entity's mode.

- LINE: each line's tax is its amount x rate, rounded (half up, to the currency's minor unit).
- INVOICE: once per tax rate per invoice, as Japan's qualified invoices require: the rate's tax
  is the sum of its lines' amounts x rate, rounded; it is then allocated to those lines by
  largest remainder, so the line taxes still sum exactly to the invoice's tax and a credit memo
  of one line credits the share that line was given.

Four lines of 1,005 JPY at 10%: LINE 101 each, 404 in all; INVOICE 402, as 101/101/100/100.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from enum import StrEnum

from finsync.contract.events import InvoiceLine
from finsync.domain.accounting import MINOR_UNITS, fmt
from finsync.errors import InvalidEvent


class TaxRounding(StrEnum):
    LINE = "LINE"  # per line
    INVOICE = "INVOICE"  # per tax rate per invoice


def _unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-MINOR_UNITS[currency])


def rounded(amount: Decimal, currency: str) -> Decimal:
    """Half up to the currency's minor unit, as billing_schedule.money rounds."""
    return amount.quantize(_unit(currency), rounding=ROUND_HALF_UP)


def allocate(total: Decimal, shares: Sequence[Decimal], currency: str) -> list[Decimal]:
    """Split `total` over exact `shares` in minor units by largest remainder: each line gets
    its share rounded down, and the minor units left over go one each to the lines with the
    largest remainders, the earlier line first on a tie. When `total` is the rounded sum of the
    shares, every line ends within one minor unit of its exact share."""
    unit = _unit(currency)
    floors = [s.quantize(unit, rounding=ROUND_FLOOR) for s in shares]
    left = int((total - sum(floors, Decimal(0))) / unit)
    if not 0 <= left <= len(shares):
        raise ValueError(f"{total} cannot be allocated over shares summing to {sum(shares)}")
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - floors[i]), i))
    extra = set(by_remainder[:left])
    return [f + unit if i in extra else f for i, f in enumerate(floors)]


def line_taxes(
    lines: Sequence[tuple[Decimal, Decimal]], currency: str, rounding: TaxRounding
) -> list[Decimal]:
    """The tax of each (amount, rate) line of one invoice under `rounding`, in line order."""
    if rounding is TaxRounding.LINE:
        return [rounded(amount * rate, currency) for amount, rate in lines]
    taxes = [Decimal(0)] * len(lines)
    for rate in dict.fromkeys(rate for _, rate in lines):  # each rate once, in line order
        at_rate = [i for i, (_, r) in enumerate(lines) if r == rate]
        shares = [lines[i][0] * rate for i in at_rate]
        total = rounded(sum(shares, Decimal(0)), currency)
        for i, tax in zip(at_rate, allocate(total, shares, currency), strict=True):
            taxes[i] = tax
    return taxes


def _percent(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"


def check_tax(
    what: str,
    lines: Sequence[InvoiceLine],
    currency: str,
    rounding: TaxRounding,
    whole_document: bool = True,
) -> None:
    """Reject a document whose lines that carry a tax rate were not taxed under `rounding`.

    LINE: each line's tax is round(amount x rate). INVOICE, on a whole invoice: per rate, the
    lines' taxes sum to round(sum of amounts x rate). INVOICE on part of one (a credit memo of
    some of its lines): each line's tax is a share the invoice could have allocated, its exact
    tax rounded down or up. Lines without a rate are left to the document's sum checks."""
    rated = [x for x in lines if x.tax_rate is not None]
    for x in rated:
        assert x.tax_rate is not None
        if not x.tax_rate.is_finite() or x.tax_rate < 0:
            raise InvalidEvent(f"{what} line {x.line_id} has tax rate {x.tax_rate}")
    mode = "per line" if rounding is TaxRounding.LINE else "once per rate per invoice"
    if rounding is TaxRounding.LINE or not whole_document:
        for x in rated:
            assert x.tax_rate is not None
            exact = x.amount * x.tax_rate
            allowed = {rounded(exact, currency)}
            if rounding is TaxRounding.INVOICE:
                low = exact.quantize(_unit(currency), rounding=ROUND_FLOOR)
                allowed = {low, low + _unit(currency)} if low != exact else {low}
            if x.tax_amount not in allowed:
                expected = " or ".join(fmt(t, currency) for t in sorted(allowed))
                raise InvalidEvent(
                    f"{what} line {x.line_id}: tax at {_percent(x.tax_rate)} should be "
                    f"{expected} (rounded {mode}), not {fmt(x.tax_amount, currency)}"
                )
        return
    for rate in dict.fromkeys(x.tax_rate for x in rated):
        assert rate is not None
        at_rate = [x for x in rated if x.tax_rate == rate]
        expected_tax = rounded(sum((x.amount for x in at_rate), Decimal(0)) * rate, currency)
        actual = sum((x.tax_amount for x in at_rate), Decimal(0))
        if actual != expected_tax:
            raise InvalidEvent(
                f"{what}: tax at {_percent(rate)} should be {fmt(expected_tax, currency)} "
                f"(rounded {mode}), not {fmt(actual, currency)}"
            )

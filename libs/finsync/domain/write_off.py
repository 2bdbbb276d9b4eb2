"""Write-off tolerance, pure: how short a payment may fall and still close its invoice.

A tolerance is an amount in the invoice's currency, or a percentage of the invoice's original
amount (rounded down to the currency's minor unit). Each currency has a default of about five
US cents, rounded to a tidy amount in whole minor units of that currency: 5 yen, not 0.05 yen,
which no yen payment can be short by; 0.015 dinar, not 0.05 (about 16 US cents).

Which rule applies to a currency: its own override, else the override for every currency,
else its default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from finsync.domain.accounting import MINOR_UNITS

# About five US cents in each currency finsync books (at 2025 rates), in whole minor units.
DEFAULT_TOLERANCES: dict[str, Decimal] = {
    "USD": Decimal("0.05"),
    "EUR": Decimal("0.05"),
    "GBP": Decimal("0.05"),
    "CHF": Decimal("0.05"),
    "CAD": Decimal("0.05"),
    "AUD": Decimal("0.05"),
    "NZD": Decimal("0.05"),
    "SGD": Decimal("0.05"),
    "SEK": Decimal("0.50"),
    "NOK": Decimal("0.50"),
    "DKK": Decimal("0.50"),
    "PLN": Decimal("0.20"),
    "CZK": Decimal("1.00"),
    "HUF": Decimal("20.00"),
    "RON": Decimal("0.20"),
    "INR": Decimal("5.00"),
    "CNY": Decimal("0.50"),
    "HKD": Decimal("0.50"),
    "BRL": Decimal("0.20"),
    "MXN": Decimal("1.00"),
    "ZAR": Decimal("1.00"),
    "ILS": Decimal("0.20"),
    "AED": Decimal("0.20"),
    "SAR": Decimal("0.20"),
    "TRY": Decimal("2.00"),
    "JPY": Decimal("5"),
    "KRW": Decimal("50"),
    "ISK": Decimal("5"),
    "KWD": Decimal("0.015"),
    "BHD": Decimal("0.020"),
    "OMR": Decimal("0.020"),
    "JOD": Decimal("0.035"),
    "TND": Decimal("0.150"),
}


@dataclass(frozen=True)
class Tolerance:
    """A fixed amount, or (`percent`) a percentage of the invoice's original amount."""

    value: Decimal
    percent: bool = False

    def of(self, original_amount: Decimal, currency: str) -> Decimal:
        if not self.percent:
            return self.value
        unit = Decimal(1).scaleb(-MINOR_UNITS[currency])
        return (original_amount * self.value / 100).quantize(unit, rounding=ROUND_DOWN)

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


def parse_tolerance(text: str, currency: str | None = None) -> Tolerance:
    """`0.05` or `0.5%`, for every currency or for `currency`; ValueError saying what is wrong
    otherwise."""
    if currency is not None and currency not in MINOR_UNITS:
        raise ValueError(f"is for {currency}, which is not a currency finsync books")
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = Decimal(raw.removesuffix("%").strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0:
        raise ValueError(
            "is not a tolerance: give an amount of zero or more, such as 0.05, or a percentage "
            "of the invoice's original amount, such as 0.5%"
        )
    if percent and value > 100:
        raise ValueError("is more than 100% of the invoice")
    if currency is not None and not percent:
        minor = MINOR_UNITS[currency]
        exponent = value.normalize().as_tuple().exponent
        if isinstance(exponent, int) and exponent < -minor:
            raise ValueError(f"has more decimals than {currency} allows ({minor})")
    return Tolerance(value, percent)


@dataclass(frozen=True)
class Tolerances:
    """The write-off tolerance of every currency: its own override, else the override for
    every currency (`overall`), else its default."""

    overall: Tolerance | None = None
    by_currency: Mapping[str, Tolerance] = field(default_factory=dict)

    def rule(self, currency: str) -> Tolerance:
        own = self.by_currency.get(currency)
        if own is not None:
            return own
        if self.overall is not None:
            return self.overall
        return Tolerance(DEFAULT_TOLERANCES.get(currency, Decimal(0)))

    def amount(self, currency: str, original_amount: Decimal) -> Decimal:
        """The largest short payment written off on an invoice of `original_amount`."""
        return self.rule(currency).of(original_amount, currency)

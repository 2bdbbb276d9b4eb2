"""Accounting rules every service shares: currencies, the chart of accounts, balanced journals.

Pure: Decimals in, Decimals out, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from finsync.contract.events import JournalLine
from finsync.errors import InvalidEvent

ZERO = Decimal(0)

# ISO-4217 codes finsync books, with their minor units (decimals an amount may carry).
MINOR_UNITS: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "CAD": 2,
    "AUD": 2,
    "NZD": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "CZK": 2,
    "HUF": 2,
    "RON": 2,
    "INR": 2,
    "CNY": 2,
    "SGD": 2,
    "HKD": 2,
    "BRL": 2,
    "MXN": 2,
    "ZAR": 2,
    "ILS": 2,
    "AED": 2,
    "SAR": 2,
    "TRY": 2,
    "JPY": 0,
    "KRW": 0,
    "ISK": 0,
    "KWD": 3,
    "BHD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}

# The reference chart of accounts (migrations/0002_reference_erp.sql).
CASH = "1000"
GATEWAY_CLEARING = "1010"  # card and ACH money until the payout (0017_cash_lifecycle.sql)
PAYOUT_DIFFERENCES = "1090"  # payout items no document explains, suspense (0021_payouts.sql)
ACCOUNTS_RECEIVABLE = "1200"
DISPUTED_RECEIVABLES = "1260"  # funds a dispute withdrew (0018_refunds_disputes.sql)
UNAPPLIED_CASH = "2100"
TAX_PAYABLE = "2200"
DEFERRED_REVENUE = "2300"
CUSTOMER_CREDIT = "2400"  # credit memos above the open amount (0016_customer_credits.sql)
REVENUE = "4000"
PAYMENT_FEES = "6100"
WRITE_OFF = "6900"
REALISED_FX_GAIN = "7100"  # 0019_functional_currency.sql
REALISED_FX_LOSS = "7200"


def check_money(currency: str, amounts: dict[str, Decimal]) -> None:
    """Reject an unknown currency, or an amount with more decimals than the currency has."""
    if currency not in MINOR_UNITS:
        raise InvalidEvent(f"unknown currency {currency!r} (expected an ISO-4217 code such as EUR)")
    minor = MINOR_UNITS[currency]
    for what, amount in amounts.items():
        if not amount.is_finite():
            raise InvalidEvent(f"{what} is not a number: {amount}")
        if amount != amount.quantize(Decimal(1).scaleb(-minor)):
            raise InvalidEvent(
                f"{what} {amount} has more than {minor} decimals, which {currency} allows"
            )


def check_amount_and_fee(what: str, currency: str, amount: Decimal, fee: Decimal) -> None:
    """A gateway movement: a positive amount in a currency we book, and a fee not below zero."""
    check_money(currency, {"amount": amount, "fee_amount": fee})
    if amount <= 0:
        raise InvalidEvent(f"{what} amount must be positive, got {fmt(amount, currency)}")
    if fee < 0:
        raise InvalidEvent(f"{what} fee must not be negative, got {fmt(fee, currency)}")


def fmt(amount: Decimal, currency: str) -> str:
    """An amount as a person reads it: `1931.50 EUR`, not Avro's fixed `1931.5000`."""
    minor = MINOR_UNITS.get(currency)
    if minor is not None:
        exact = amount.quantize(Decimal(1).scaleb(-minor))
        if exact == amount:
            amount = exact
    return f"{amount} {currency}"


def debit(account: str, amount: Decimal, rule: str | None = None) -> JournalLine:
    """A debit of `amount`; a negative amount is a credit of its absolute value. `rule`: the
    GL mapping rule that chose the account, if one did."""
    if amount < 0:
        return credit(account, -amount, rule)
    return JournalLine(account_code=account, debit=amount, credit=ZERO, mapping_rule=rule)


def credit(account: str, amount: Decimal, rule: str | None = None) -> JournalLine:
    if amount < 0:
        return debit(account, -amount, rule)
    return JournalLine(account_code=account, debit=ZERO, credit=amount, mapping_rule=rule)


def reverse(lines: Iterable[JournalLine]) -> list[JournalLine]:
    return [
        x.model_copy(
            update={
                "debit": x.credit,
                "credit": x.debit,
                "functional_debit": x.functional_credit,
                "functional_credit": x.functional_debit,
            }
        )
        for x in lines
    ]


@dataclass(frozen=True)
class Journal:
    """A journal entry to post. `key` is its business idempotency key."""

    key: str
    legal_entity: str
    currency: str
    description: str
    lines: tuple[JournalLine, ...]
    accounting_date: date | None = None  # the document's date; None: the day it is posted

    def __post_init__(self) -> None:
        # A line with only a functional amount (a realised FX difference) carries something.
        lines = [
            x
            for x in self.lines
            if x.debit or x.credit or x.functional_debit or x.functional_credit
        ]
        if not lines:
            raise InvalidEvent(f"journal {self.key} has no non-zero lines")
        if sum(x.debit for x in lines) != sum(x.credit for x in lines):
            raise InvalidEvent(f"journal {self.key} does not balance")
        object.__setattr__(self, "lines", tuple(lines))  # zero lines carry nothing

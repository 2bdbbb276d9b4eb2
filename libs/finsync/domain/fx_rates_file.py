"""The FX rates file `finsync erp rates load` reads: CSV with the header date,from,to,rate.

Pure: text in, rates (or every problem in it) out.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal, InvalidOperation

from finsync.domain.accounting import MINOR_UNITS
from finsync.domain.fx import RATE_MAX, RATE_SCALE, Rate

HEADER = ["date", "from", "to", "rate"]


class RatesInvalid(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def parse(text: str) -> list[Rate]:
    """Every rate of the file, or RatesInvalid listing every problem (by line number)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip().lower() for c in rows[0]] != HEADER:
        raise RatesInvalid([f"line 1: the header must be {','.join(HEADER)}"])
    errors: list[str] = []
    rates: list[Rate] = []
    seen: dict[tuple[str, str, date], int] = {}
    for n, row in enumerate(rows[1:], 2):
        if not row or all(not c.strip() for c in row):
            continue  # blank lines carry nothing
        problems, rate = _row(row)
        errors += [f"line {n}: {p}" for p in problems]
        if rate is None:
            continue
        key = (rate.from_currency, rate.to_currency, rate.rate_date)
        if key in seen:
            errors.append(
                f"line {n}: {rate.from_currency}->{rate.to_currency} on {rate.rate_date} is "
                f"already on line {seen[key]}"
            )
            continue
        seen[key] = n
        rates.append(rate)
    if not rates and not errors:
        errors.append("the file has no rates")
    if errors:
        raise RatesInvalid(errors)
    return rates


def _row(row: list[str]) -> tuple[list[str], Rate | None]:
    if len(row) != len(HEADER):
        return [f"{len(row)} fields, expected {len(HEADER)} ({','.join(HEADER)})"], None
    day, from_, to, amount = (c.strip() for c in row)
    problems: list[str] = []
    on: date | None = None
    try:
        on = date.fromisoformat(day)
    except ValueError:
        problems.append(f"date {day!r} is not a date (YYYY-MM-DD)")
    for what, currency in (("from", from_), ("to", to)):
        if currency not in MINOR_UNITS:
            problems.append(f"{what} currency {currency!r} is not one finsync books")
    if from_ == to and from_:
        problems.append(f"a rate from {from_} to itself is always 1")
    rate: Decimal | None = None
    try:
        rate = Decimal(amount)
    except InvalidOperation:
        problems.append(f"rate {amount!r} is not a number")
    if rate is not None:
        if not rate.is_finite() or rate <= 0:
            problems.append(f"rate {amount} must be a positive number")
        elif rate >= RATE_MAX:
            problems.append(f"rate {amount} is too large")
        elif rate != rate.quantize(Decimal(1).scaleb(-RATE_SCALE)):
            problems.append(f"rate {amount} has more than {RATE_SCALE} decimals")
    if problems or on is None or rate is None:
        return problems, None
    return [], Rate(on, from_, to, rate)

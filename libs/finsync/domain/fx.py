"""Foreign exchange: which rate a journal uses, and its lines in the functional currency.

Pure: Decimals in, Decimals out, no I/O. Every legal entity keeps its books in its functional
currency; a journal in another currency is converted line by line at one rate (the rate on
the latest date on or before the journal's date), rounded to the functional currency's minor
units, and still balances in functional terms.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from finsync.contract.events import JournalLine
from finsync.domain.accounting import MINOR_UNITS, REALISED_FX_GAIN, REALISED_FX_LOSS, ZERO

ONE = Decimal(1)
RATE_SCALE = 10  # numeric(24,10) in erp.fx_rates and erp.journal_lines
RATE_MAX = Decimal("1e14")  # numeric(24,10) holds up to 14 integer digits


@dataclass(frozen=True, order=True)
class Rate:
    """One unit of `from_currency` is `rate` units of `to_currency` from `rate_date` on."""

    rate_date: date
    from_currency: str
    to_currency: str
    rate: Decimal


def quantize_rate(rate: Decimal) -> Decimal:
    return rate.quantize(ONE.scaleb(-RATE_SCALE), rounding=ROUND_HALF_EVEN)


def inverse(rate: Decimal) -> Decimal:
    """1 / rate at the rates' scale."""
    with localcontext() as ctx:
        ctx.prec = 40
        return quantize_rate(ONE / rate)


@dataclass(frozen=True)
class Quote:
    """The rate a journal uses, and the loaded rate it came from (None: the same currency)."""

    rate: Decimal
    source: Rate | None = None


def find(rates: Iterable[Rate], from_currency: str, to_currency: str, on: date) -> Quote | None:
    """The rate from -> to for a journal dated `on`: the latest rate on or before `on` in either
    direction (a to -> from rate by its inverse), the from -> to one when both have that date, so
    a fresh rate loaded one way is never passed over for a stale one the other way; 1 for the
    same currency; None when neither direction has a rate by then."""
    if from_currency == to_currency:
        return Quote(ONE)
    direct: Rate | None = None
    reverse: Rate | None = None
    for r in rates:
        if r.rate_date > on:
            continue
        pair = (r.from_currency, r.to_currency)
        if pair == (from_currency, to_currency) and (direct is None or r > direct):
            direct = r
        elif pair == (to_currency, from_currency) and (reverse is None or r > reverse):
            reverse = r
    if direct is not None and (reverse is None or direct.rate_date >= reverse.rate_date):
        return Quote(direct.rate, direct)
    if reverse is not None:
        return Quote(inverse(reverse.rate), reverse)
    return None


def lookup(rates: Iterable[Rate], from_currency: str, to_currency: str, on: date) -> Decimal | None:
    quote = find(rates, from_currency, to_currency, on)
    return None if quote is None else quote.rate


def missing_rate(from_currency: str, to_currency: str, on: date) -> str:
    """Why a journal cannot be converted, and what to load."""
    return (
        f"no FX rate {from_currency}->{to_currency} (or {to_currency}->{from_currency}) on or "
        f"before {on.isoformat()}: load one with `finsync erp rates load FILE`"
    )


def round_to(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(ONE.scaleb(-MINOR_UNITS[currency]), rounding=ROUND_HALF_EVEN)


def _carried(line: JournalLine) -> bool:
    """A line that brings its own rate (a carried rate, e.g. AR relieved at the invoice's rate)
    or its own functional amounts (e.g. a realised FX line) keeps them."""
    return line.rate is not None or _own_functional(line)


def _own_functional(line: JournalLine) -> bool:
    return line.functional_debit is not None or line.functional_credit is not None


def convert(
    lines: Sequence[JournalLine], functional_currency: str, rate: Decimal
) -> tuple[JournalLine, ...]:
    """The lines with their functional amounts: each line's transaction amount x its rate
    (`rate`, unless the line carries its own), rounded to the functional currency's minor
    units. The lines at `rate` absorb their rounding residual on the largest of them, so they
    are worth exactly their net at `rate`; what lines at carried rates leave unbalanced is a
    realised FX difference, booked to 7100 (gain) or 7200 (loss) as one more line."""
    booked: list[JournalLine] = []
    for x in lines:
        if _own_functional(x):  # its own functional amounts: as they are
            own = {"functional_debit": x.functional_debit or ZERO}
            booked.append(
                x.model_copy(update={**own, "functional_credit": x.functional_credit or ZERO})
            )
            continue
        r = rate if x.rate is None else x.rate
        booked.append(
            x.model_copy(
                update={
                    "functional_debit": round_to(x.debit * r, functional_currency),
                    "functional_credit": round_to(x.credit * r, functional_currency),
                    "rate": r,
                }
            )
        )
    at_rate = [n for n, x in enumerate(lines) if not _carried(x)]
    if at_rate:
        net = sum((lines[n].debit - lines[n].credit for n in at_rate), ZERO)
        worth = round_to(net * rate, functional_currency)
        residual = _net(booked[n] for n in at_rate) - worth
        if residual:
            n = max(at_rate, key=lambda n: (lines[n].debit + lines[n].credit, -n))
            x = booked[n]
            update = (
                {"functional_debit": x.functional_debit - residual}  # type: ignore[operator]
                if x.debit
                else {"functional_credit": x.functional_credit + residual}  # type: ignore[operator]
            )
            booked[n] = x.model_copy(update=update)
    difference = _net(booked)
    if difference > 0:  # functional debits exceed credits: more came in than went out, a gain
        booked.append(functional_line(REALISED_FX_GAIN, ZERO, difference))
    elif difference < 0:
        booked.append(functional_line(REALISED_FX_LOSS, -difference, ZERO))
    return tuple(booked)


def _net(lines: Iterable[JournalLine]) -> Decimal:
    return sum(
        (x.functional_debit - x.functional_credit for x in lines),  # type: ignore[operator]
        ZERO,
    )


def functional_line(
    account: str, functional_debit: Decimal, functional_credit: Decimal
) -> JournalLine:
    """A line with no transaction amount, only a functional one (and so no rate): realised and
    unrealised FX."""
    return JournalLine(
        account_code=account,
        debit=ZERO,
        credit=ZERO,
        functional_debit=functional_debit,
        functional_credit=functional_credit,
        rate=None,
    )

"""Realised FX, pure: AR relieved at the rate its invoice was booked at.

An invoice in a currency other than its entity's functional one is booked at the rate of its
date. Whatever later takes it off AR (a payment, held cash applied later, a credit memo) at
another day's rate must relieve AR at that booked rate, so the invoice's functional AR clears
exactly; fx.convert books what the rest of the journal leaves over as a realised FX gain (7100)
or loss (7200).

Each relief is its amount x the booked rate, rounded; the relief that clears the invoice takes
the functional amount still open instead, so the rounding of the shares before it never
leaves a cent behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from finsync.contract.events import JournalLine
from finsync.domain.accounting import ACCOUNTS_RECEIVABLE, ZERO
from finsync.domain.fx import round_to


@dataclass(frozen=True)
class BookedAr:
    """An invoice's AR as the books carry it in functional currency."""

    invoice_id: str
    functional_currency: str
    rate: Decimal  # the rate its journal booked AR at
    open_amount: Decimal  # in the invoice's currency
    functional_open: Decimal  # in the functional currency


@dataclass(frozen=True)
class Relief:
    """What one document takes off one invoice's AR, in the invoice's currency."""

    invoice_id: str
    amount: Decimal


def functional_relief(amount: Decimal, ar: BookedAr) -> Decimal:
    """The functional AR `amount` relieves: all that is open when it clears the invoice."""
    if amount == ar.open_amount:
        return ar.functional_open
    return round_to(amount * ar.rate, ar.functional_currency)


def relieve_at_booked_rates(
    lines: Sequence[JournalLine], reliefs: Sequence[Relief], booked: dict[str, BookedAr]
) -> tuple[JournalLine, ...]:
    """The journal's AR credits split into one line per foreign invoice, each carrying its
    booked rate and functional amount; what invoices in the functional currency (not in
    `booked`) relieve stays one plain line, as before. Lines other than AR credits are kept."""
    foreign = [r for r in reliefs if r.invoice_id in booked and r.amount]
    if not foreign:
        return tuple(lines)
    credited = sum((x.credit for x in lines if _ar_credit(x)), ZERO)
    carried = sum((r.amount for r in foreign), ZERO)
    if carried > credited:
        raise ValueError(f"AR credits {credited} cannot relieve {carried} at booked rates")
    at_booked = [
        JournalLine(
            account_code=ACCOUNTS_RECEIVABLE,
            debit=ZERO,
            credit=r.amount,
            functional_debit=ZERO,
            functional_credit=functional_relief(r.amount, booked[r.invoice_id]),
            rate=booked[r.invoice_id].rate,
        )
        for r in foreign
    ]
    out: list[JournalLine] = []
    placed = False
    for x in lines:
        if not _ar_credit(x):
            out.append(x)
            continue
        if not placed:  # where the AR credit was: the carried lines, then the rest
            out += at_booked
            rest = credited - carried
            if rest:
                out.append(x.model_copy(update={"credit": rest}))
            placed = True
    return tuple(out)


def _ar_credit(x: JournalLine) -> bool:
    return x.account_code == ACCOUNTS_RECEIVABLE and x.credit > 0


def carry_rate(
    lines: Sequence[JournalLine], account: str, rate: Decimal
) -> tuple[JournalLine, ...]:
    """The debits to `account` at a carried rate: unapplied cash applied later leaves 2100 at
    the rate its payment credited it at."""
    return tuple(
        x.model_copy(update={"rate": rate}) if x.account_code == account and x.debit else x
        for x in lines
    )

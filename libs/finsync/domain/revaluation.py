"""Revaluation of open foreign AR, pure: at a period end, what an entity's open invoices in
one foreign currency are worth at that day's rate against what they were booked at.

1200 keeps the booked amounts (gl-ar ties it per invoice), so the unrealised difference goes to
1210 AR revaluation against 7300 Unrealised FX gain/loss, as functional-only lines, and is
reversed on the first day of the next period: the next revaluation starts from the booked
amounts again, and what a payment realises is booked by the payment (realised_fx.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from finsync.domain.accounting import ZERO, Journal, reverse
from finsync.domain.fx import functional_line, round_to

AR_REVALUATION = "1210"  # 0022_fx_application_revaluation.sql
UNREALISED_FX = "7300"


@dataclass(frozen=True)
class Revaluation:
    legal_entity: str
    currency: str
    functional_currency: str
    as_of: date
    rate: Decimal
    items: int
    open_amount: Decimal  # in `currency`
    booked: Decimal  # in functional currency, at the invoices' booked rates
    revalued: Decimal  # open_amount x rate, rounded

    @property
    def difference(self) -> Decimal:
        """Positive: a gain (the receivables are worth more than booked)."""
        return self.revalued - self.booked


def revalue(
    legal_entity: str,
    currency: str,
    functional_currency: str,
    as_of: date,
    rate: Decimal,
    open_items: list[tuple[Decimal, Decimal]],  # (open amount, functional open at booked rate)
) -> Revaluation:
    open_amount = sum((o for o, _ in open_items), ZERO)
    booked = sum((f for _, f in open_items), ZERO)
    revalued = round_to(open_amount * rate, functional_currency)
    return Revaluation(
        legal_entity, currency, functional_currency, as_of, rate, len(open_items),
        open_amount, booked, revalued,
    )  # fmt: skip


def next_period(on: date) -> date:
    return date(on.year + 1, 1, 1) if on.month == 12 else date(on.year, on.month + 1, 1)


def key(r: Revaluation, reversal: bool = False) -> str:
    kind = "fx-revaluation-reversal" if reversal else "fx-revaluation"
    return f"{kind}:{r.legal_entity}:{r.currency}:{r.as_of.isoformat()}"


def journals(r: Revaluation) -> tuple[Journal, Journal] | None:
    """The revaluation dated as of, and its reversal on the first day of the next period;
    None when there is no difference."""
    d = r.difference
    if not d:
        return None
    gain, loss = (d, ZERO) if d > 0 else (ZERO, -d)
    lines = (
        functional_line(AR_REVALUATION, gain, loss),
        functional_line(UNREALISED_FX, loss, gain),
    )
    what = f"{r.items} open {r.currency} invoice(s) of {r.legal_entity} at {r.rate.normalize():f}"
    booked = Journal(key(r), r.legal_entity, r.currency, f"FX revaluation: {what}", lines, r.as_of)
    back = tuple(reverse(lines))
    reversal = Journal(
        key(r, reversal=True), r.legal_entity, r.currency, f"FX revaluation reversed: {what}",
        back, next_period(r.as_of),
    )  # fmt: skip
    return booked, reversal

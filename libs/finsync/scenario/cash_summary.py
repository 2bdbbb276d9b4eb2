"""The cash section of a run's summary: where the money stands per legal entity and currency.

Gateway money sits in 1010 Gateway clearing from the day a card or ACH payment settles until
the gateway's payout brings it to the bank; so 1010 must equal what is in transit by the
documents (payments, refunds, disputes not paid out yet).
"""

from __future__ import annotations

from decimal import Decimal

from rich.console import Console
from rich.table import Table

from finsync.books.cash_position import CashPosition
from finsync.domain.accounting import fmt


def print_cash(console: Console, rows: list[CashPosition]) -> bool:
    """Print the table; True when clearing equals what is in transit for every entity."""
    table = Table(
        "entity", "payments gateway/bank", "paid early", "for review", "refunds",
        "disputes won/lost/open", "payouts ok/mismatch", "paid out", "1090 differences",
        "in transit", "1010 clearing",
        title="Cash of this run, in the entity's currency (in transit and 1010: whole ledger)",
    )  # fmt: skip
    tied = True
    for r in rows:
        c = r.currency
        tied &= r.in_transit == r.clearing

        def amount(x: Decimal, c: str = c) -> str:
            return fmt(x, c).removesuffix(f" {c}")

        table.add_row(
            f"{r.legal_entity} {c}",
            f"{r.to_clearing}/{r.to_bank}",
            str(r.earmarked),
            str(r.under_review),
            f"{r.refunds} ({amount(r.refunded)})" if r.refunds else "0",
            f"{r.disputes_won}/{r.disputes_lost}/{r.disputes_open}",
            f"{r.payouts_matched}/{r.payouts_mismatched}",
            amount(r.paid_out),
            amount(r.differences),
            amount(r.in_transit),
            amount(r.clearing),
        )
    console.print(table)
    mark = "[green]✓[/green]" if tied else "[red]✗[/red]"
    console.print(
        f"{mark} gateway clearing (1010) "
        + ("equals" if tied else "does NOT equal")
        + " what is in transit by the documents (payments, refunds, disputes not paid out)"
        + (" for every entity" if tied else "")
    )
    return tied

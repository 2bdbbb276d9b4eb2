"""invoice-poster applies cash held for a newly posted invoice, through the ERP port.

1. Earmarked cash (a prepayment that named the invoice) is applied to it, whatever the policy:
   the payer's account hierarchy is checked now that the invoice's account is known; a
   stranger's invoice is not paid, and the payment waits for a review. A shortfall within
   the tolerance is written off, as for any payment.
2. With the auto-apply policy on, the holder's customer credit (handler.py) and then its
   unapplied cash go to its open invoices, oldest due date first, from the oldest payment
   first (finsync.domain.cash.auto_apply). Payments under review, and cash earmarked for
   invoices not posted yet, are left alone.

Each use publishes an erp.payment-applied (kind EARMARKED or AUTO).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from finsync.contract.events import (
    Application,
    ApplicationKind,
    Event,
    PaymentApplied,
    PaymentStatus,
)
from finsync.domain.accounting import ZERO
from finsync.domain.cash import Due, Settled, auto_apply, held_cash_journal, settle
from finsync.domain.payer import may_pay, stranger
from finsync.domain.write_off import Tolerances
from finsync.ports.crossref import CrossReference
from finsync.ports.erp import CreditHolder, Erp, HeldCashApplication, OpenItem

SOURCE = "finsync.invoice-poster"


EACH_CURRENCY_DEFAULT = Tolerances()


@dataclass(frozen=True)
class CashPolicy:
    auto_apply: bool = True  # FINSYNC_AUTO_APPLY
    tolerances: Tolerances = EACH_CURRENCY_DEFAULT  # write-offs of earmarked cash, as payments'


DEFAULT_POLICY = CashPolicy()


def apply_earmarked(
    cause: Event,
    item: OpenItem,
    erp: Erp,
    accounts: CrossReference | None,
    tolerances: Tolerances,
) -> list[PaymentApplied]:
    """Earmarked cash on the invoice just posted (open as `item` says, credit aside)."""
    out: list[PaymentApplied] = []
    open_ = item.open_amount
    for cash in erp.earmarked_cash(item.invoice_id):
        if open_ <= 0 or cash.amount <= 0:
            break
        if (cash.legal_entity, cash.currency) != (item.legal_entity, item.currency):
            erp.hold_for_review(
                cash.payment_id,
                f"invoice {item.invoice_id} is in {item.legal_entity} {item.currency}, "
                f"the payment in {cash.legal_entity} {cash.currency}",
            )
            continue
        link_of = accounts.link if accounts is not None else (lambda _: None)
        if not may_pay(cash.account_id, item.account_id, link_of):
            erp.hold_for_review(
                cash.payment_id, stranger(item.invoice_id, item.account_id, cash.account_id)
            )
            continue
        tolerance = tolerances.amount(item.currency, item.original_amount)
        s = settle(cash.amount, open_, tolerance)
        kind = ApplicationKind.EARMARKED
        out.append(
            _apply(
                cause,
                item,
                erp,
                cash.payment_id,
                cash.account_id,
                cash.customer_id,
                s,
                kind,
                cash.unapplied_open - s.applied,
            )
        )
        open_ -= s.settles
    return out


def apply_unapplied(cause: Event, item: OpenItem, erp: Erp) -> list[PaymentApplied]:
    """The holder's unapplied cash on its open invoices, oldest due date first."""
    holder = CreditHolder.of(item)
    cash = erp.held_cash(holder)
    if not cash:
        return []
    open_items = {x.invoice_id: x for x in erp.open_items(holder)}
    dues = [Due(x.invoice_id, x.due_on, x.issued_on, x.open_amount) for x in open_items.values()]
    taken = erp.applied_pairs([c.payment_id for c in cash])
    unapplied = {c.payment_id: c.unapplied_open for c in cash}
    out = []
    for use in auto_apply(cash, dues, taken):
        invoice = open_items[use.invoice_id]
        s = settle(use.amount, invoice.open_amount, ZERO)  # no write-off: not sent for it
        unapplied[use.payment_id] -= s.applied
        out.append(
            _apply(
                cause,
                invoice,
                erp,
                use.payment_id,
                holder.account_id,
                None,
                s,
                ApplicationKind.AUTO,
                unapplied[use.payment_id],
            )
        )
        open_items[use.invoice_id] = replace(invoice, open_amount=invoice.open_amount - s.settles)
    return out


def _apply(
    cause: Event,
    item: OpenItem,
    erp: Erp,
    payment_id: str,
    payer: str,
    customer_id: str | None,
    s: Settled,
    kind: ApplicationKind,
    unapplied_after: Decimal,
) -> PaymentApplied:
    journal = held_cash_journal(
        payment_id, item.invoice_id, item.legal_entity, item.currency, s, kind, item.issued_on
    )
    posted = erp.apply_held_cash(
        HeldCashApplication(payment_id, item.invoice_id, kind, s.applied, s.written_off), journal
    )
    status = PaymentStatus.PAID if s.open_after == 0 else PaymentStatus.PARTIALLY_PAID
    return cause.follow(
        PaymentApplied,
        source=SOURCE,
        payment_id=payment_id,
        invoice_id=item.invoice_id,
        currency=item.currency,
        applied_amount=s.applied,
        unapplied_amount=unapplied_after,
        invoice_open_after=s.open_after,
        status=status,
        journal_entry_id=posted.journal_entry_id,
        journal_lines=posted.booked(journal),  # with their functional amounts
        account_id=payer,
        erp_customer_id=customer_id,
        legal_entity=item.legal_entity,
        written_off_amount=s.written_off,
        accounting_date=posted.accounting_date,
        applications=[
            Application(
                invoice_id=item.invoice_id,
                applied_amount=s.applied,
                written_off_amount=s.written_off,
                invoice_open_after=s.open_after,
                kind=kind,
            )
        ],
    )

"""What the payment gateway sends once cash has settled: remittances over several invoices, a
payment for a stranger's invoice, refunds, disputes won and lost (one outcome arriving before
its opening), an over-refund, and payouts to the bank — all of one currency's gateway
movements but a few still in transit, and one payout whose items the ERP cannot all match.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from finsync.contract.events import (
    AccountUpserted,
    Allocation,
    DisputeStatus,
    DisputeUpdated,
    InvoiceIssued,
    PaymentSettled,
    PayoutItem,
    PayoutItemType,
    PayoutPaid,
    RefundSettled,
)
from finsync.domain.billing_schedule import money
from finsync.scenario.documents import FX
from finsync.scenario.gateway import PaymentPlan, payment
from finsync.scenario.plan import Scenario, envelope

GATEWAY = ("CARD", "ACH")  # methods whose money reaches the bank with a payout (via 1010)
Group = tuple[str, str]  # legal entity, currency


@dataclass
class Clearing:
    """One movement through gateway clearing, as a payout item reports it."""

    group: Group
    item: PayoutItem


@dataclass
class CashPlan:
    remittances: list[PaymentSettled] = field(default_factory=list)
    stranger: PaymentSettled | None = None  # pays an invoice of an unrelated customer
    refunds: list[RefundSettled] = field(default_factory=list)
    disputes: list[DisputeUpdated] = field(default_factory=list)  # in publishing order
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (key, error class)
    movements: list[Clearing] = field(default_factory=list)  # through 1010, known to the ERP
    payouts: list[PayoutPaid] = field(default_factory=list)
    mismatched: str | None = None  # the payout planted with a wrong item

    @property
    def events(self) -> list[PaymentSettled | RefundSettled | DisputeUpdated]:
        first: list[PaymentSettled | RefundSettled | DisputeUpdated] = [*self.remittances]
        if self.stranger:
            first.append(self.stranger)
        return [*first, *self.refunds, *self.disputes]


def _roots(s: Scenario) -> dict[str, str]:
    """Each CRM account's top parent: payers within one hierarchy may pay each other's."""
    parent = {e.account_id: e.parent_account_id for e in s.crm if isinstance(e, AccountUpserted)}

    def root(a: str) -> str:
        seen = {a}
        while parent.get(a) and parent[a] not in seen:
            a = parent[a]  # type: ignore[assignment]
            seen.add(a)
        return a

    return {a: root(a) for a in parent}


def _now() -> datetime:
    return datetime.now(UTC)


def plan_cash(
    s: Scenario, plan: PaymentPlan, payments: list[PaymentSettled], valid: set[str]
) -> CashPlan:
    """Remittances, refunds and disputes on what the run has settled; payouts come later
    (payouts()), once those are known."""
    rng, out, entities = s.rng, CashPlan(), _entities(s)
    unpaid = list(plan.by_kind.get("unpaid", []))
    by_account: dict[str, list[InvoiceIssued]] = defaultdict(list)
    for i in unpaid:
        by_account[i.account_id].append(i)
    n = 900
    # A remittance: one transfer for up to three of a customer's invoices, and something over.
    if by_account:
        account, invoices = max(by_account.items(), key=lambda kv: (len(kv[1]), kv[0]))
        invoices = invoices[:3]
        extra = money(Decimal(40) * FX[invoices[0].currency], invoices[0].currency)
        total = sum((i.total for i in invoices), Decimal(0)) + extra
        n += 1
        p = payment(s, n, account, None, total, invoices[0].currency, "WIRE",
                     invoices[0].correlation_id)  # fmt: skip
        allocations = [Allocation(invoice_id=i.invoice_id, amount=i.total) for i in invoices]
        out.remittances.append(p.model_copy(update={"allocations": allocations}))
        for i in invoices:
            unpaid.remove(i)
    # A payer paying a stranger's invoice: booked as unapplied on the payer, flagged for review.
    roots = _roots(s)
    for i in unpaid:
        payers = sorted(
            {
                x.account_id
                for x in plan.by_kind.get("full", [])
                if x.legal_entity == i.legal_entity and x.currency == i.currency
                and roots.get(x.account_id) != roots.get(i.account_id)
            }
        )  # fmt: skip
        if payers:
            n += 1
            out.stranger = payment(s, n, payers[0], i.invoice_id, i.total, i.currency, "WIRE")
            break
    settled = [p for p in payments if p.payment_id in valid]
    card = [p for p in settled if p.method in GATEWAY and p.invoice_id and not p.allocations]
    card.sort(key=lambda p: p.payment_id)
    rng.shuffle(card)
    out.movements = [_payment_item(p, entities) for p in settled if p.method in GATEWAY]
    # Disputes: one won, one lost whose outcome arrives before its opening.
    outcomes = (DisputeStatus.WON, DisputeStatus.LOST)
    for k, (p, outcome) in enumerate(zip(card[:2], outcomes, strict=False)):
        dispute_id = f"DSP-{s.tag}-{k + 1:03d}"
        fee = money(Decimal(15) * FX[p.currency], p.currency)
        group = (entities[p.account_id], p.currency)
        opened = _dispute(p, dispute_id, DisputeStatus.OPENED, fee, group[0])
        closed = _dispute(p, dispute_id, outcome, fee, group[0])
        out.disputes += [opened, closed] if outcome is DisputeStatus.WON else [closed, opened]
        withdrawn = PayoutItem(
            type=PayoutItemType.DISPUTE, reference_id=dispute_id, gross=-p.amount, fee=fee,
            net=-p.amount - fee,
        )  # fmt: skip
        out.movements.append(Clearing(group, withdrawn))
        if outcome is DisputeStatus.WON:
            back = PayoutItem(
                type=PayoutItemType.DISPUTE, reference_id=dispute_id, gross=p.amount,
                fee=Decimal(0), net=p.amount,
            )  # fmt: skip
            out.movements.append(Clearing(group, back))
    # Refunds: half of a card payment (its invoice reopens), an overpayment's excess (out of
    # the payer's unapplied cash), and one for more than the customer holds.
    for p in card[2:3]:
        _refund(s, out, p, entities[p.account_id], money(p.amount / 2, p.currency), "R01")
    over = {i.invoice_id: i for i in plan.by_kind.get("over", [])}
    for p in sorted(settled, key=lambda p: p.payment_id):
        invoice = over.get(p.invoice_id or "")
        if invoice is not None and p.amount > invoice.total:
            _refund(s, out, p, entities[p.account_id], p.amount - invoice.total, "R02")
            break
    if card[3:4]:
        p = card[3]
        too_much = _refund(s, out, p, entities[p.account_id], p.amount * 3, "R03", count=False)
        out.invalid.append((too_much.refund_id, "InvalidEvent"))
    return out


def _entities(s: Scenario) -> dict[str, str]:
    """Each CRM account's legal entity, as CRM last sent it."""
    accounts = [e for e in s.crm if isinstance(e, AccountUpserted)] + list(s.late_accounts)
    return {a.account_id: a.legal_entity for a in accounts}


def _payment_item(p: PaymentSettled, entities: dict[str, str]) -> Clearing:
    item = PayoutItem(
        type=PayoutItemType.PAYMENT, reference_id=p.payment_id, gross=p.amount,
        fee=p.fee_amount, net=p.amount - p.fee_amount,
    )  # fmt: skip
    return Clearing((entities[p.account_id], p.currency), item)


def _dispute(
    p: PaymentSettled, dispute_id: str, status: DisputeStatus, fee: Decimal, entity: str
) -> DisputeUpdated:
    return DisputeUpdated.model_validate(
        {
            **envelope("payments", p.correlation_id),
            "dispute_id": dispute_id,
            "payment_id": p.payment_id,
            "account_id": p.account_id,
            "legal_entity": entity,
            "currency": p.currency,
            "status": status,
            "amount": p.amount,
            "fee_amount": fee,
            "updated_at": _now(),
            "reason": "fraudulent" if status is DisputeStatus.OPENED else None,
        }
    )


def _refund(
    s: Scenario, out: CashPlan, p: PaymentSettled, entity: str, amount: Decimal, suffix: str,
    count: bool = True,
) -> RefundSettled:  # fmt: skip
    fee = money(Decimal("0.30") * FX[p.currency], p.currency)
    refund = RefundSettled.model_validate(
        {
            **envelope("payments", p.correlation_id),
            "refund_id": f"REF-{s.tag}-{suffix}",
            "account_id": p.account_id,
            "payment_id": p.payment_id,
            "legal_entity": entity,
            "currency": p.currency,
            "amount": amount,
            "fee_amount": fee,
            "refunded_at": _now(),
            "gateway_reference": f"re_{uuid.UUID(int=s.rng.getrandbits(128)).hex[:16]}",
        }
    )
    out.refunds.append(refund)
    if count:
        item = PayoutItem(
            type=PayoutItemType.REFUND, reference_id=refund.refund_id, gross=-amount, fee=fee,
            net=-amount - fee,
        )  # fmt: skip
        out.movements.append(Clearing((entity, p.currency), item))
    return refund


def payouts(s: Scenario, out: CashPlan, as_of: date) -> None:
    """One payout per legal entity and currency of what went through clearing, but for about
    one payment in five, still in transit; the largest reports one payment 1.00 short (a fee the
    ERP does not know of), so the ERP matches all of it but that item."""
    groups: dict[Group, list[PayoutItem]] = defaultdict(list)
    for m in out.movements:
        groups[m.group].append(m.item)
    largest = max(groups, key=lambda g: (len(groups[g]), g), default=None)
    for k, (group, items) in enumerate(sorted(groups.items()), 1):
        entity, currency = group
        payments = [x for x in items if x.type is PayoutItemType.PAYMENT]
        held_back = set(s.rng.sample(range(len(payments)), len(payments) // 5))
        staying = [x for n, x in enumerate(payments) if n in held_back]
        paid = [x for x in items if x not in staying]
        fee = money(Decimal(2) * FX[currency], currency)
        fee_item = PayoutItem(
            type=PayoutItemType.FEE, reference_id=None, gross=Decimal(0), fee=fee, net=-fee
        )
        paid.append(fee_item)
        payout_id = f"PO-{s.tag}-{k:03d}"
        if group == largest:
            plain = [n for n, x in enumerate(paid) if x.type is PayoutItemType.PAYMENT]
            if plain:
                n = plain[0]
                short = money(Decimal(1) * FX[currency], currency)
                paid[n] = paid[n].model_copy(
                    update={"fee": paid[n].fee + short, "net": paid[n].net - short}
                )
                out.mismatched = payout_id
        out.payouts.append(
            PayoutPaid.model_validate(
                {
                    **envelope("payments", f"payout-{payout_id}"),
                    "payout_id": payout_id,
                    "legal_entity": entity,
                    "currency": currency,
                    "amount": sum((x.net for x in paid), Decimal(0)),
                    "arrival_date": as_of,
                    "items": paid,
                }
            )
        )

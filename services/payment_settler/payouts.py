"""payment-settler's payout rule, pure: a payout is a bank deposit, matched item by item against
what gateway clearing (1010) holds.

- A PAYMENT item matches a payment of the payout's entity and currency booked to 1010 whose net
  (amount - fee) is the item's net and that no payout took yet; a REFUND item a refund, whose
  net is -(amount + fee); a DISPUTE item the dispute's withdrawal, -(amount + fee), or, with a
  positive net, its reinstatement once won, +amount.
- A FEE item is a gateway fee withheld from the payout: Dr 6100.
- Whatever does not match (an ADJUSTMENT, a wrong amount, a document of another entity, one paid
  out before, items that do not add up to the amount) goes to 1090 Payout differences, so the
  bank is right and clearing moves only for documents it holds.
- An item naming a document the ERP does not hold yet makes the payout wait (waiting_for):
  gateway events arrive out of order, and a mismatch booked now would stay one after the
  document arrived.

Journal, dated the arrival date: Dr 1000 the amount; Cr 1010 what matched payments and won
disputes bring, Dr 1010 what matched refunds and opened disputes took; Dr 6100 the fees;
Cr 1090 the differences.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from decimal import Decimal

from finsync.contract.events import PayoutDifferenceType, PayoutItemType, PayoutPaid
from finsync.domain.accounting import (
    CASH,
    GATEWAY_CLEARING,
    PAYMENT_FEES,
    PAYOUT_DIFFERENCES,
    ZERO,
    Journal,
    check_money,
    credit,
    debit,
    fmt,
)
from finsync.errors import InvalidEvent
from finsync.ports.payouts import (
    BookedItem,
    ClearingDocument,
    ClearingKind,
    Difference,
    PayoutBooking,
)

DOCUMENTED = (PayoutItemType.PAYMENT, PayoutItemType.REFUND, PayoutItemType.DISPUTE)


def validate(payout: PayoutPaid) -> None:
    what = f"payout {payout.payout_id}"
    c = payout.currency
    if not payout.items:
        raise InvalidEvent(f"{what} has no items")
    amounts = {"amount": payout.amount}
    for n, x in enumerate(payout.items, 1):
        amounts |= {
            f"items[{n}].gross": x.gross,
            f"items[{n}].fee": x.fee,
            f"items[{n}].net": x.net,
        }
    check_money(c, amounts)
    for n, x in enumerate(payout.items, 1):
        if x.gross - x.fee != x.net:
            raise InvalidEvent(
                f"{what} item {n} ({x.type}): gross {fmt(x.gross, c)} less fee {fmt(x.fee, c)} "
                f"is not its net {fmt(x.net, c)}"
            )
    # A dispute may be in one payout twice: withdrawn (net < 0) and reinstated (net > 0).
    seen = Counter(
        (x.type, x.reference_id, x.type is PayoutItemType.DISPUTE and x.net > 0)
        for x in payout.items
        if x.reference_id is not None
    )
    twice = sorted(f"{t} {ref}" for (t, ref, _), n in seen.items() if n > 1)
    if twice:
        raise InvalidEvent(f"{what} names {', '.join(twice)} more than once")


def _kind(item_type: PayoutItemType, net: Decimal) -> ClearingKind:
    if item_type is PayoutItemType.DISPUTE:
        return ClearingKind.DISPUTE_WON if net > 0 else ClearingKind.DISPUTE_OPENED
    return ClearingKind(item_type.value)


def references(payout: PayoutPaid) -> list[tuple[PayoutItemType, str]]:
    """The documents the payout's items name, to look up in the ERP."""
    return sorted(
        {(x.type, x.reference_id) for x in payout.items if x.type in DOCUMENTED and x.reference_id}
    )


def waiting_for(payout: PayoutPaid, documents: Iterable[ClearingDocument]) -> list[str]:
    """Documents the items name that the ERP does not hold yet, as `payment P-1`: a payment,
    refund or dispute not booked yet, or the win of a dispute still open."""
    held = {(d.kind, d.document_id): d for d in documents}
    missing = []
    for x in payout.items:
        if x.type not in DOCUMENTED or x.reference_id is None:
            continue
        kind = _kind(x.type, x.net)
        if (kind, x.reference_id) in held:
            continue
        opened = held.get((ClearingKind.DISPUTE_OPENED, x.reference_id))
        if kind is ClearingKind.DISPUTE_WON and opened and not opened.outcome_pending:
            continue  # lost: no reinstatement is coming; a mismatch
        missing.append(f"{x.type.lower()} {x.reference_id}")
    return missing


def match(payout: PayoutPaid, documents: Iterable[ClearingDocument]) -> PayoutBooking:
    """Match each item to the document it names; what does not match is a difference."""
    validate(payout)
    c = payout.currency
    held = {(d.kind, d.document_id): d for d in documents}
    items: list[BookedItem] = []
    differences: list[Difference] = []

    def differs(x: BookedItem, expected: Decimal | None, reason: str) -> None:
        kind = PayoutDifferenceType(x.type.value)
        differences.append(Difference(kind, x.reference_id, expected, x.net, x.net, reason))

    for n, item in enumerate(payout.items, 1):
        x = BookedItem(n, item.type, item.reference_id, item.gross, item.fee, item.net)
        if item.type is PayoutItemType.FEE:
            items.append(x)
            continue
        if item.type is PayoutItemType.ADJUSTMENT:
            differs(x, None, "an adjustment: no document to match")
        elif item.reference_id is None:
            differs(x, None, f"a {item.type.lower()} without a reference")
        else:
            doc = held.get((_kind(item.type, item.net), item.reference_id))
            problem = _problem(payout, item.net, doc)
            if problem:
                differs(x, doc.net if doc and doc.in_clearing else None, problem)
            else:
                assert doc is not None
                x = BookedItem(
                    n, item.type, item.reference_id, item.gross, item.fee, item.net, doc.kind
                )
        items.append(x)
    total = sum((x.net for x in payout.items), ZERO)
    if total != payout.amount:
        differences.append(
            Difference(
                PayoutDifferenceType.TOTAL,
                None,
                payout.amount,
                total,
                payout.amount - total,
                f"the items add up to {fmt(total, c)}, the payout is {fmt(payout.amount, c)}",
            )
        )
    return PayoutBooking(
        payout_id=payout.payout_id,
        legal_entity=payout.legal_entity,
        currency=c,
        amount=payout.amount,
        arrival_date=payout.arrival_date,
        items=tuple(items),
        differences=tuple(differences),
    )


def _problem(payout: PayoutPaid, net: Decimal, doc: ClearingDocument | None) -> str:
    """Why the item does not match the document it names; "" if it does."""
    c = payout.currency
    if doc is None:
        return "no such document in clearing"
    if (doc.legal_entity, doc.currency) != (payout.legal_entity, c):
        return f"booked in {doc.legal_entity} {doc.currency}"
    if not doc.in_clearing:
        return "booked to the bank, not to gateway clearing"
    if doc.paid_out_by is not None:
        return f"paid out already by payout {doc.paid_out_by}"
    if doc.net != net:
        return f"clearing holds {fmt(doc.net, c)} for it, the payout {fmt(net, c)}"
    return ""


def payout_journal(b: PayoutBooking) -> Journal:
    matched = [x.net for x in b.items if x.matched]
    return Journal(
        key=f"payout:{b.payout_id}",
        legal_entity=b.legal_entity,
        currency=b.currency,
        description=f"Payout {b.payout_id} ({b.status.value.lower()})",
        lines=(
            debit(CASH, b.amount),
            credit(GATEWAY_CLEARING, sum((n for n in matched if n > 0), ZERO)),
            debit(GATEWAY_CLEARING, -sum((n for n in matched if n < 0), ZERO)),
            debit(PAYMENT_FEES, b.fee_amount),
            credit(PAYOUT_DIFFERENCES, b.difference_amount),
        ),
        accounting_date=b.arrival_date,  # the day the money reached the bank
    )

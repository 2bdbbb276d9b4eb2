"""payment-settler's payout rule: a payout matched item by item against gateway clearing."""

import re
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from finsync.contract.events import (
    PayoutDifferenceType,
    PayoutItem,
    PayoutItemType,
    PayoutPaid,
    PayoutStatus,
)
from finsync.domain.accounting import (
    CASH,
    GATEWAY_CLEARING,
    PAYMENT_FEES,
    PAYOUT_DIFFERENCES,
)
from finsync.errors import DependencyNotReady, InvalidEvent
from finsync.ports.payouts import ClearingDocument, ClearingKind
from services.payment_settler.payout_handler import book_payout
from services.payment_settler.payouts import match, payout_journal, references, waiting_for

D = Decimal
ARRIVAL = date(2026, 12, 3)
T = PayoutItemType
K = ClearingKind


def item(type_, ref, net, fee="0.00"):
    return PayoutItem(type=type_, reference_id=ref, gross=D(net) + D(fee), fee=D(fee), net=D(net))


def payout(amount, *items, entity="ACME-DE", currency="EUR"):
    return PayoutPaid(
        event_id=uuid.uuid4(),
        occurred_at=datetime(2026, 12, 3, tzinfo=UTC),
        source="gateway",
        correlation_id="c-po",
        payout_id="PO-1",
        legal_entity=entity,
        currency=currency,
        amount=D(amount),
        arrival_date=ARRIVAL,
        items=list(items),
    )


def doc(kind, ref, net, **fields):
    return ClearingDocument(kind, ref, "ACME-DE", "EUR", D(net), **fields)


def lines(booking):
    """Net debit per account of the payout's journal."""
    out: dict[str, Decimal] = {}
    for x in payout_journal(booking).lines:
        out[x.account_code] = out.get(x.account_code, D(0)) + x.debit - x.credit
    return out


# Two card payments in clearing: 100.00 less 3.20 fee, and 50.00 less 1.75.
PAYMENTS = [doc(K.PAYMENT, "P-1", "96.80"), doc(K.PAYMENT, "P-2", "48.25")]


def test_every_item_matched_clears_clearing_into_the_bank():
    p = payout(
        "145.05", item(T.PAYMENT, "P-1", "96.80", "3.20"), item(T.PAYMENT, "P-2", "48.25", "1.75")
    )
    b = match(p, PAYMENTS)
    assert b.status is PayoutStatus.MATCHED
    assert (b.matched_amount, b.fee_amount, b.difference_amount) == (D("145.05"), 0, 0)
    assert [x.matched for x in b.items] == [K.PAYMENT, K.PAYMENT]
    assert lines(b) == {CASH: D("145.05"), GATEWAY_CLEARING: D("-145.05")}
    assert payout_journal(b).accounting_date == ARRIVAL
    assert payout_journal(b).key == "payout:PO-1"


def test_an_unknown_payment_waits_and_one_of_another_entity_is_a_difference():
    p = payout("145.05", item(T.PAYMENT, "P-1", "96.80"), item(T.PAYMENT, "P-9", "48.25"))
    assert waiting_for(p, PAYMENTS) == ["payment P-9"]
    elsewhere = [PAYMENTS[0], ClearingDocument(K.PAYMENT, "P-9", "ACME-US", "EUR", D("48.25"))]
    assert waiting_for(p, elsewhere) == []
    b = match(p, elsewhere)
    assert b.status is PayoutStatus.MISMATCH
    [d] = b.differences
    assert (d.type, d.reference_id, d.expected_net, d.reported_net, d.amount) == (
        PayoutDifferenceType.PAYMENT,
        "P-9",
        D("48.25"),
        D("48.25"),
        D("48.25"),
    )
    assert d.reason == "booked in ACME-US EUR"
    assert lines(b) == {
        CASH: D("145.05"),
        GATEWAY_CLEARING: D("-96.80"),
        PAYOUT_DIFFERENCES: D("-48.25"),
    }


def test_a_net_off_by_one_cent_is_a_difference_and_the_payment_stays_in_clearing():
    p = payout("145.04", item(T.PAYMENT, "P-1", "96.80"), item(T.PAYMENT, "P-2", "48.24"))
    b = match(p, PAYMENTS)
    [d] = b.differences
    assert (d.reference_id, d.expected_net, d.reported_net, d.amount) == (
        "P-2",
        D("48.25"),
        D("48.24"),
        D("48.24"),
    )
    assert d.reason == "clearing holds 48.25 EUR for it, the payout 48.24 EUR"
    assert b.items[1].matched is None
    assert b.matched_amount == D("96.80")
    assert lines(b) == {
        CASH: D("145.04"),
        GATEWAY_CLEARING: D("-96.80"),
        PAYOUT_DIFFERENCES: D("-48.24"),
    }


def test_a_fee_item_is_withheld_to_fees_and_still_matched():
    p = payout(
        "140.05",
        *[item(T.PAYMENT, "P-1", "96.80"), item(T.PAYMENT, "P-2", "48.25")],
        item(T.FEE, None, "-5.00", "5.00"),
    )
    b = match(p, PAYMENTS)
    assert b.status is PayoutStatus.MATCHED
    assert b.fee_amount == D("5.00")
    assert lines(b) == {CASH: D("140.05"), PAYMENT_FEES: D("5.00"), GATEWAY_CLEARING: D("-145.05")}


def test_an_adjustment_goes_to_payout_differences():
    p = payout("106.80", item(T.PAYMENT, "P-1", "96.80"), item(T.ADJUSTMENT, "ADJ-7", "10.00"))
    b = match(p, PAYMENTS)
    [d] = b.differences
    assert (d.type, d.expected_net, d.amount) == (PayoutDifferenceType.ADJUSTMENT, None, D("10.00"))
    assert lines(b) == {
        CASH: D("106.80"),
        GATEWAY_CLEARING: D("-96.80"),
        PAYOUT_DIFFERENCES: D("-10.00"),
    }
    assert references(p) == [(T.PAYMENT, "P-1")]  # an adjustment names no document


def test_items_that_do_not_add_up_to_the_amount_leave_the_gap_in_payout_differences():
    p = payout("150.00", item(T.PAYMENT, "P-1", "96.80"), item(T.PAYMENT, "P-2", "48.25"))
    b = match(p, PAYMENTS)
    assert [x.matched for x in b.items] == [K.PAYMENT, K.PAYMENT]
    [d] = b.differences
    assert (d.type, d.reference_id, d.expected_net, d.reported_net, d.amount) == (
        PayoutDifferenceType.TOTAL,
        None,
        D("150.00"),
        D("145.05"),
        D("4.95"),
    )
    assert d.reason == "the items add up to 145.05 EUR, the payout is 150.00 EUR"
    assert lines(b) == {
        CASH: D("150.00"),
        GATEWAY_CLEARING: D("-145.05"),
        PAYOUT_DIFFERENCES: D("-4.95"),
    }


def test_a_payment_a_payout_took_already_is_a_difference_in_the_second():
    taken = [doc(K.PAYMENT, "P-1", "96.80", paid_out_by="PO-0")]
    b = match(payout("96.80", item(T.PAYMENT, "P-1", "96.80")), taken)
    [d] = b.differences
    assert (d.reference_id, d.expected_net, d.amount) == ("P-1", D("96.80"), D("96.80"))
    assert d.reason == "paid out already by payout PO-0"
    assert lines(b) == {CASH: D("96.80"), PAYOUT_DIFFERENCES: D("-96.80")}


def test_a_payment_booked_to_the_bank_is_not_in_clearing():
    wire = [doc(K.PAYMENT, "P-1", "96.80", in_clearing=False)]
    [d] = match(payout("96.80", item(T.PAYMENT, "P-1", "96.80")), wire).differences
    assert (d.expected_net, d.reason) == (None, "booked to the bank, not to gateway clearing")


def test_refunds_and_disputes_match_their_signed_movement_in_clearing():
    # A refund of 20.00 with a 0.50 fee; a dispute of 30.00 with a 15.00 fee, then won.
    documents = [
        *PAYMENTS,
        doc(K.REFUND, "R-1", "-20.50"),
        doc(K.DISPUTE_OPENED, "DP-1", "-45.00"),
        doc(K.DISPUTE_WON, "DP-1", "30.00"),
    ]
    p = payout(
        "109.55",
        item(T.PAYMENT, "P-1", "96.80"),
        item(T.PAYMENT, "P-2", "48.25"),
        item(T.REFUND, "R-1", "-20.50", "0.50"),
        item(T.DISPUTE, "DP-1", "-45.00", "15.00"),
        item(T.DISPUTE, "DP-1", "30.00"),
    )
    b = match(p, documents)
    assert b.status is PayoutStatus.MATCHED
    assert [x.matched for x in b.items] == [
        K.PAYMENT,
        K.PAYMENT,
        K.REFUND,
        K.DISPUTE_OPENED,
        K.DISPUTE_WON,
    ]
    # In: 96.80 + 48.25 + 30.00; out: 20.50 + 45.00.
    journal = payout_journal(b)
    assert [(x.account_code, x.debit, x.credit) for x in journal.lines] == [
        (CASH, D("109.55"), 0),
        (GATEWAY_CLEARING, 0, D("175.05")),
        (GATEWAY_CLEARING, D("65.50"), 0),
    ]


def test_a_dispute_win_not_booked_yet_waits_but_a_lost_one_is_a_difference():
    p = payout("30.00", item(T.DISPUTE, "DP-1", "30.00"))
    still_open = [doc(K.DISPUTE_OPENED, "DP-1", "-45.00", outcome_pending=True)]
    assert waiting_for(p, still_open) == ["dispute DP-1"]
    lost = [doc(K.DISPUTE_OPENED, "DP-1", "-45.00")]
    assert waiting_for(p, lost) == []
    [d] = match(p, lost).differences
    assert (d.type, d.expected_net, d.reason) == (
        PayoutDifferenceType.DISPUTE,
        None,
        "no such document in clearing",
    )


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ([], "payout PO-1 has no items"),
        (
            [PayoutItem(type=T.PAYMENT, reference_id="P-1", gross=D(100), fee=D(3), net=D(96))],
            "payout PO-1 item 1 (PAYMENT): gross 100.00 EUR less fee 3.00 EUR "
            "is not its net 96.00 EUR",
        ),
        (
            [item(T.PAYMENT, "P-1", "96.80"), item(T.PAYMENT, "P-1", "96.80")],
            "payout PO-1 names PAYMENT P-1 more than once",
        ),
        ([item(T.PAYMENT, "P-1", "96.805")], "items[1].gross 96.805 has more than 2 decimals"),
    ],
)
def test_a_bad_payout_is_invalid(items, reason):
    with pytest.raises(InvalidEvent, match=re.escape(reason)):
        match(payout("96.80", *items), PAYMENTS)


class FakeErp:
    def __init__(self, documents):
        self.documents = documents
        self.booked = []

    def clearing_documents(self, refs):
        return [d for d in self.documents if (T(d.kind.value.split("_")[0]), d.document_id) in refs]

    def book_payout(self, booking, journal):
        from finsync.ports.erp import Posted

        self.booked.append((booking, journal))
        return Posted("PO-PO-1", "JE-1", datetime(2026, 12, 3, tzinfo=UTC), ARRIVAL)


def test_the_handler_waits_for_a_payment_not_booked_then_publishes_the_reconciliation():
    from services.payment_settler.handler import Systems

    p = payout("145.04", item(T.PAYMENT, "P-1", "96.80"), item(T.PAYMENT, "P-2", "48.24"))
    erp = FakeErp(PAYMENTS[:1])
    with pytest.raises(DependencyNotReady, match="payout PO-1 names payment P-2, not booked yet"):
        book_payout(p, Systems(erp, None, None))  # type: ignore[arg-type]
    assert erp.booked == []
    erp.documents = PAYMENTS
    [event] = book_payout(p, Systems(erp, None, None))  # type: ignore[arg-type]
    assert (event.payout_id, event.status, event.matched_amount) == (
        "PO-1",
        PayoutStatus.MISMATCH,
        D("96.80"),
    )
    [d] = event.differences
    assert (d.reference_id, d.expected_net, d.reported_net) == ("P-2", D("48.25"), D("48.24"))
    assert event.journal_entry_id == "JE-1" and event.accounting_date == ARRIVAL
    assert event.causation_id == str(p.event_id)

"""payment-settler's refund and dispute rules and handlers, with exact figures."""

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from finsync.contract.events import DisputeStatus, DisputeUpdated, RefundSettled
from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    CUSTOMER_CREDIT,
    DISPUTED_RECEIVABLES,
    GATEWAY_CLEARING,
    PAYMENT_FEES,
    UNAPPLIED_CASH,
    WRITE_OFF,
)
from finsync.errors import DependencyNotReady, InvalidEvent
from finsync.ports.erp import BookedPayment, Dispute, PaidInvoice, Posted, Reversal
from services.payment_settler import disputes
from services.payment_settler.handler import Systems
from services.payment_settler.refund_handler import settle_refund, update_dispute
from services.payment_settler.refunds import allocate, refund_journal

D = Decimal
AT = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)
ENVELOPE = dict(occurred_at=AT, source="payments", correlation_id="c-9")


def refund(amount="100.00", fee="0.00", payment_id="PAY-1", **overrides):
    fields = dict(
        event_id=uuid.uuid4(),
        refund_id="RF-1",
        account_id="A-1",
        payment_id=payment_id,
        legal_entity="ACME-DE",
        currency="EUR",
        amount=D(amount),
        fee_amount=D(fee),
        refunded_at=AT,
        gateway_reference="GW-R1",
        **ENVELOPE,
    )
    return RefundSettled(**{**fields, **overrides})


def dispute_event(status="OPENED", amount="100.00", fee="15.00", **overrides):
    fields = dict(
        event_id=uuid.uuid4(),
        dispute_id="DP-1",
        payment_id="PAY-1",
        account_id="A-1",
        legal_entity="ACME-DE",
        currency="EUR",
        status=DisputeStatus(status),
        amount=D(amount),
        fee_amount=D(fee),
        updated_at=AT,
        reason="fraudulent",
        **ENVELOPE,
    )
    return DisputeUpdated(**{**fields, **overrides})


def lines(journal):
    return [(x.account_code, x.debit, x.credit) for x in journal.lines]


def paid(invoice_id, amount, credited=False, payment_id="PAY-1"):
    return PaidInvoice(payment_id, invoice_id, D(amount), credited)


# Refunds: sources in order.


def test_a_refund_uses_credit_first_then_unapplied_cash_then_reopens_invoices():
    b = allocate(
        refund("250.00", fee="2.50"),
        D("40.00"),
        [("PAY-1", D("30.00")), ("PAY-0", D("50.00"))],
        [paid("INV-2", "100.00"), paid("INV-1", "200.00")],
    )
    assert b.from_credit == D("40.00")
    assert b.reversals == (
        Reversal("PAY-1", None, D("30.00")),
        Reversal("PAY-0", None, D("50.00")),
        Reversal("PAY-1", "INV-2", D("100.00")),
        Reversal("PAY-1", "INV-1", D("30.00")),
    )
    assert (b.from_unapplied, b.from_invoices) == (D("80.00"), D("130.00"))
    assert lines(refund_journal(b)) == [
        (CUSTOMER_CREDIT, D("40.00"), 0),
        (UNAPPLIED_CASH, D("80.00"), 0),
        (ACCOUNTS_RECEIVABLE, D("100.00"), 0),
        (ACCOUNTS_RECEIVABLE, D("30.00"), 0),
        (PAYMENT_FEES, D("2.50"), 0),
        (GATEWAY_CLEARING, 0, D("252.50")),
    ]
    assert refund_journal(b).key == "refund:RF-1"
    assert refund_journal(b).accounting_date.isoformat() == "2026-12-03"


def test_a_refund_within_the_credit_balance_touches_nothing_else():
    b = allocate(refund("25.00"), D("40.00"), [("PAY-1", D("30.00"))], [paid("INV-1", "9")])
    assert (b.from_credit, b.reversals) == (D("25.00"), ())
    assert lines(refund_journal(b)) == [
        (CUSTOMER_CREDIT, D("25.00"), 0),
        (GATEWAY_CLEARING, 0, D("25.00")),
    ]


def test_a_refund_skips_an_invoice_with_a_credit_memo():
    b = allocate(
        refund("60.00"),
        D(0),
        [],
        [paid("INV-2", "50.00", credited=True), paid("INV-1", "80.00")],
    )
    assert b.reversals == (Reversal("PAY-1", "INV-1", D("60.00")),)


def test_a_refund_naming_no_payment_reopens_no_invoice():
    with pytest.raises(InvalidEvent, match=re.escape("10.00 EUR short")):
        allocate(refund("40.00", payment_id=None), D("10.00"), [("PAY-7", D("20.00"))], [])


def test_an_over_refund_is_rejected_with_the_figures():
    with pytest.raises(InvalidEvent) as e:
        allocate(
            refund("300.00"),
            D("40.00"),
            [("PAY-1", D("30.00"))],
            [paid("INV-1", "200.00"), paid("INV-2", "20.00", credited=True)],
        )
    message = str(e.value)
    for figure in ("300.00 EUR", "40.00 EUR credit", "30.00 EUR unapplied", "200.00 EUR paid"):
        assert figure in message
    assert "30.00 EUR short" in message


@pytest.mark.parametrize(
    ("amount", "fee", "why"),
    [("0.00", "0.00", "positive"), ("10.00", "-1.00", "negative"), ("10.001", "0", "decimals")],
)
def test_a_malformed_refund_is_rejected(amount, fee, why):
    with pytest.raises(InvalidEvent, match=why):
        allocate(refund(amount, fee=fee), D(100), [], [])


# Disputes.


def booked(amount="100.00", unapplied="0.00", currency="EUR"):
    return BookedPayment("PAY-1", "A-1", "ACME-DE", currency, D(amount), D(unapplied), None)


def opened(amount="100.00", fee="15.00", status="OPENED"):
    return Dispute("DP-1", "PAY-1", "A-1", "ACME-DE", "EUR", D(amount), D(fee), status, AT)


def test_an_opened_dispute_moves_the_funds_from_clearing_to_disputed_receivables():
    d = disputes.opening(dispute_event(), booked(), None)
    assert lines(disputes.opened_journal(d)) == [
        (DISPUTED_RECEIVABLES, D("100.00"), 0),
        (PAYMENT_FEES, D("15.00"), 0),
        (GATEWAY_CLEARING, 0, D("115.00")),
    ]


def test_a_dispute_above_its_payment_or_in_another_currency_is_rejected():
    with pytest.raises(InvalidEvent, match=re.escape("more than payment PAY-1's 99.99 EUR")):
        disputes.opening(dispute_event(), booked("99.99"), None)
    with pytest.raises(InvalidEvent, match="USD"):
        disputes.opening(dispute_event(), booked(currency="USD"), None)
    with pytest.raises(DependencyNotReady, match="not booked yet"):
        disputes.opening(dispute_event(), None, None)
    assert disputes.opening(dispute_event(), booked(), opened(status="LOST")) is None
    with pytest.raises(InvalidEvent, match=re.escape("was opened for 100.00 EUR")):
        disputes.opening(dispute_event(amount="90.00"), booked(), opened(status="LOST"))


def test_a_won_dispute_reinstates_the_amount_but_not_the_fee():
    d = disputes.check_outcome(dispute_event("WON"), opened())
    assert lines(disputes.won_journal(d, AT)) == [
        (GATEWAY_CLEARING, D("100.00"), 0),
        (DISPUTED_RECEIVABLES, 0, D("100.00")),
    ]


def test_a_lost_dispute_reopens_unapplied_cash_first_then_invoices_latest_first():
    loss = disputes.lose(
        opened("100.00"),
        "reopen",
        D("30.00"),
        [paid("INV-3", "20.00", credited=True), paid("INV-2", "50.00"), paid("INV-1", "70.00")],
    )
    assert loss.reversals == (
        Reversal("PAY-1", None, D("30.00")),
        Reversal("PAY-1", "INV-2", D("50.00")),
        Reversal("PAY-1", "INV-1", D("20.00")),
    )
    assert loss.written_off == 0
    assert lines(disputes.lost_journal(opened("100.00"), loss, AT)) == [
        (UNAPPLIED_CASH, D("30.00"), 0),
        (ACCOUNTS_RECEIVABLE, D("50.00"), 0),
        (ACCOUNTS_RECEIVABLE, D("20.00"), 0),
        (DISPUTED_RECEIVABLES, 0, D("100.00")),
    ]


def test_a_lost_dispute_writes_off_what_its_payment_no_longer_has():
    loss = disputes.lose(opened("100.00"), "reopen", D("10.00"), [paid("INV-1", "25.00")])
    assert loss.written_off == D("65.00")
    assert lines(disputes.lost_journal(opened("100.00"), loss, AT)) == [
        (UNAPPLIED_CASH, D("10.00"), 0),
        (ACCOUNTS_RECEIVABLE, D("25.00"), 0),
        (WRITE_OFF, D("65.00"), 0),
        (DISPUTED_RECEIVABLES, 0, D("100.00")),
    ]


def test_a_lost_dispute_under_write_off_goes_to_6900_at_once():
    loss = disputes.lose(opened("100.00"), "write-off", D("30.00"), [paid("INV-1", "70.00")])
    assert (loss.reversals, loss.written_off) == ((), D("100.00"))
    assert lines(disputes.lost_journal(opened("100.00"), loss, AT)) == [
        (WRITE_OFF, D("100.00"), 0),
        (DISPUTED_RECEIVABLES, 0, D("100.00")),
    ]


@pytest.mark.parametrize(("before", "now"), [("LOST", "WON"), ("WON", "LOST")])
def test_a_second_different_outcome_is_rejected(before, now):
    with pytest.raises(InvalidEvent, match=f"was {before} already: it cannot also be {now}"):
        disputes.check_outcome(dispute_event(now), opened(status=before))


def test_an_outcome_for_another_amount_than_opened_is_rejected():
    with pytest.raises(InvalidEvent, match=re.escape("opened for 100.00 EUR")):
        disputes.check_outcome(dispute_event("WON", amount="90.00"), opened())


# The handlers, on a fake ERP.


class FakeErp:
    def __init__(self, credit="0", unapplied=(), paid_=(), payment=None, known=None):
        self.credit = D(credit)
        self.unapplied = list(unapplied)
        self.paid = list(paid_)
        self.payment = payment
        self.known = known
        self.booked = []

    def booked_payment(self, payment_id):
        return self.payment

    def credit_held(self, holder):
        return self.credit

    def unapplied_cash(self, holder, first):
        return self.unapplied

    def paid_invoices(self, payment_id):
        return self.paid

    def book_refund(self, booking, journal):
        self.booked.append((booking, journal))
        return Posted("RF", "JE-1", AT)

    def dispute(self, dispute_id):
        return self.known

    def open_dispute(self, dispute, journal):
        self.booked.append((dispute, journal))
        return Posted("DP", "JE-1", AT)

    def close_dispute(self, dispute_id, status, closed_at, journal, loss=None):
        self.booked.append((status, journal, loss))
        return Posted("DP", "JE-2", AT)


def systems(erp, policy="reopen"):
    return Systems(erp=erp, crossref=None, tolerances=None, lost_disputes=policy)


def test_a_refund_of_a_payment_not_booked_waits():
    with pytest.raises(DependencyNotReady, match="PAY-1, which is not booked yet"):
        settle_refund(refund(), systems(FakeErp()))


def test_a_refund_of_another_payers_payment_is_rejected():
    other = BookedPayment("PAY-1", "A-2", "ACME-DE", "EUR", D(100), D(100), None)
    with pytest.raises(InvalidEvent, match="from account A-2"):
        settle_refund(refund(), systems(FakeErp(payment=other)))


def test_a_refund_is_booked_and_publishes_nothing():
    erp = FakeErp(credit="20.00", unapplied=[("PAY-1", D("80.00"))], payment=booked())
    assert settle_refund(refund("100.00", fee="1.00"), systems(erp)) == []
    [(b, journal)] = erp.booked
    assert (b.from_credit, b.from_unapplied, b.from_invoices) == (D(20), D(80), D(0))
    assert journal.lines[-1].credit == D("101.00")


def test_a_lost_dispute_follows_the_policy():
    for policy, written_off in (("reopen", D("40.00")), ("write-off", D("100.00"))):
        erp = FakeErp(payment=booked(unapplied="60.00"), known=opened())
        update_dispute(dispute_event("LOST"), systems(erp, policy))
        [(status, journal, loss)] = erp.booked
        assert (status, loss.policy, loss.written_off) == ("LOST", policy, written_off)
        assert journal.key == "dispute:DP-1:closed"


@pytest.mark.parametrize("status", ["WON", "LOST"])
def test_an_outcome_before_its_opening_books_the_opening_too(status):
    erp = FakeErp(payment=booked(unapplied="100.00"), known=None)
    assert update_dispute(dispute_event(status), systems(erp)) == []
    [(d, opening), (closed, closing, _)] = erp.booked
    assert (d.status, d.amount, d.fee_amount, closed) == ("OPENED", D(100), D(15), status)
    assert lines(opening) == [
        (DISPUTED_RECEIVABLES, D("100.00"), 0),
        (PAYMENT_FEES, D("15.00"), 0),
        (GATEWAY_CLEARING, 0, D("115.00")),
    ]
    assert closing.key == "dispute:DP-1:closed"


def test_an_outcome_before_its_payment_is_booked_waits():
    with pytest.raises(DependencyNotReady, match="PAY-1, which is not booked yet"):
        update_dispute(dispute_event("LOST"), systems(FakeErp()))


def test_the_opening_after_its_outcome_takes_no_effect():
    erp = FakeErp(payment=booked(), known=opened(status="LOST"))
    assert update_dispute(dispute_event("OPENED"), systems(erp)) == []
    assert erp.booked == []

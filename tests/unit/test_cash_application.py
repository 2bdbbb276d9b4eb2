"""payment-settler's cash application rule and handler, as a specification."""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from finsync.contract.events import PaymentSettled, PaymentStatus
from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    CASH,
    PAYMENT_FEES,
    UNAPPLIED_CASH,
    WRITE_OFF,
)
from finsync.domain.write_off import Tolerance, Tolerances
from finsync.errors import DependencyNotReady, InvalidEvent
from finsync.ports.crossref import AccountLink
from finsync.ports.erp import OpenItem, Posted
from services.payment_settler.cash import NO_OVERRIDES, apply, payment_journal
from services.payment_settler.handler import Systems, settle_payment

D = Decimal
SETTLED_AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
ENVELOPE = dict(occurred_at=SETTLED_AT, source="payments", correlation_id="c-3")


def payment(amount="120.00", fee="0.00", currency="EUR", invoice_id="INV-1", **overrides):
    fields = dict(
        event_id=uuid.uuid4(),
        payment_id="PAY-1",
        account_id="A-1",
        invoice_id=invoice_id,
        amount=D(amount),
        fee_amount=D(fee),
        currency=currency,
        settled_at=SETTLED_AT,
        method="SEPA",
        gateway_reference="GW-1",
        **ENVELOPE,
    )
    return PaymentSettled(**{**fields, **overrides})


def invoice(open_amount="120.00", original="120.00", currency="EUR", legal_entity="ACME-DE"):
    return OpenItem(
        invoice_id="INV-1",
        invoice_number="N-1",
        account_id="A-1",
        legal_entity=legal_entity,
        currency=currency,
        issued_on=date(2026, 11, 2),
        due_on=date(2026, 12, 2),
        original_amount=D(original),
        open_amount=D(open_amount),
    )


def applied(pay, item, tolerances=NO_OVERRIDES):
    return apply(pay, item, "C-1", "ACME-XX", tolerances)


def every_currency(amount):
    return Tolerances(overall=Tolerance(D(amount)))


def balances(journal):
    out = {}
    for x in journal.lines:
        out[x.account_code] = out.get(x.account_code, D(0)) + x.debit - x.credit
    return out


def split(a):
    return (a.applied_amount, a.written_off_amount, a.unapplied_amount, a.status)


def test_a_payment_of_the_open_amount_pays_the_invoice():
    a = applied(payment("120.00"), invoice("120.00"))
    assert split(a) == (D("120.00"), D(0), D(0), PaymentStatus.PAID)
    assert a.settles == D("120.00")
    assert balances(payment_journal(a)) == {CASH: D("120.00"), ACCOUNTS_RECEIVABLE: D("-120.00")}


def test_a_payment_short_of_the_open_amount_leaves_the_invoice_partially_paid():
    a = applied(payment("50.00"), invoice("120.00"))
    assert split(a) == (D("50.00"), D(0), D(0), PaymentStatus.PARTIALLY_PAID)
    assert invoice("120.00").open_amount - a.settles == D("70.00")


def test_a_payment_larger_than_the_open_amount_leaves_the_excess_as_unapplied_cash():
    a = applied(payment("150.00"), invoice("120.00"))
    assert split(a) == (D("120.00"), D(0), D("30.00"), PaymentStatus.PAID)
    assert balances(payment_journal(a)) == {
        CASH: D("150.00"),
        ACCOUNTS_RECEIVABLE: D("-120.00"),
        UNAPPLIED_CASH: D("-30.00"),
    }


def test_a_payment_without_an_invoice_is_all_unapplied_cash():
    a = applied(payment("80.00", invoice_id=None), None)
    assert split(a) == (D(0), D(0), D("80.00"), PaymentStatus.UNAPPLIED)
    assert a.invoice_id is None
    assert a.legal_entity == "ACME-XX"  # the payer's, there being no invoice
    assert balances(payment_journal(a)) == {CASH: D("80.00"), UNAPPLIED_CASH: D("-80.00")}


@pytest.mark.parametrize("short", ["0.01", "0.05"])
def test_a_payment_short_by_no_more_than_the_tolerance_pays_and_writes_off_the_rest(short):
    a = applied(payment(str(D("120.00") - D(short))), invoice("120.00"))
    assert split(a) == (D("120.00") - D(short), D(short), D(0), PaymentStatus.PAID)
    assert a.settles == D("120.00")
    assert balances(payment_journal(a))[WRITE_OFF] == D(short)
    assert WRITE_OFF == "6900"


def test_a_payment_short_by_more_than_the_tolerance_writes_nothing_off():
    a = applied(payment("119.94"), invoice("120.00"))
    assert split(a) == (D("119.94"), D(0), D(0), PaymentStatus.PARTIALLY_PAID)
    assert WRITE_OFF not in balances(payment_journal(a))


def test_the_tolerance_is_configurable():
    a = applied(payment("119.00"), invoice("120.00"), every_currency("1.00"))
    assert split(a) == (D("119.00"), D("1.00"), D(0), PaymentStatus.PAID)
    a = applied(payment("119.99"), invoice("120.00"), every_currency("0"))
    assert a.status is PaymentStatus.PARTIALLY_PAID and a.written_off_amount == 0


def test_a_yen_payment_short_by_a_few_yen_is_written_off():
    a = applied(payment("9997", currency="JPY"), invoice("10000", "10000", currency="JPY"))
    assert split(a) == (D("9997"), D(3), D(0), PaymentStatus.PAID)  # within the 5 yen default
    a = applied(payment("9994", currency="JPY"), invoice("10000", "10000", currency="JPY"))
    assert split(a) == (D("9994"), D(0), D(0), PaymentStatus.PARTIALLY_PAID)


def test_a_payment_on_a_fully_paid_invoice_is_all_unapplied_cash():
    a = applied(payment("120.00"), invoice("0.00"))
    assert split(a) == (D(0), D(0), D("120.00"), PaymentStatus.UNAPPLIED)
    assert a.invoice_id == "INV-1"
    assert balances(payment_journal(a)) == {CASH: D("120.00"), UNAPPLIED_CASH: D("-120.00")}


def test_the_invoice_decides_the_legal_entity():
    a = apply(payment(), invoice(legal_entity="ACME-DE"), "C-1", "ACME-US")
    assert a.legal_entity == "ACME-DE"
    assert payment_journal(a).legal_entity == "ACME-DE"


def test_cash_is_debited_net_of_the_fee_and_the_fee_is_an_expense():
    a = applied(payment("120.00", fee="3.50"), invoice("120.00"))
    assert split(a) == (D("120.00"), D(0), D(0), PaymentStatus.PAID)
    assert balances(payment_journal(a)) == {
        CASH: D("116.50"),
        PAYMENT_FEES: D("3.50"),
        ACCOUNTS_RECEIVABLE: D("-120.00"),
    }


@pytest.mark.parametrize(
    ("amount", "fee", "open_amount"),
    [
        ("120.00", "0.00", "120.00"),
        ("50.00", "1.25", "120.00"),
        ("150.00", "2.00", "120.00"),
        ("119.97", "0.40", "120.00"),
        ("119.00", "119.00", "120.00"),
        ("10.00", "0.30", "0.00"),
        ("10.00", "0.30", None),
    ],
)
def test_every_payment_journal_balances(amount, fee, open_amount):
    item = None if open_amount is None else invoice(open_amount)
    pay = payment(amount, fee, invoice_id=None if item is None else "INV-1")
    a = applied(pay, item)
    journal = payment_journal(a)
    assert sum(x.debit for x in journal.lines) == sum(x.credit for x in journal.lines)
    assert balances(journal).get(CASH, D(0)) == D(amount) - D(fee)  # zero lines are dropped
    assert journal.key == "payment:PAY-1"
    assert a.applied_amount + a.unapplied_amount == a.amount


@pytest.mark.parametrize(
    ("pay", "reason"),
    [
        (payment("0.00"), "positive"),
        (payment("-5.00"), "positive"),
        (payment("10.00", fee="-0.01"), "fee must not be negative"),
        (payment("10.00", fee="10.01"), "exceeds"),
        (payment("10.001"), "decimals"),
        (payment("10.00", fee="0.001"), "decimals"),
        (payment("100.5", currency="JPY"), "decimals"),
        (payment(currency="EURO"), "unknown currency"),
    ],
)
def test_an_invalid_payment_is_rejected_with_a_reason(pay, reason):
    with pytest.raises(InvalidEvent, match=reason):
        applied(pay, None)


def test_a_payment_in_another_currency_than_its_invoice_is_rejected():
    with pytest.raises(InvalidEvent, match="USD"):
        applied(payment(currency="USD"), invoice(currency="EUR"))


class FakeErp:
    def __init__(self, *items):
        self.items = {x.invoice_id: x for x in items}
        self.applications = []

    def open_item(self, invoice_id, lock=False):
        return self.items.get(invoice_id)

    def open_item_for_earmark(self, invoice_id):
        return self.items.get(invoice_id)

    def apply_payment(self, application, journal):
        self.applications.append((application, journal))
        return Posted("DOC-1", "JE-1", SETTLED_AT)

    def flush(self):
        pass


class FakeCrossReference:
    def __init__(self, *links):
        self.links = {x.account_id: x for x in links}

    def link(self, account_id, lock=False):
        return self.links.get(account_id)


def payer(**overrides):
    fields = dict(
        account_id="A-1",
        erp_customer_id="C-1",
        billing_account_id="B-1",
        version=1,
        name="ACME Software",
        normalized_name="acme software",
        country="DE",
        currency="EUR",
        legal_entity="ACME-US",
    )
    return AccountLink(**{**fields, **overrides})


def systems(items=(), links=None, tolerances=NO_OVERRIDES):
    links = [payer()] if links is None else links
    return Systems(erp=FakeErp(*items), crossref=FakeCrossReference(*links), tolerances=tolerances)


def test_a_settled_payment_is_applied_in_the_erp_and_published():
    s = systems(items=[invoice("120.00", legal_entity="ACME-DE")])
    event = payment("119.97", fee="1.00")
    [published] = settle_payment(event, s)
    [(application, journal)] = s.erp.applications
    assert application.customer_id == "C-1"
    assert published.payment_id == "PAY-1" and published.invoice_id == "INV-1"
    assert published.status is PaymentStatus.PAID
    assert published.applied_amount == D("119.97")
    assert published.written_off_amount == D("0.03")
    assert published.unapplied_amount == D(0)
    assert published.invoice_open_after == D(0)
    assert published.legal_entity == "ACME-DE"  # the invoice's, not the payer's ACME-US
    assert published.account_id == "A-1" and published.erp_customer_id == "C-1"
    assert published.journal_entry_id == "JE-1"
    assert published.journal_lines == list(journal.lines)
    assert published.correlation_id == "c-3"
    assert published.causation_id == str(event.event_id)


def test_the_published_open_amount_is_what_the_invoice_still_owes():
    s = systems(items=[invoice("120.00")])
    [published] = settle_payment(payment("50.00"), s)
    assert published.status is PaymentStatus.PARTIALLY_PAID
    assert published.invoice_open_after == D("70.00")
    assert published.written_off_amount == D(0)


def test_the_tolerance_comes_from_the_systems():
    s = systems(items=[invoice("120.00")], tolerances=every_currency("0"))
    [published] = settle_payment(payment("119.99"), s)
    assert published.status is PaymentStatus.PARTIALLY_PAID
    assert published.invoice_open_after == D("0.01")


def test_a_payment_without_an_invoice_is_unapplied_cash_of_the_payers_legal_entity():
    s = systems()
    [published] = settle_payment(payment("80.00", invoice_id=None), s)
    assert published.status is PaymentStatus.UNAPPLIED
    assert published.invoice_open_after is None
    assert published.unapplied_amount == D("80.00")
    assert published.legal_entity == "ACME-US"


def test_a_payment_for_an_invoice_not_posted_yet_is_booked_at_once_and_earmarked():
    s = systems()
    [published] = settle_payment(payment("120.00"), s)
    [(application, journal)] = s.erp.applications
    assert application.invoice_id is None and application.unapplied_amount == D("120.00")
    assert [(e.invoice_id, e.amount) for e in application.earmarks] == [("INV-1", D("120.00"))]
    assert balances(journal) == {CASH: D("120.00"), UNAPPLIED_CASH: D("-120.00")}
    assert published.status is PaymentStatus.UNAPPLIED
    assert [(e.invoice_id, e.amount) for e in published.earmarked] == [("INV-1", D("120.00"))]


def test_a_payment_from_an_account_not_synced_yet_waits():
    s = systems(items=[invoice()], links=())
    with pytest.raises(DependencyNotReady, match="A-1"):
        settle_payment(payment(), s)
    assert s.erp.applications == []


def test_a_payment_without_an_invoice_in_another_currency_than_the_account_is_rejected():
    s = systems()
    with pytest.raises(InvalidEvent, match="billed in EUR"):
        settle_payment(payment(currency="USD", invoice_id=None), s)
    assert s.erp.applications == []


def test_an_invalid_payment_is_rejected_before_waiting_for_anything():
    s = systems(links=())
    with pytest.raises(InvalidEvent):
        settle_payment(payment("0.00"), s)

"""payment-settler's cross-currency application: a payment in another currency than its
invoice, applied at the day's cross rate where the invoice's entity does that."""

from datetime import date
from decimal import Decimal

import pytest

from finsync.domain import fx
from finsync.errors import DependencyNotReady, InvalidEvent
from finsync.ports.erp import CrossRate
from services.payment_settler.handler import Systems, settle_payment
from tests.unit.test_cash_application import (
    FakeCrossReference,
    FakeErp,
    invoice,
    payer,
    payment,
)

D = Decimal
GBP_EUR = D("1.1627906977")


class CrossErp(FakeErp):
    """ACME-UK applies across currencies at GBP -> EUR 1.1628 (1 / 0.86, as loaded inverted)."""

    def __init__(self, *items, rate=GBP_EUR):
        super().__init__(*items)
        self.rate = rate
        self.asked = []

    def cross_rate(self, legal_entity, from_currency, to_currency, on):
        self.asked.append((legal_entity, from_currency, to_currency, on))
        if legal_entity != "ACME-UK":
            return None
        if self.rate is None:
            raise DependencyNotReady(fx.missing_rate(from_currency, to_currency, on))
        return CrossRate(self.rate, "GBP")


def systems(erp):
    return Systems(erp=erp, crossref=FakeCrossReference(payer()), tolerances=FakeTolerances())


class FakeTolerances:
    def amount(self, currency, original):
        return D("0.05")


def booked(journal):
    return [
        (x.account_code, x.debit, x.credit, x.functional_debit, x.functional_credit, x.rate)
        for x in journal.lines
    ]


def test_a_gbp_payment_pays_a_eur_invoice_at_the_cross_rate_and_keeps_what_was_sent():
    erp = CrossErp(invoice("1000.00", "1000.00", legal_entity="ACME-UK"))
    [published] = settle_payment(payment("860.00", fee="8.60", currency="GBP"), systems(erp))
    [(application, journal)] = erp.applications
    assert erp.asked == [("ACME-UK", "GBP", "EUR", date(2026, 12, 1))]
    # 860.00 GBP x 1.1627906977 = 1000.00 EUR; fee 8.60 GBP = 10.00 EUR.
    assert (application.currency, application.amount, application.fee_amount) == (
        "EUR",
        D("1000.00"),
        D("10.00"),
    )
    assert application.applied_amount == D("1000.00") and application.unapplied_amount == D(0)
    sent = application.cross
    assert (sent.currency, sent.amount, sent.fee_amount, sent.rate) == (
        "GBP",
        D("860.00"),
        D("8.60"),
        D("1.1627906977"),
    )
    # The journal is in EUR; bank and fee carry exactly the GBP sent; AR waits for the ERP's
    # booked rate, the rest for the day's rate.
    assert journal.currency == "EUR"
    assert booked(journal) == [
        ("1000", D("990.00"), D(0), D("851.40"), D(0), D("0.8600000000")),
        ("6100", D("10.00"), D(0), D("8.60"), D(0), D("0.8600000000")),
        ("1200", D(0), D("1000.00"), None, None, None),
    ]
    assert published.currency == "EUR" and published.applied_amount == D("1000.00")
    # In functional terms: 860.00 GBP in; AR booked at 0.85 relieves 850.00: a gain of 10.00.
    lines = tuple(
        x.model_copy(update={"rate": D("0.85")}) if x.account_code == "1200" else x
        for x in journal.lines
    )
    booked_lines = fx.convert(lines, "GBP", D("0.86"))
    assert [(x.account_code, x.functional_debit, x.functional_credit) for x in booked_lines] == [
        ("1000", D("851.40"), D(0)),
        ("6100", D("8.60"), D(0)),
        ("1200", D(0), D("850.00")),
        ("7100", D(0), D("10.00")),
    ]


def test_a_short_cross_currency_payment_is_applied_in_part_at_the_converted_amount():
    erp = CrossErp(invoice("1000.00", "1000.00", legal_entity="ACME-UK"))
    [published] = settle_payment(payment("430.00", currency="GBP"), systems(erp))
    # 430.00 x 1.1627906977 = 500.000000011: 500.00 EUR applied, 500.00 still open.
    assert published.applied_amount == D("500.00") and published.invoice_open_after == D("500.00")
    assert published.status == "PARTIALLY_PAID"


def test_an_entity_that_does_not_apply_cross_currency_payments_dead_letters_them():
    erp = CrossErp(invoice("120.00", legal_entity="ACME-DE"))
    with pytest.raises(InvalidEvent) as caught:
        settle_payment(payment("100.00", currency="USD"), systems(erp))
    assert str(caught.value) == (
        "payment PAY-1 is in USD but invoice INV-1 is in EUR, and ACME-DE does not apply "
        "cross-currency payments"
    )
    assert erp.applications == []


def test_no_rate_for_the_pair_waits_naming_the_rate_to_load():
    erp = CrossErp(invoice("120.00", legal_entity="ACME-UK"), rate=None)
    with pytest.raises(DependencyNotReady) as caught:
        settle_payment(payment("100.00", currency="GBP"), systems(erp))
    assert str(caught.value) == (
        "no FX rate GBP->EUR (or EUR->GBP) on or before 2026-12-01: load one with "
        "`finsync erp rates load FILE`"
    )


def test_a_payment_in_the_invoices_currency_asks_for_no_cross_rate():
    erp = CrossErp(invoice("120.00", legal_entity="ACME-UK"))
    settle_payment(payment("120.00"), systems(erp))
    [(application, journal)] = erp.applications
    assert erp.asked == [] and application.cross is None
    assert all(x.functional_debit is None for x in journal.lines)

"""Write-off tolerance per currency, optionally a percentage of the invoice."""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from finsync.contract.events import PaymentSettled, PaymentStatus
from finsync.domain.accounting import MINOR_UNITS
from finsync.domain.write_off import DEFAULT_TOLERANCES, Tolerance, Tolerances
from finsync.ports.erp import OpenItem
from finsync.settings import Settings
from services.payment_settler.cash import NO_OVERRIDES, apply

D = Decimal


def settle(amount, original, currency, tolerances=NO_OVERRIDES):
    settled_at = datetime(2026, 12, 1, tzinfo=UTC)
    payment = PaymentSettled(
        event_id=uuid.uuid4(), occurred_at=settled_at, source="payments", correlation_id="c",
        payment_id="PAY-1", account_id="A-1",
        invoice_id="INV-1", amount=D(amount), fee_amount=D(0), currency=currency,
        settled_at=settled_at, method="WIRE", gateway_reference="GW-1",
    )  # fmt: skip
    item = OpenItem("INV-1", "N-1", "A-1", "ACME-XX", currency, date(2026, 11, 1),
                    date(2026, 12, 1), D(original), D(original))  # fmt: skip
    a = apply(payment, item, "C-1", "ACME-XX", tolerances)
    return a.written_off_amount, a.status


def test_every_currency_has_a_default_in_whole_minor_units():
    assert DEFAULT_TOLERANCES.keys() == MINOR_UNITS.keys()
    for currency, tolerance in DEFAULT_TOLERANCES.items():
        unit = D(1).scaleb(-MINOR_UNITS[currency])
        assert tolerance > 0 and tolerance % unit == 0, currency
    assert [DEFAULT_TOLERANCES[c] for c in ("USD", "EUR", "JPY", "KRW", "HUF", "KWD")] == [
        D("0.05"), D("0.05"), D(5), D(50), D(20), D("0.015"),
    ]  # fmt: skip


def test_a_yen_payment_short_by_3_yen_is_written_off():
    assert settle("9997", "10000", "JPY") == (D(3), PaymentStatus.PAID)


def test_a_dinar_payment_short_by_0_049_is_not_written_off():
    assert settle("99.951", "100.000", "KWD") == (D(0), PaymentStatus.PARTIALLY_PAID)
    assert settle("99.985", "100.000", "KWD") == (D("0.015"), PaymentStatus.PAID)


def test_a_percentage_is_of_the_original_amount_rounded_down_to_the_minor_unit():
    half_percent = Tolerances(by_currency={"EUR": Tolerance(D("0.5"), percent=True),
                                           "JPY": Tolerance(D("0.5"), percent=True)})  # fmt: skip
    assert half_percent.amount("EUR", D("1234.56")) == D("6.17")  # 6.1728
    assert half_percent.amount("JPY", D(10999)) == D(54)  # 54.995, not 55
    assert settle("10945", "10999", "JPY", half_percent) == (D(54), PaymentStatus.PAID)
    assert settle("10944", "10999", "JPY", half_percent) == (D(0), PaymentStatus.PARTIALLY_PAID)


def test_a_currency_override_beats_the_override_for_every_currency_which_beats_the_default():
    tolerances = Settings.from_env(
        {
            "FINSYNC_PAYMENT_TOLERANCE": "0.10",
            "FINSYNC_PAYMENT_TOLERANCE_JPY": "5",
            "FINSYNC_PAYMENT_TOLERANCE_EUR": "0.5%",
            "FINSYNC_PAYMENT_TOLERANCE_kwd": "0.020",  # the name's case does not matter
        }
    ).payment_tolerances
    assert tolerances.amount("JPY", D(100000)) == D(5)
    assert tolerances.amount("EUR", D("200.00")) == D("1.00")
    assert tolerances.amount("KWD", D(100)) == D("0.020")
    assert tolerances.amount("USD", D(100)) == D("0.10")
    alone = Settings.from_env({"FINSYNC_PAYMENT_TOLERANCE_JPY": "10"}).payment_tolerances
    assert alone.amount("JPY", D(100)) == D(10)
    assert alone.amount("USD", D(100)) == D("0.05")  # the others keep their defaults


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("FINSYNC_PAYMENT_TOLERANCE_EUR", "abc", "is not a tolerance"),
        ("FINSYNC_PAYMENT_TOLERANCE_EUR", "%", "is not a tolerance"),
        ("FINSYNC_PAYMENT_TOLERANCE_EUR", "-1%", "is not a tolerance"),
        ("FINSYNC_PAYMENT_TOLERANCE_EUR", "0.5%%", "is not a tolerance"),
        ("FINSYNC_PAYMENT_TOLERANCE_EUR", "101%", "more than 100%"),
        ("FINSYNC_PAYMENT_TOLERANCE_JPY", "0.5", "more decimals than JPY allows"),
        ("FINSYNC_PAYMENT_TOLERANCE_KWD", "0.0155", "more decimals than KWD allows"),
        ("FINSYNC_PAYMENT_TOLERANCE_XYZ", "1", "XYZ, which is not a currency"),
        ("FINSYNC_PAYMENT_TOLERANCE", "5 yen", "is not a tolerance"),
    ],
)
def test_a_malformed_tolerance_stops_the_service_naming_the_variable(name, value, reason):
    with pytest.raises(SystemExit, match=reason) as stopped:
        Settings.from_env({name: value})
    assert str(stopped.value).startswith(f"{name}={value!r} ")

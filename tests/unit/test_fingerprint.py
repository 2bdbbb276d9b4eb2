"""The fingerprint of an event's business content: what counts as the same document."""

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from finsync.contract.events import (
    BillingPeriod,
    InvoiceIssued,
    InvoiceLine,
    OpportunityClosed,
    OpportunityLine,
)
from finsync.contract.fingerprint import canonical, differing, fingerprint

D = Decimal


def line(line_id="1", amount="100.00", tax="19.00", **overrides):
    fields = dict(line_id=line_id, description="Seats x 2", sku="SEAT", amount=D(amount))
    return InvoiceLine(**{**fields, "tax_amount": D(tax), **overrides})


def invoice(lines=None, **overrides):
    lines = [line("1"), line("2", "50.00", "9.50")] if lines is None else lines
    subtotal = sum((x.amount for x in lines), D(0))
    tax = sum((x.tax_amount for x in lines), D(0))
    fields = dict(
        event_id=uuid.uuid4(),
        occurred_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        source="billing",
        correlation_id="corr-1",
        invoice_id="INV-1",
        invoice_number="ACME-DE-2026-000001",
        account_id="ACC-1",
        legal_entity="ACME-DE",
        currency="EUR",
        issued_on=date(2026, 11, 2),
        due_on=date(2026, 12, 2),
        lines=lines,
        subtotal=subtotal,
        tax_total=tax,
        total=subtotal + tax,
    )
    return InvoiceIssued(**{**fields, **overrides})


def test_the_envelope_does_not_count():
    a = invoice()
    b = invoice(
        event_id=uuid.uuid4(),
        occurred_at=datetime(2027, 1, 1, tzinfo=UTC),
        source="billing-v2",
        correlation_id="corr-other",
        causation_id="because",
    )
    assert fingerprint(a) == fingerprint(b)
    assert not {"event_id", "occurred_at", "source"} & set(fingerprint(a).paths)


def test_an_amount_counts_by_its_value_not_its_scale():
    # What the publisher sent (1.5) and what Avro hands back at the schema's scale (1.50, 1.5000).
    a = invoice([line(amount="1.5", tax="0.3")], subtotal=D("1.5"), tax_total=D("0.3"))
    b = invoice([line(amount="1.50", tax="0.30")], subtotal=D("1.5000"), tax_total=D("0.30"))
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(invoice(total=D("1.5"))) != fingerprint(invoice(total=D("1.05")))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (D("1.50"), "n1.5"),
        (D("100.00"), "n100"),
        (D("1E+2"), "n100"),
        (D("-0.00"), "n0"),
        (D("0E-4"), "n0"),
        (D("-12.340"), "n-12.34"),
        (D("0.00000010"), "n0.0000001"),
        (date(2026, 2, 1), "d2026-02-01"),
        (
            datetime(2026, 2, 1, 12, tzinfo=timezone(timedelta(hours=2))),
            "d2026-02-01T10:00:00+00:00",
        ),
        (None, None),
        (7, "n7"),
        ("7", "s7"),
        (True, "btrue"),
    ],
)
def test_canonical_values(value, expected):
    assert canonical(value) == expected


def test_one_instant_in_two_time_zones_is_the_same_content():
    at = datetime(2026, 11, 2, 12, tzinfo=UTC)
    a = opportunity(closed_at=at)
    b = opportunity(closed_at=at.astimezone(timezone(timedelta(hours=-5))))
    assert fingerprint(a) == fingerprint(b)


def test_the_fields_that_differ_are_named_by_their_paths():
    a = invoice()
    b = invoice([line("1"), line("2", "60.00", "9.50")])
    assert fingerprint(a).digest != fingerprint(b).digest
    assert differing(fingerprint(a).fields, fingerprint(b)) == [
        "subtotal",
        "total",
        "lines[1].amount",
    ]


def test_a_field_that_became_null_or_was_null_is_named():
    a = invoice(subscription_id="SUB-1")
    b = invoice()
    assert differing(fingerprint(a).fields, fingerprint(b)) == ["subscription_id"]
    assert differing(fingerprint(b).fields, fingerprint(a)) == ["subscription_id"]


def test_a_line_added_is_named_once_and_one_removed_by_the_count():
    two = invoice()
    three = invoice([*two.lines, line("3", "1.00", "0.19", description="Other", sku="OTHER")])
    added = ["lines", "subtotal", "tax_total", "total", "lines[2]"]
    assert differing(fingerprint(two).fields, fingerprint(three)) == added
    assert differing(fingerprint(three).fields, fingerprint(two)) == added[:-1]


def test_a_line_with_one_field_unchanged_is_named_field_by_field():
    a = invoice()
    b = invoice([a.lines[0], line("9", "7.00", "9.50", description="Other", sku="OTHER")])
    assert differing(fingerprint(a).fields, fingerprint(b))[-4:] == [
        "lines[1].line_id",
        "lines[1].description",
        "lines[1].sku",
        "lines[1].amount",
    ]  # its tax amount is the same: the line was changed, not replaced


def test_the_order_of_lines_counts():
    a = invoice()
    b = invoice(list(reversed(a.lines)))
    assert fingerprint(a).digest != fingerprint(b).digest
    assert "lines[0].line_id" in differing(fingerprint(a).fields, fingerprint(b))


def test_only_short_digests_are_kept_never_the_values():
    f = fingerprint(invoice(account_id="ACC-private-name"))
    assert len(f.digest) == 16
    assert len(f.fields) == 4 * len(f.paths)  # a CRC-32 per field
    assert b"ACC-private-name" not in f.digest + f.fields
    assert f.paths[:3] == ("invoice_id", "invoice_number", "account_id")
    assert {"total", "lines", "lines[0].amount", "lines[1].sku"} <= set(f.paths)
    assert "lines[0].service_period_start" in f.paths  # null: named if it changes


def opportunity(**overrides):
    fields = dict(
        event_id=uuid.uuid4(),
        occurred_at=datetime(2026, 11, 2, tzinfo=UTC),
        source="crm",
        correlation_id="corr-opp",
        opportunity_id="OPP-1",
        account_id="ACC-1",
        closed_at=datetime(2026, 11, 1, 15, tzinfo=UTC),
        currency="EUR",
        legal_entity="ACME-DE",
        lines=[
            OpportunityLine(
                line_id="1",
                sku="SEAT",
                description="Seats",
                quantity=D("10"),
                unit_price=D("49.00"),
                billing_period="MONTHLY",
                start_date=date(2026, 12, 1),
                term_months=12,
            )
        ],
        total_contract_value=D("5880.00"),
    )
    return OpportunityClosed(**{**fields, **overrides})


def test_an_enum_counts_by_its_value_and_a_changed_one_is_named():
    a = opportunity()
    changed = a.lines[0].model_copy(
        update={"billing_period": BillingPeriod.ANNUAL, "quantity": D("10.0")}
    )
    b = opportunity(lines=[changed])
    assert differing(fingerprint(a).fields, fingerprint(b)) == ["lines[0].billing_period"]

"""The typed events and the .avsc files are one contract: same fields, same nullability."""

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from io import BytesIO
from pathlib import Path

import fastavro
import pytest

from finsync.contract.events import EVENT_TYPES, InvoiceIssued, InvoiceLine

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def avsc(topic: str) -> dict:
    return json.loads((SCHEMAS / f"{topic}.avsc").read_text())


def test_every_schema_has_a_typed_event_and_back():
    assert sorted(p.stem for p in SCHEMAS.glob("*.avsc")) == sorted(EVENT_TYPES)


@pytest.mark.parametrize("topic", sorted(EVENT_TYPES))
def test_event_fields_match_the_schema(topic):
    schema_fields = {f["name"]: f for f in avsc(topic)["fields"]}
    model_fields = EVENT_TYPES[topic].model_fields
    assert set(schema_fields) == set(model_fields)
    for name, field in schema_fields.items():
        nullable = isinstance(field["type"], list) and "null" in field["type"]
        assert nullable == (
            not model_fields[name].is_required() and model_fields[name].default is None
        ), name


@pytest.mark.parametrize("topic", sorted(EVENT_TYPES))
def test_envelope_and_no_floating_point_money(topic):
    text = (SCHEMAS / f"{topic}.avsc").read_text()
    names = [f["name"] for f in avsc(topic)["fields"]][:5]
    assert names == ["event_id", "occurred_at", "source", "correlation_id", "causation_id"]
    assert '"float"' not in text and '"double"' not in text


def test_an_invoice_survives_an_avro_round_trip_with_exact_decimals():
    invoice = InvoiceIssued(
        event_id="6f1c1d3e-6a8e-4b7e-9d7a-1c2b3a4d5e6f",
        occurred_at=datetime(2026, 11, 2, tzinfo=UTC),
        source="billing",
        correlation_id="c-1",
        invoice_id="INV-1",
        invoice_number="2026-0001",
        account_id="A-1",
        legal_entity="ACME-US",
        currency="USD",
        issued_on=date(2026, 11, 2),
        due_on=date(2026, 12, 2),
        lines=[
            InvoiceLine(
                line_id="1",
                description="Seats",
                sku="SEAT",
                amount=Decimal("100.10"),
                tax_amount=Decimal("8.26"),
            )
        ],
        subtotal=Decimal("100.10"),
        tax_total=Decimal("8.26"),
        total=Decimal("108.36"),
    )
    schema = fastavro.parse_schema(avsc(InvoiceIssued.TOPIC))
    buf = BytesIO()
    fastavro.schemaless_writer(buf, schema, invoice.model_dump())
    buf.seek(0)
    back = InvoiceIssued.model_validate(fastavro.schemaless_reader(buf, schema))
    assert back == invoice
    assert back.total == Decimal("108.36") and isinstance(back.total, Decimal)

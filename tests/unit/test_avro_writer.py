"""The compiled Avro writer writes the same bytes as fastavro, on random records of every
schema of the contract and on schemas with what the contract does not use yet, and refuses
what a schema cannot carry."""

from __future__ import annotations

import io
import json
import random
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest

from finsync.contract.events import InvoicePosted
from finsync.runtime.avro_writer import writer

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def ours(schema: Any, datum: Any) -> bytes:
    out = bytearray()
    writer(schema)(out, datum)
    return bytes(out)


def theirs(schema: Any, datum: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema, named_schemas={}), datum)
    return out.getvalue()


class Random:
    """Random data for a schema: edge values (empty, zero, extremes, non-ASCII) often."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.named: dict[str, Any] = {}
        self.namespace = ""

    def text(self) -> str:
        pool = ["", "a", "é", "日本", "\U0001f4b6", "x" * 200, "ACME-US", "INV-1"]
        return "".join(self.rng.choice(pool) for _ in range(self.rng.randint(0, 3)))

    def decimal(self, precision: int, scale: int) -> Decimal:
        digits = self.rng.choice([1, 2, precision // 2, precision])
        n = self.rng.randrange(-(10**digits) + 1, 10**digits)
        value = Decimal(n).scaleb(-scale)
        # Fewer places than the scale is the same amount: it must encode the same.
        return (
            value.quantize(Decimal(1)) if self.rng.random() < 0.1 and n % 10**scale == 0 else value
        )

    def value(self, schema: Any) -> Any:
        rng = self.rng
        if isinstance(schema, list):
            branch = rng.choice(schema)
            return None if branch == "null" else self.value(branch)
        if isinstance(schema, str):
            if schema in self.named:
                return self.value(self.named[schema])
            schema = {"type": schema}
        kind, logical = schema["type"], schema.get("logicalType")
        if logical == "decimal":
            return self.decimal(schema["precision"], schema.get("scale", 0))
        if logical == "uuid":
            return rng.choice([uuid.UUID(int=rng.getrandbits(128)), str(uuid.uuid4())])
        if logical == "date":
            return date(1970, 1, 1) + timedelta(days=rng.randint(-400_000, 400_000))
        if logical in ("timestamp-millis", "timestamp-micros"):
            micros = rng.randint(-(10**15), 10**16)
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
        if kind in ("record", "enum", "fixed"):
            self.namespace = schema.get("namespace", self.namespace)
            self.named[schema["name"]] = schema
            self.named[f"{self.namespace}.{schema['name']}"] = schema
        if kind == "record":
            return {f["name"]: self.value(f["type"]) for f in schema["fields"]}
        if kind == "enum":
            return rng.choice(schema["symbols"])
        if kind == "array":
            return [self.value(schema["items"]) for _ in range(rng.choice([0, 1, 3, 70]))]
        if kind == "map":
            return {self.text() + str(i): self.value(schema["values"]) for i in range(3)}
        if kind == "fixed":
            return bytes(rng.getrandbits(8) for _ in range(schema["size"]))
        if kind == "string":
            return self.text()
        if kind == "bytes":
            return bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 200])))
        if kind == "int":
            return rng.choice([0, -1, 1, 63, -64, 64, 2**31 - 1, -(2**31), rng.getrandbits(20)])
        if kind == "long":
            return rng.choice([0, -1, 2**63 - 1, -(2**63), rng.getrandbits(40) - 2**39])
        if kind == "boolean":
            return rng.random() < 0.5
        if kind in ("float", "double"):
            return rng.choice([0.0, -1.5, 3.25, 1e300 if kind == "double" else 1e30])
        assert kind == "null"
        return None


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.avsc")), ids=lambda p: p.stem)
def test_every_contract_schema_writes_fastavros_bytes(path):
    schema = json.loads(path.read_text())
    make = Random(hash(path.stem) & 0xFFFF)
    for _ in range(300):
        datum = make.value(schema)
        assert ours(schema, datum) == theirs(schema, datum), datum


OTHER = {
    "type": "record",
    "name": "Node",
    "namespace": "t",
    "fields": [
        {"name": "flag", "type": "boolean"},
        {"name": "ratio", "type": "double"},
        {"name": "small", "type": "float"},
        {"name": "tags", "type": {"type": "map", "values": "long"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {
            "name": "cents",
            "type": {
                "type": "fixed",
                "name": "Cents",
                "size": 8,
                "logicalType": "decimal",
                "precision": 18,
                "scale": 2,
            },
        },
        {"name": "id", "type": {"type": "fixed", "name": "Id", "size": 4}},
        {"name": "same_id", "type": "t.Id"},
        {"name": "next", "type": ["t.Node", "null"], "default": None},
    ],
}


def test_what_the_contract_does_not_use_yet_is_written_the_same_too():
    make = Random(1)
    for _ in range(300):
        datum = make.value(OTHER)
        datum["next"] = make.value(OTHER) | {"next": None} if make.rng.random() < 0.5 else None
        assert ours(OTHER, datum) == theirs(OTHER, datum)


def test_a_named_decimal_fixed_is_used_again_by_its_name():
    cents = {"type": "fixed", "name": "C", "size": 8, "logicalType": "decimal", "precision": 18}
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "a", "type": cents}, {"name": "b", "type": "C"}],
    }
    datum = {"a": Decimal(-5), "b": Decimal(12)}
    assert ours(schema, datum) == theirs(schema, datum)


def test_times_at_the_ends_of_the_calendar_are_written():
    millis = {"type": "long", "logicalType": "timestamp-millis"}
    for t in (
        datetime(1, 1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 3, 8, 2, 30),  # naive: local time, as fastavro has it
    ):
        assert ours(millis, t) == theirs(millis, t)


def test_a_missing_field_takes_its_default():
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "a", "type": "string"},
            {"name": "b", "type": ["null", "string"], "default": None},
            {
                "name": "c",
                "type": {"type": "enum", "name": "E", "symbols": ["X", "Y"]},
                "default": "Y",
            },
        ],
    }
    assert ours(schema, {"a": "q"}) == theirs(schema, {"a": "q", "b": None, "c": "Y"})
    optional = {"type": "record", "name": "O", "fields": [{"name": "b", "type": ["null", "long"]}]}
    assert ours(optional, {}) == theirs(optional, {"b": None})
    with pytest.raises(ValueError, match="no field 'a'"):
        ours(schema, {"b": None})


def test_an_invoice_posted_as_the_service_writes_it():
    lines = [
        {
            "account_code": "1200",
            "debit": Decimal("3566.0600"),
            "credit": Decimal("0.0000"),
            "mapping_rule": None,
            "functional_debit": Decimal("3566.06"),
            "functional_credit": Decimal("0"),
            "rate": Decimal("1.0000000000"),
        }
    ]
    event = InvoicePosted.model_validate(
        {
            "event_id": uuid.uuid4(),
            "occurred_at": datetime(2026, 11, 28, 14, 34, 16, 339000, tzinfo=UTC),
            "source": "finsync.invoice-poster",
            "correlation_id": "c",
            "invoice_id": "INV-1",
            "erp_document_id": "AR-INV-1",
            "journal_entry_id": "JE-1",
            "legal_entity": "ACME-US",
            "currency": "USD",
            "journal_lines": lines,
            "posted_at": datetime(2026, 11, 28, 14, 34, 16, 337000, tzinfo=UTC),
            "accounting_date": date(2026, 11, 6),
            "functional_currency": "USD",
            "due_on": date(2026, 12, 6),
        }
    )
    schema = json.loads((SCHEMAS / f"{InvoicePosted.TOPIC}.avsc").read_text())
    record = event.model_dump()
    data = ours(schema, record)
    assert data == theirs(schema, record)
    parsed = fastavro.parse_schema(schema, named_schemas={})
    assert (
        InvoicePosted.model_validate(fastavro.schemaless_reader(io.BytesIO(data), parsed)) == event
    )


AMOUNT = {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 4}


@pytest.mark.parametrize(
    ("schema", "value", "error", "message"),
    [
        (AMOUNT, Decimal("1.00001"), ValueError, "more decimal places"),
        (AMOUNT, Decimal("1E+14"), ValueError, "more digits than the precision"),
        (AMOUNT, Decimal("NaN"), ValueError, "not a finite"),
        (AMOUNT, Decimal("-Infinity"), ValueError, "not a finite"),
        (AMOUNT, 1.5, TypeError, "expected a Decimal"),
        ("int", 2**31, ValueError, "range of an Avro int"),
        ("long", -(2**63) - 1, ValueError, "range of an Avro long"),
        ("long", True, TypeError, "expected an integer"),
        ("long", "1", TypeError, "expected an integer"),
        ("string", b"x", TypeError, "expected a string"),
        ({"type": "enum", "name": "E", "symbols": ["A"]}, "B", ValueError, "not a symbol of E"),
        ({"type": "int", "logicalType": "date"}, datetime.now(UTC), TypeError, "got a datetime"),
        # Refused before it is scaled: scaling it first took a minute of CPU.
        (AMOUNT, Decimal("1E+999990"), ValueError, "more digits than the precision"),
        ({"type": "string", "logicalType": "uuid"}, None, TypeError, "expected a string"),
        ({"type": "string", "logicalType": "uuid"}, 7, TypeError, "expected a string"),
    ],
)
def test_what_a_schema_cannot_carry_is_refused(schema, value, error, message):
    with pytest.raises(error, match=message):
        ours(schema, value)


def test_the_largest_amount_fits_and_the_next_does_not():
    assert ours(AMOUNT, Decimal("99999999999999.9999")) == theirs(
        AMOUNT, Decimal("99999999999999.9999")
    )
    with pytest.raises(ValueError):
        ours(AMOUNT, Decimal("100000000000000.0000"))


def test_only_optional_unions_are_compiled():
    with pytest.raises(ValueError, match="only optional values"):
        writer(["string", "long"])
    with pytest.raises(ValueError, match="unknown Avro type"):
        writer({"type": "record", "name": "R", "fields": [{"name": "x", "type": "Nope"}]})

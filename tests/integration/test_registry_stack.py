"""The local schema registry as finsync.stack.registry runs it, seen through confluent-kafka."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, NamedTuple

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from finsync.settings import Settings
from finsync.stack import postgres, registry

pytestmark = pytest.mark.integration

STORAGE = os.environ.get("FINSYNC_REGISTRY_STORAGE", "sql")
AMOUNT = {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 4}


class Stack(NamedTuple):
    settings: Settings
    owns_registry: bool  # started here, so this module stops it


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    settings = Settings.from_env()
    # Stop at the end only what this module started; leave a stack someone else runs alone.
    own_postgres = STORAGE == "sql" and postgres.status(settings)[1] == "stopped"
    own_registry = registry.status(settings)[1] == "stopped"
    if STORAGE == "sql":
        postgres.start(settings)  # idempotent; also provisions the registry's database
    registry.start(settings, storage=STORAGE)
    yield Stack(settings, own_registry)
    if own_registry:
        registry.stop(settings)
    if own_postgres:
        postgres.stop(settings)


@pytest.fixture
def client(stack: Stack) -> SchemaRegistryClient:
    return SchemaRegistryClient(stack.settings.registry_config())


def _subject(label: str) -> str:
    return f"finsync-it-{label}-{uuid.uuid4().hex[:8]}-value"


def _avro(name: str, fields: list[dict[str, Any]]) -> Schema:
    record = {"type": "record", "name": name, "namespace": "finsync.it", "fields": fields}
    return Schema(json.dumps(record), "AVRO")


def _same(a: Schema, b: Schema) -> bool:
    """Equal as JSON: the registry may store the text re-formatted."""
    return bool(json.loads(a.schema_str or "null") == json.loads(b.schema_str or "null"))


def test_register_and_get_by_id(client: SchemaRegistryClient) -> None:
    subject = _subject("register")
    schema = _avro("Invoice", [{"name": "invoice_id", "type": "string"}])

    schema_id = client.register_schema(subject, schema)

    assert _same(client.get_schema(schema_id), schema)
    assert client.lookup_schema(subject, schema).schema_id == schema_id
    assert client.get_latest_version(subject).schema_id == schema_id
    # Confluent semantics: an id names a schema, so another subject registering it gets the same.
    assert client.register_schema(_subject("register-again"), schema) == schema_id


def test_avro_round_trip_with_decimal(client: SchemaRegistryClient) -> None:
    topic = f"finsync-it-payments-{uuid.uuid4().hex[:8]}"
    schema = _avro("Payment", [{"name": "payment_id", "type": "string"},
                               {"name": "amount", "type": AMOUNT}])  # fmt: skip
    serialize = AvroSerializer(client, schema.schema_str)
    deserialize = AvroDeserializer(client)
    ctx = SerializationContext(topic, MessageField.VALUE)

    for amount in (Decimal("12345.6789"), Decimal("-0.0001"), Decimal("99999999999999.9999")):
        data = serialize({"payment_id": "p-1", "amount": amount}, ctx)
        assert data is not None
        # Confluent wire format: magic byte 0, then the registered schema id (big-endian).
        assert data[0] == 0
        schema_id = client.get_latest_version(f"{topic}-value").schema_id
        assert int.from_bytes(data[1:5], "big") == schema_id
        value = deserialize(data, ctx)
        assert value == {"payment_id": "p-1", "amount": amount}
        assert isinstance(value["amount"], Decimal)


def test_backward_compatibility_rejects_breaking_change(client: SchemaRegistryClient) -> None:
    subject = _subject("compat")
    fields: list[dict[str, Any]] = [{"name": "order_id", "type": "string"}]
    client.register_schema(subject, _avro("Order", fields))
    client.set_compatibility(subject, "BACKWARD")
    assert client.get_compatibility(subject) == "BACKWARD"

    # A new required field cannot be read from old records; with a default it can.
    breaking = _avro("Order", [*fields, {"name": "currency", "type": "string"}])
    compatible = _avro("Order", [*fields, {"name": "currency", "type": "string", "default": "EUR"}])
    assert client.test_compatibility(subject, breaking) is False
    assert client.test_compatibility(subject, compatible) is True

    with pytest.raises(SchemaRegistryError) as rejected:
        client.register_schema(subject, breaking)
    assert rejected.value.http_status_code == 409
    client.register_schema(subject, compatible)
    assert client.get_versions(subject) == [1, 2]


@pytest.mark.skipif(STORAGE != "sql", reason="only SQL storage outlives the process")
def test_schema_ids_survive_restart(stack: Stack) -> None:
    settings = stack.settings
    subject = _subject("restart")
    schema = _avro("Refund", [{"name": "refund_id", "type": "string"}])
    schema_id = SchemaRegistryClient(settings.registry_config()).register_schema(subject, schema)

    registry.stop(settings)
    registry.start(settings, storage=STORAGE)

    fresh = SchemaRegistryClient(settings.registry_config())  # no cached ids
    assert _same(fresh.get_schema(schema_id), schema)
    assert fresh.lookup_schema(subject, schema).schema_id == schema_id

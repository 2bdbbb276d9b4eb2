"""A dead letter's value as a person reads it: decoded through the schema registry (Confluent
wire format: magic byte 0, 4-byte schema id, Avro body) with the schema it was written with,
or a note saying why it is not (no value, not that format, a schema id the registry does not
know, the registry unreachable). Never raises for a bad value: a letter is often bad bytes.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError

from finsync.settings import Settings

MAGIC = 0  # the Confluent wire format's first byte
REGISTRY_TIMEOUT_SECONDS = 5.0  # a page waits no longer for a registry that does not answer


@dataclass(frozen=True)
class Payload:
    data: dict[str, Any] | None  # JSON-able: decimals and times as strings, bytes as base64
    note: str  # empty when decoded; else why not, for a person
    schema_id: int | None = None


def registry(settings: Settings) -> SchemaRegistryClient:
    """A registry client that gives up quickly: decoding is for display, never worth a wait."""
    config = {
        **settings.registry_config(),
        "timeout": min(REGISTRY_TIMEOUT_SECONDS, settings.registry_timeout_seconds),
        "max.retries": 0,
    }
    return SchemaRegistryClient(config)


def schema_id_of(value: bytes | None) -> int | None:
    """The schema id of a Confluent-framed value, None if it is not framed that way."""
    if value is None or len(value) < 6 or value[0] != MAGIC:
        return None
    return int.from_bytes(value[1:5], "big")


def framing_note(value: bytes | None) -> str:
    """Why a value is not in the Confluent wire format ('' if it is)."""
    if not value:
        return "no value (an empty message)"
    if value[0] != MAGIC:
        return (
            f"not in the Confluent wire format: the first byte is 0x{value[0]:02x}, not 0x00 "
            f"(the publisher bypassed the serializer); {len(value)} raw bytes"
        )
    if len(value) < 6:
        return f"too short for the Confluent wire format ({len(value)} bytes)"
    return ""


def decode(client: SchemaRegistryClient, value: bytes | None) -> Payload:
    note = framing_note(value)
    schema_id = schema_id_of(value)
    if note or schema_id is None:
        return Payload(None, note)
    try:
        schema = client.get_schema(schema_id)
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return Payload(None, f"schema id {schema_id} is not known to the registry", schema_id)
        return Payload(
            None,
            f"the schema registry answered HTTP {exc.http_status_code} for schema id "
            f"{schema_id}: {exc.error_message}",
            schema_id,
        )
    except Exception as exc:  # the registry's HTTP client: refused, timed out, unresolvable
        return Payload(
            None, f"the schema registry is unreachable ({type(exc).__name__})", schema_id
        )
    if (schema.schema_type or "AVRO").upper() != "AVRO":
        return Payload(None, f"schema id {schema_id} is {schema.schema_type}, not Avro", schema_id)
    try:
        record = AvroDeserializer(client)(value, None)
    except Exception as exc:
        return Payload(
            None, f"not decodable with schema id {schema_id}: {type(exc).__name__}", schema_id
        )
    if not isinstance(record, Mapping):
        return Payload({"value": jsonable(record)}, "", schema_id)
    return Payload({str(k): jsonable(v) for k, v in record.items()}, "", schema_id)


def jsonable(value: Any) -> Any:
    """Avro's Python values as JSON: exact decimals as strings, never floats."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value

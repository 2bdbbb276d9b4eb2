"""Avro in the Confluent wire format, through confluent-kafka's serializer and registry client.

Failures are classified here, once: bytes we cannot read are the event's fault (permanent),
a registry we cannot reach is ours (an outage).

The hot path skips the serializers' per-record work (rules, tags, re-expanding the reader
schema on every call, which cost more than reading the record): once a schema id has been
read or written through them, its records are read by fastavro with the parsed schemas
cached, and written by a writer compiled from our schema (runtime/avro_writer.py). A schema
id seen first always takes the serializers' way, so what the registry says of it (unknown,
GUID framing, down) is classified exactly as before.
"""

from __future__ import annotations

import io
import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import parse_schema, schemaless_reader

from finsync.contract import limits
from finsync.contract.events import EVENT_TYPES, Event
from finsync.errors import InvalidEvent, Outage, UndecodableEvent, UnknownSchema
from finsync.runtime import avro_writer
from finsync.runtime.messages import Headers, Outgoing
from finsync.settings import Settings

try:  # the HTTP client confluent-kafka's registry client uses: httpx2, or httpx on older installs
    import httpx2 as _http
except ImportError:  # pragma: no cover
    import httpx as _http  # type: ignore[no-redef]

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"


def subject(topic: str) -> str:
    """TopicNameStrategy."""
    return f"{topic}-value"


@cache
def schema_text(topic: str) -> str:
    path = SCHEMA_DIR / f"{topic}.avsc"
    if not path.exists():
        raise KeyError(f"no schema for topic {topic!r}: expected {path}")
    return json.dumps(json.loads(path.read_text()))


def registry_client(settings: Settings) -> SchemaRegistryClient:
    return SchemaRegistryClient(settings.registry_config())


SCHEMA_NOT_FOUND = 40403  # the Confluent API's error code for an unknown schema id
GUID_FRAMING = 1  # the magic byte of the framing that names the schema by GUID, not by id


def _outage(exc: Exception) -> bool:
    """Our side cannot reach or use the registry: down, refusing our credentials (401, 403),
    throttling us (429), or not where we were told it is (a 404 that is not 'schema not
    found'). The batch waits for that to be fixed; the event is not at fault."""
    if isinstance(exc, SchemaRegistryError):
        return not _unknown_schema(exc)
    return isinstance(exc, _http.TransportError | ConnectionError | TimeoutError)


def _unknown_schema(exc: SchemaRegistryError) -> bool:
    return exc.http_status_code == 404 and exc.error_code == SCHEMA_NOT_FOUND


class Serde:
    """Encodes events of finsync's topics and decodes them back into typed events."""

    def __init__(self, client: SchemaRegistryClient) -> None:
        self._client = client
        self._serializers: dict[str, AvroSerializer] = {}
        self._deserializers: dict[str, AvroDeserializer] = {}
        # topic -> its framing (magic byte + our schema's id) and compiled writer, once written
        self._writers: dict[str, tuple[bytes, avro_writer.Write]] = {}
        # (topic, 5-byte framing) -> parsed writer schema, and reader schema when it differs
        self._readers: dict[tuple[str, bytes], tuple[Any, Any]] = {}
        self._slow: set[tuple[str, bytes]] = set()  # framings that keep the deserializer's way

    def encode(self, event: Event) -> bytes:
        return self.encode_record(event.TOPIC, event.model_dump())

    def outgoing(self, event: Event, headers: Headers | None = None) -> Outgoing:
        """The event as a message for its topic, keyed by its business id."""
        return Outgoing(event.TOPIC, event.key.encode(), self.encode(event), headers or [])

    def encode_record(self, topic: str, record: dict[str, Any]) -> bytes:
        known = self._writers.get(topic)
        if known is not None:
            framing, write = known
            out = bytearray(framing)
            write(out, record)
            return bytes(out)
        data = self._encode_through_serializer(topic, record)
        self._writers[topic] = (data[:5], avro_writer.writer(json.loads(schema_text(topic))))
        return data

    def _encode_through_serializer(self, topic: str, record: dict[str, Any]) -> bytes:
        serializer = self._serializers.get(topic)
        if serializer is None:
            # Schemas are registered by provisioning (`finsync schemas register`), not on the fly:
            # a service must never widen the contract by itself.
            serializer = AvroSerializer(
                self._client, schema_text(topic), conf={"auto.register.schemas": False}
            )
            self._serializers[topic] = serializer
        try:
            data = serializer(record, SerializationContext(topic, MessageField.VALUE))
        except SchemaRegistryError as exc:
            # Our own schema missing from the registry is configuration, never the event's fault.
            raise Outage(f"schema registry unusable for {subject(topic)}: {exc}") from exc
        except Exception as exc:
            if _outage(exc):
                raise Outage(f"schema registry unavailable: {exc}") from exc
            raise
        assert data is not None
        return data

    def decode_record(self, topic: str, data: bytes | None) -> dict[str, Any]:
        if not data:
            raise UndecodableEvent("empty message value (no Avro record)")
        known = self._readers.get((topic, data[:5]))
        if known is not None:
            writer, reader = known
            try:
                record = schemaless_reader(io.BytesIO(data[5:]), writer, reader, False)
            except Exception as exc:
                raise UndecodableEvent(
                    f"not a Confluent-framed Avro record of {subject(topic)}: {exc}"
                ) from exc
        else:
            record = self._decode_through_deserializer(topic, data)
            if (topic, data[:5]) not in self._slow:
                self._remember_reader(topic, data[:5])
        if not isinstance(record, dict):
            raise UndecodableEvent(f"expected an Avro record, got {type(record).__name__}")
        return record

    def _remember_reader(self, topic: str, framing: bytes) -> None:
        """The id's schema as the deserializer has just fetched it: asked under the same
        subject, it comes from the client's cache. One that cannot be remembered (GUID framing,
        another schema type, references fastavro cannot resolve alone) keeps the
        deserializer's way, and is not tried again."""
        key = (topic, framing)
        if framing[:1] != b"\x00" or len(framing) < 5:
            self._slow.add(key)
            return
        try:
            writer = self._client.get_schema(int.from_bytes(framing[1:], "big"), subject(topic))
        except Exception:  # the registry, not the record: asked again with the next one
            return
        try:
            if writer.schema_type not in (None, "AVRO") or writer.schema_str is None:
                raise ValueError(f"a {writer.schema_type} schema")
            ours = schema_text(topic)
            same = json.dumps(json.loads(writer.schema_str)) == ours
            reader = None if same else _parsed(ours)
            self._readers[key] = (_parsed(writer.schema_str), reader)
        except Exception:
            self._slow.add(key)

    def _decode_through_deserializer(self, topic: str, data: bytes) -> Any:
        deserializer = self._deserializers.get(topic)
        if deserializer is None:
            # Our .avsc is the reader schema, so older writer versions resolve into today's shape.
            deserializer = AvroDeserializer(self._client, schema_text(topic))
            self._deserializers[topic] = deserializer
        try:
            record = deserializer(data, SerializationContext(topic, MessageField.VALUE))
        except SchemaRegistryError as exc:
            if data[0] == GUID_FRAMING and exc.http_status_code == 404:
                # A registry without GUID lookups (Apicurio's) answers 404 with no error code for
                # every GUID: the schema is not known there, which is no outage of ours.
                raise UnknownSchema(
                    f"schema GUID {uuid.UUID(bytes=data[1:17])} is not known to the schema "
                    f"registry ({exc.error_message})"
                ) from exc
            if _outage(exc):
                raise Outage(f"schema registry unusable: {exc}") from exc
            schema_id = int.from_bytes(data[1:5], "big") if len(data) >= 5 else None
            raise UnknownSchema(
                f"schema id {schema_id} is not known to the schema registry ({exc.error_message})"
            ) from exc
        except Exception as exc:
            if _outage(exc):
                raise Outage(f"schema registry unavailable: {exc}") from exc
            raise UndecodableEvent(
                f"not a Confluent-framed Avro record of {subject(topic)}: {exc}"
            ) from exc
        return record

    def decode(self, topic: str, data: bytes | None) -> Event:
        """Decode and validate into the topic's typed event, within the contract's limits."""
        record = self.decode_record(topic, data)
        event = EVENT_TYPES[topic].model_validate(record)
        problems = limits.violations(event)
        if problems:
            more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
            raise InvalidEvent(f"over the input limits: {'; '.join(problems[:5])}{more}")
        return event


def _parsed(schema: str) -> Any:
    # A fresh name space per schema: parsing two versions of one record into a shared one
    # would let the second be read as the first.
    return parse_schema(json.loads(schema), named_schemas={})

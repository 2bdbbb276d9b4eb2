"""What the schema registry answers decides who is at fault: an unknown schema id is the
event's (a dead letter), every other refusal is ours (an outage: the batch waits).

The real registry answers the unknown id; a plain HTTP server on loopback stands in for a
registry that refuses our credentials, throttles us, or is not at the configured address.
"""

from __future__ import annotations

import io
import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from finsync.contract.events import InvoiceIssued
from finsync.errors import Outage, UndecodableEvent, UnknownSchema
from finsync.runtime.serde import Serde, schema_text
from finsync.scenario import documents
from finsync.settings import Settings

pytestmark = pytest.mark.integration

FRAMED = b"\x00\x00\x00\x00\x07\x02"  # magic byte, schema id 7, a scrap of Avro


class Refusing(BaseHTTPRequestHandler):
    answer: tuple[int, bytes] = (500, b"")

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        status, body = self.answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def serde_for(server: ThreadingHTTPServer, status: int, body: object) -> Serde:
    Refusing.answer = (status, json.dumps(body).encode() if body is not None else b"")
    url = f"http://127.0.0.1:{server.server_address[1]}"
    return Serde(SchemaRegistryClient({"url": url, "max.retries": 0}))


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"error_code": 40101, "message": "Unauthorized"}),
        (403, {"error_code": 40301, "message": "Forbidden"}),
        (429, {"error_code": 429, "message": "Too many requests"}),
        (404, None),  # a wrong registry URL: not a registry's 'schema not found'
        (503, {"error_code": 50301, "message": "unavailable"}),
    ],
)
def test_a_registry_that_refuses_us_is_an_outage_not_a_dead_letter(
    refusing: ThreadingHTTPServer, status: int, body: object
) -> None:
    serde = serde_for(refusing, status, body)
    with pytest.raises(Outage):
        serde.decode(InvoiceIssued.TOPIC, FRAMED)


@pytest.mark.parametrize("status", [401, 404, 429])
def test_our_own_schema_missing_or_refused_when_publishing_is_an_outage(
    refusing: ThreadingHTTPServer, status: int
) -> None:
    serde = serde_for(refusing, status, {"error_code": 40403, "message": "not found"})
    with pytest.raises(Outage):
        serde.encode(documents.invoice(random.Random(1), 1))


def test_an_unknown_schema_id_is_the_events_fault(serde: Serde) -> None:
    never_registered = b"\x00\x7f\xff\xff\xf0\x02"  # schema id 2147483632
    with pytest.raises(UnknownSchema, match="schema id 2147483632 is not known"):
        serde.decode(InvoiceIssued.TOPIC, never_registered)


def test_a_registry_that_never_answers_is_an_outage_not_a_hang(settings: Settings) -> None:
    # It takes the connection and says nothing: without a timeout the client would wait for
    # ever, and the service with it, deaf even to SIGTERM.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        quick = replace(settings, registry_url=url, registry_timeout_seconds=1.0)
        config = {**quick.registry_config(), "max.retries": 0}
        serde = Serde(SchemaRegistryClient(config))
        started = time.monotonic()
        with pytest.raises(Outage):
            serde.decode(InvoiceIssued.TOPIC, FRAMED)
        assert time.monotonic() - started < 10
    finally:
        silent.close()


def test_an_older_writer_version_reads_into_todays_shape_first_time_and_every_time(
    serde: Serde, settings: Settings
) -> None:
    """The first record of a schema id goes through the registry's deserializer; later ones of
    the same id through the schemas it remembered. Both ways resolve an older writer schema
    into today's reader schema the same, and bytes that do not fit it are the event's fault."""
    today = json.loads(schema_text(InvoiceIssued.TOPIC))
    older = {**today, "fields": [f for f in today["fields"] if f["name"] != "subscription_id"]}
    client = SchemaRegistryClient(settings.registry_config())
    schema_id = client.register_schema(
        f"test-older-{uuid.uuid4().hex[:8]}-value", Schema(json.dumps(older), "AVRO")
    )
    framing = b"\x00" + schema_id.to_bytes(4, "big")
    invoice = documents.invoice(random.Random(5), 1).model_copy(update={"subscription_id": "S-1"})
    written = io.BytesIO()
    written.write(framing)
    record = {k: v for k, v in invoice.model_dump().items() if k != "subscription_id"}
    fastavro.schemaless_writer(written, fastavro.parse_schema(older), record)

    first = serde.decode(InvoiceIssued.TOPIC, written.getvalue())
    again = serde.decode(InvoiceIssued.TOPIC, written.getvalue())
    expected = invoice.model_copy(update={"subscription_id": None})  # the field's default
    assert first == again == serde.decode(InvoiceIssued.TOPIC, serde.encode(expected))
    with pytest.raises(UndecodableEvent, match="not a Confluent-framed Avro record"):
        serde.decode(InvoiceIssued.TOPIC, framing + written.getvalue()[5:20])

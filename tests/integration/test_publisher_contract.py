"""What a publishing system sees, using nothing of finsync but the .avsc files and addresses."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from finsync.settings import Settings
from tests.support import ServiceProcess, eventually

pytestmark = pytest.mark.integration

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_a_plain_confluent_kafka_publisher_gets_one_balanced_posting_per_invoice(
    settings: Settings, tmp_path: Path
) -> None:
    registry = SchemaRegistryClient({"url": settings.registry_url})
    serialize = AvroSerializer(registry, (SCHEMAS / "billing.invoice-issued.avsc").read_text())
    deserialize = AvroDeserializer(registry)  # the writer's schema, from the registry
    invoice_id = f"INV-PUB-{uuid.uuid4().hex[:8]}"
    invoice = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": datetime.now(UTC),
        "source": "billing",
        "correlation_id": f"deal-{invoice_id}",
        "causation_id": None,
        "invoice_id": invoice_id,
        "invoice_number": "2026-000123",
        "account_id": "ACC-0042",
        "subscription_id": None,
        "legal_entity": "ACME-DE",
        "currency": "EUR",
        "issued_on": date(2026, 11, 27),
        "due_on": date(2026, 12, 27),
        "lines": [
            {"line_id": "1", "description": "Platform seats x 10", "sku": "PLAT-SEAT",
             "amount": Decimal("490.00"), "tax_amount": Decimal("93.10"),
             "service_period_start": date(2026, 11, 1), "service_period_end": date(2026, 11, 30)},
        ],
        "subtotal": Decimal("490.00"),
        "tax_total": Decimal("93.10"),
        "total": Decimal("583.10"),
    }  # fmt: skip

    tail = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": str(uuid.uuid4())})
    parts = tail.list_topics("erp.invoice-posted", timeout=10).topics["erp.invoice-posted"]
    tail.assign([
        TopicPartition("erp.invoice-posted", p, tail.get_watermark_offsets(
            TopicPartition("erp.invoice-posted", p), timeout=10)[1])
        for p in parts.partitions
    ])  # fmt: skip

    poster = ServiceProcess("invoice-poster", tmp_path).start()
    try:
        producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
        value = serialize(
            invoice, SerializationContext("billing.invoice-issued", MessageField.VALUE)
        )
        for _ in range(2):  # a publisher's retry: the same event twice
            producer.produce("billing.invoice-issued", value, key=invoice_id.encode())
        assert producer.flush(10) == 0

        postings: list[dict[str, object]] = []

        def read() -> list[dict[str, object]]:
            for msg in tail.consume(100, timeout=0.5):
                if not msg.error() and msg.key() == invoice_id.encode():
                    ctx = SerializationContext("erp.invoice-posted", MessageField.VALUE)
                    postings.append(deserialize(msg.value(), ctx))
            return postings

        eventually(read, 30, "erp.invoice-posted for the invoice")
        for _ in range(6):
            read()
    finally:
        poster.stop()
        tail.close()
    assert len(postings) == 1
    posting = postings[0]
    lines = posting["journal_lines"]
    assert isinstance(lines, list)
    assert sum(x["debit"] for x in lines) == sum(x["credit"] for x in lines) == Decimal("583.10")
    assert {x["account_code"] for x in lines} == {"1200", "4000", "2200"}
    assert posting["causation_id"] == invoice["event_id"]
    assert posting["correlation_id"] == invoice["correlation_id"]

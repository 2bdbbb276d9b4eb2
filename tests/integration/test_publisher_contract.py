"""What a publishing system sees, using nothing of finsync but the .avsc files and addresses."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

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
    # November's service is deferred revenue until a recognition run releases it.
    assert {x["account_code"] for x in lines} == {"1200", "2300", "2200"}
    assert posting["causation_id"] == invoice["event_id"]
    assert posting["correlation_id"] == invoice["correlation_id"]


# --- the three order-to-cash services, driven the same way -----------------------------------
#
# A publisher's toolbox, nothing but confluent-kafka and the .avsc files: `Publisher` serializes
# a dict with the topic's schema and produces it keyed by its business id; `Outcomes` reads what
# finsync publishes on a topic from the moment it was made (assigned at the high watermark before
# anything is published) and finds the one outcome an event caused.

Message = dict[str, Any]


class Publisher:
    def __init__(self, settings: Settings) -> None:
        self.registry = SchemaRegistryClient({"url": settings.registry_url})
        self.producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
        self.serializers: dict[str, AvroSerializer] = {}

    def publish(self, topic: str, key: str, event: Message) -> None:
        if topic not in self.serializers:
            schema = (SCHEMAS / f"{topic}.avsc").read_text()
            self.serializers[topic] = AvroSerializer(self.registry, schema)
        value = self.serializers[topic](event, SerializationContext(topic, MessageField.VALUE))
        self.producer.produce(topic, value, key=key.encode())
        assert self.producer.flush(10) == 0


class Outcomes:
    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.deserialize = AvroDeserializer(SchemaRegistryClient({"url": settings.registry_url}))
        self.consumer = Consumer(
            {"bootstrap.servers": settings.kafka_bootstrap, "group.id": str(uuid.uuid4())}
        )
        parts = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([
            TopicPartition(topic, p, self.consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=10)[1])
            for p in parts
        ])  # fmt: skip
        self.seen: list[tuple[str, Message]] = []  # (key, value) in arrival order

    def _read(self) -> None:
        for msg in self.consumer.consume(100, timeout=0.5):
            if not msg.error():
                ctx = SerializationContext(self.topic, MessageField.VALUE)
                self.seen.append((msg.key().decode(), self.deserialize(msg.value(), ctx)))

    def caused_by(self, key: str, event_id: str, timeout: float = 30) -> Message:
        """The one message keyed `key` that the event `event_id` caused."""

        def found() -> list[Message]:
            self._read()
            return [v for k, v in self.seen if k == key and v["causation_id"] == event_id]

        eventually(found, timeout, f"{self.topic} {key} caused by event {event_id}")
        for _ in range(3):  # a duplicate would arrive right behind it
            self._read()
        (outcome,) = found()
        return outcome

    def close(self) -> None:
        self.consumer.close()


@contextmanager
def running(tmp_path: Path, *names: str) -> Iterator[None]:
    """The services, each in its own process, as `finsync run NAME` starts it."""
    services: list[ServiceProcess] = []
    try:
        for name in names:
            services.append(ServiceProcess(name, tmp_path).start())
        yield
    finally:
        for service in services:
            service.stop()


def run_id() -> str:
    return uuid.uuid4().hex[:8].upper()


def envelope(source: str, correlation_id: str) -> Message:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": datetime.now(UTC),
        "source": source,
        "correlation_id": correlation_id,
        "causation_id": None,
    }


def account_upserted(account_id: str, name: str, tax_id: str) -> Message:
    return {
        **envelope("crm", f"account-{account_id}"),
        "account_id": account_id,
        "name": name,
        "country": "DE",
        "currency": "EUR",
        "tax_id": tax_id,
        "email_domain": f"{account_id.lower()}.example",
        "parent_account_id": None,
        "legal_entity": "ACME-DE",
        "version": 1,
    }


def sync_fresh_account(publisher: Publisher, customers: Outcomes) -> Message:
    """A new CRM account, synced by account-sync; returns its erp.customer-synced."""
    account_id = f"ACC-PUB-{run_id()}"
    tax_id = f"DE{uuid.uuid4().int % 10**9:09d}"  # unique, so it matches no earlier account
    account = account_upserted(account_id, f"Publisher {account_id} GmbH", tax_id)
    publisher.publish("crm.account-upserted", account_id, account)
    synced = customers.caused_by(account_id, account["event_id"])
    assert synced["action"] == "CREATED"
    return synced


def test_account_sync_creates_updates_ignores_stale_and_links_duplicates(
    settings: Settings, tmp_path: Path
) -> None:
    publisher = Publisher(settings)
    customers = Outcomes(settings, "erp.customer-synced")
    digits = f"{uuid.uuid4().int % 10**9:09d}"  # a tax id no earlier run used
    account_id, duplicate_id = f"ACC-PUB-{run_id()}", f"ACC-PUB-{run_id()}"
    v1 = account_upserted(account_id, f"Publisher {account_id} GmbH", f"DE{digits}")

    def version(n: int, **changes: object) -> Message:
        """Another CRM event of the same account: its own event_id, version `n`."""
        return {**v1, **envelope("crm", v1["correlation_id"]), "version": n, **changes}

    v3 = version(3, name=f"Publisher {account_id} Cloud GmbH")  # the CRM skipped 2 here
    v1_again = version(1)  # version 1 re-sent under a new event_id
    v2_late = version(2, email_domain="late.example")  # older than what is synced
    spaced = f"DE {digits[:3]} {digits[3:6]} {digits[6:]}"  # the same tax id, written apart
    duplicate = account_upserted(duplicate_id, f"Publisher {duplicate_id} Europe", spaced)

    with running(tmp_path, "account-sync"):
        try:
            publisher.publish("crm.account-upserted", account_id, v1)
            created = customers.caused_by(account_id, v1["event_id"])

            publisher.publish("crm.account-upserted", account_id, v3)
            updated = customers.caused_by(account_id, v3["event_id"])

            # A version is a document: re-sent under a new event_id it takes no effect and
            # publishes nothing (the inbox claims crm.account-upserted:<account>:v1 once).
            # v2_late has the same key, so the same partition: once its outcome is read, any
            # outcome of v1_again would have been read before it.
            publisher.publish("crm.account-upserted", account_id, v1_again)
            publisher.publish("crm.account-upserted", account_id, v2_late)
            stale = customers.caused_by(account_id, v2_late["event_id"])
            assert [v for _, v in customers.seen if v["causation_id"] == v1_again["event_id"]] == []

            publisher.publish("crm.account-upserted", duplicate_id, duplicate)
            linked = customers.caused_by(duplicate_id, duplicate["event_id"])
        finally:
            customers.close()

    assert created["action"] == "CREATED"
    assert created["erp_customer_id"] and created["billing_account_id"]
    assert (created["account_id"], created["version"]) == (account_id, 1)
    assert created["correlation_id"] == v1["correlation_id"]
    assert created["matched_account_id"] is None and created["match_rule"] is None

    same_customer = (created["erp_customer_id"], created["billing_account_id"])
    assert updated["action"] == "UPDATED" and updated["version"] == 3
    assert (updated["erp_customer_id"], updated["billing_account_id"]) == same_customer
    assert stale["action"] == "UNCHANGED" and stale["version"] == 2
    assert (stale["erp_customer_id"], stale["billing_account_id"]) == same_customer

    assert linked["account_id"] == duplicate_id
    assert linked["action"] == "UNCHANGED"  # linked to the existing customer, none created
    assert (linked["matched_account_id"], linked["match_rule"]) == (account_id, "TAX_ID")
    assert (linked["erp_customer_id"], linked["billing_account_id"]) == same_customer


def test_subscription_activator_turns_a_closed_opportunity_into_a_phased_subscription(
    settings: Settings, tmp_path: Path
) -> None:
    publisher = Publisher(settings)
    customers = Outcomes(settings, "erp.customer-synced")
    subscriptions = Outcomes(settings, "billing.subscription-activated")
    opportunity_id = f"OPP-PUB-{run_id()}"
    start = date(2027, 3, 15)

    with running(tmp_path, "account-sync", "subscription-activator"):
        try:
            account = sync_fresh_account(publisher, customers)
            opportunity = {
                **envelope("crm", f"deal-{opportunity_id}"),
                "opportunity_id": opportunity_id,
                "account_id": account["account_id"],
                "closed_at": datetime.now(UTC),
                "currency": "EUR",
                "legal_entity": "ACME-DE",
                "lines": [
                    {"line_id": "1", "sku": "PLAT-SEAT", "description": "Platform seats",
                     "quantity": Decimal("10"), "unit_price": Decimal("49.00"),
                     "billing_period": "MONTHLY", "start_date": start, "term_months": 12},
                    {"line_id": "2", "sku": "ONBOARD", "description": "Onboarding",
                     "quantity": Decimal("1"), "unit_price": Decimal("2500.00"),
                     "billing_period": "ONE_TIME", "start_date": start, "term_months": 1},
                ],
                # 10 x 49.00 x 12 months + 1 x 2500.00 once
                "total_contract_value": Decimal("8380.00"),
            }  # fmt: skip
            publisher.publish("crm.opportunity-closed", opportunity_id, opportunity)
            activated = subscriptions.caused_by(f"SUB-{opportunity_id}", opportunity["event_id"])
        finally:
            customers.close()
            subscriptions.close()

    assert activated["subscription_id"] == f"SUB-{opportunity_id}"
    assert activated["opportunity_id"] == opportunity_id
    assert activated["account_id"] == account["account_id"]
    assert activated["billing_account_id"] == account["billing_account_id"]
    assert activated["currency"] == "EUR"
    assert activated["correlation_id"] == opportunity["correlation_id"]
    phases = {p["billing_period"]: p for p in activated["phases"]}
    assert len(activated["phases"]) == 2 and set(phases) == {"MONTHLY", "ONE_TIME"}
    monthly, one_time = phases["MONTHLY"], phases["ONE_TIME"]
    assert (monthly["sku"], monthly["quantity"], monthly["unit_price"]) == (
        "PLAT-SEAT",
        Decimal("10"),
        Decimal("49.00"),
    )
    assert (monthly["start_date"], monthly["end_date"]) == (start, date(2028, 3, 14))
    assert (one_time["sku"], one_time["quantity"], one_time["unit_price"]) == (
        "ONBOARD",
        Decimal("1"),
        Decimal("2500.00"),
    )
    assert one_time["start_date"] == start


def test_payment_settler_writes_off_a_short_payment_within_tolerance(
    settings: Settings, tmp_path: Path
) -> None:
    publisher = Publisher(settings)
    customers = Outcomes(settings, "erp.customer-synced")
    postings = Outcomes(settings, "erp.invoice-posted")
    payments = Outcomes(settings, "erp.payment-applied")
    invoice_id, payment_id = f"INV-PUB-{run_id()}", f"PAY-PUB-{run_id()}"
    total = Decimal("583.10")
    amount = total - Decimal("0.03")  # short by less than the default tolerance of 0.05

    with running(tmp_path, "account-sync", "invoice-poster", "payment-settler"):
        try:
            account = sync_fresh_account(publisher, customers)
            account_id = account["account_id"]
            invoice = {
                **envelope("billing", f"deal-{invoice_id}"),
                "invoice_id": invoice_id,
                "invoice_number": f"2026-{invoice_id}",
                "account_id": account_id,
                "subscription_id": None,
                "legal_entity": "ACME-DE",
                "currency": "EUR",
                "issued_on": date(2026, 11, 27),
                "due_on": date(2026, 12, 27),
                "lines": [
                    {"line_id": "1", "description": "Platform seats x 10", "sku": "PLAT-SEAT",
                     "amount": Decimal("490.00"), "tax_amount": Decimal("93.10"),
                     "service_period_start": date(2026, 11, 1),
                     "service_period_end": date(2026, 11, 30)},
                ],
                "subtotal": Decimal("490.00"),
                "tax_total": Decimal("93.10"),
                "total": total,
            }  # fmt: skip
            publisher.publish("billing.invoice-issued", invoice_id, invoice)
            postings.caused_by(invoice_id, invoice["event_id"])  # the invoice is open in the ERP

            payment = {
                **envelope("payments", invoice["correlation_id"]),
                "payment_id": payment_id,
                "account_id": account_id,
                "invoice_id": invoice_id,
                "amount": amount,
                "fee_amount": Decimal("0.00"),
                "currency": "EUR",
                "settled_at": datetime.now(UTC),
                "method": "SEPA_DEBIT",
                "gateway_reference": f"gw-{payment_id}",
            }
            publisher.publish("payments.payment-settled", payment_id, payment)
            applied = payments.caused_by(payment_id, payment["event_id"])
        finally:
            customers.close()
            postings.close()
            payments.close()

    assert (applied["payment_id"], applied["invoice_id"]) == (payment_id, invoice_id)
    assert applied["status"] == "PAID"
    assert applied["applied_amount"] == amount == Decimal("583.07")
    assert applied["written_off_amount"] == Decimal("0.03")
    assert applied["unapplied_amount"] == Decimal("0")
    assert applied["invoice_open_after"] == Decimal("0")
    assert applied["account_id"] == account_id
    assert applied["erp_customer_id"] == account["erp_customer_id"]
    assert applied["legal_entity"] == "ACME-DE"
    lines = applied["journal_lines"]
    assert sum(x["debit"] for x in lines) == sum(x["credit"] for x in lines) == total
    write_off = {"account_code": "6900", "debit": Decimal("0.03"), "credit": Decimal("0")}
    # No GL mapping rule chose 6900; EUR is ACME-DE's functional currency: rate 1.
    functional = {"functional_debit": Decimal("0.03"), "functional_credit": Decimal(0), "rate": 1}
    assert {**write_off, "mapping_rule": None, **functional} in lines

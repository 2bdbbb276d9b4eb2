"""The local Kafka broker as finsync.stack.kafka runs it: usable, and strict about topics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from finsync.runtime import provision
from finsync.settings import Settings
from finsync.stack import kafka
from tests.support import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings() -> Iterator[Settings]:
    settings = Settings.from_env()
    was_running, _ = kafka.status(settings)
    kafka.start(settings)
    yield settings
    if not was_running:  # leave a stack someone else started alone
        kafka.stop(settings)


@pytest.fixture
def admin(settings: Settings) -> AdminClient:
    return AdminClient({**settings.kafka_config()})


def _name(label: str) -> str:
    return f"finsync-it-{label}-{uuid.uuid4().hex[:8]}"


def test_status_reports_running(settings: Settings) -> None:
    healthy, description = kafka.status(settings)
    assert healthy, description
    assert description.startswith("running pid ")


def test_create_produce_consume(settings: Settings, admin: AdminClient) -> None:
    topic = _name("roundtrip")
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    try:
        producer = Producer(settings.kafka_config())
        producer.produce(topic, key=b"order-1", value=b"invoiced")
        assert producer.flush(30) == 0

        consumer = Consumer(
            {
                **settings.kafka_config(),
                "group.id": _name("group"),
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([topic])
        try:
            msg = None
            for _ in range(30):  # the first poll also waits for the group join
                msg = consumer.poll(1.0)
                if msg is not None:
                    break
            assert msg is not None, "no message consumed within 30 s"
            assert msg.error() is None, msg.error()
            assert (msg.key(), msg.value()) == (b"order-1", b"invoiced")
        finally:
            consumer.close()
    finally:
        admin.delete_topics([topic])[topic].result(30)


def test_producing_to_unknown_topic_does_not_create_it(
    settings: Settings, admin: AdminClient
) -> None:
    topic = _name("missing")
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    # Short timeouts: the delivery is expected to fail, no need to wait the default 30 s.
    producer = Producer(
        {
            **settings.kafka_config(),
            "message.timeout.ms": 5000,
            "topic.metadata.propagation.max.ms": 2000,
        }
    )
    producer.produce(topic, value=b"lost", on_delivery=on_delivery)
    producer.flush(15)

    assert errors, "delivery to a non-existent topic succeeded"
    assert topic not in admin.list_topics(timeout=10).topics


def test_dead_letter_retention_is_configurable_and_applied_to_existing_topics(
    settings: Settings, admin: AdminClient
) -> None:
    def retention() -> str:
        resource = ConfigResource(ResourceType.TOPIC, "invoice-poster.dlq")
        configs = admin.describe_configs([resource])[resource].result(30)
        return str(configs["retention.ms"].value)

    # The broker applies a committed config change a moment later: wait for it to show.
    provision.create_topics(replace(settings, dlq_retention_days=30), say=lambda _: None)
    try:
        month = str(30 * 24 * 3600 * 1000)
        eventually(lambda: retention() == month, 10, "a retention of 30 days")
    finally:
        provision.create_topics(settings, say=lambda _: None)  # the default: kept forever
    eventually(lambda: retention() == "-1", 10, "retention back to forever")

"""Kafka clients, configured one way for the whole runtime."""

from __future__ import annotations

from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient

from finsync.messages import Record
from finsync.settings import Settings


def producer(settings: Settings, client_id: str) -> Producer:
    return Producer(
        {
            **settings.kafka_config(),
            "client.id": client_id,
            "enable.idempotence": True,  # acks=all, ordered retries without duplicates
            "linger.ms": 2,
            "compression.type": "lz4",
        }
    )


def consumer(settings: Settings, group: str, **extra: object) -> Consumer:
    """Offsets are committed by finsync, after its database transaction, never automatically."""
    return Consumer(
        {
            **settings.kafka_config(),
            "group.id": group,
            "client.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **extra,
        }
    )


def admin(settings: Settings) -> AdminClient:
    return AdminClient({**settings.kafka_config()})


def to_record(msg: Message) -> Record:
    _, ts = msg.timestamp()
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None and partition is not None and offset is not None
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    headers = [(k, v.encode() if isinstance(v, str) else v) for k, v in pairs]
    return Record(topic, partition, offset, ts, msg.key(), msg.value(), headers)

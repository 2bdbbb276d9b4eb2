"""Provisioning from code: Kafka topics and registered schemas with their compatibility mode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from finsync.contract.events import EVENT_TYPES
from finsync.contract.topics import SERVICES, all_topics
from finsync.runtime import clients
from finsync.runtime.serde import schema_text, subject
from finsync.settings import Settings

COMPATIBILITY = "BACKWARD"


def create_topics(settings: Settings, say: Callable[[str], None] = print) -> list[str]:
    """Create the topics that do not exist yet; returns their names."""
    admin = clients.admin(settings)
    existing = set(admin.list_topics(timeout=15).topics)
    missing = [
        NewTopic(t.name, num_partitions=t.partitions, replication_factor=-1, config=t.config)
        for t in all_topics(list(SERVICES), settings.topic_partitions)
        if t.name not in existing
    ]
    if not missing:
        return []
    for _name, future in admin.create_topics(missing, operation_timeout=30).items():
        try:
            future.result()
        except Exception as exc:  # a concurrent creator got there first: fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    say(f"created {len(missing)} topics")
    return [t.topic for t in missing]


@dataclass(frozen=True)
class SchemaProblem:
    subject: str
    reason: str


def check_and_register(client: SchemaRegistryClient, register: bool = True) -> list[SchemaProblem]:
    """Every subject gets BACKWARD compatibility; a schema that would break the registered
    versions is reported and not registered."""
    problems = []
    registered = set(client.get_subjects())
    for topic in EVENT_TYPES:
        name = subject(topic)
        schema = Schema(schema_text(topic), "AVRO")
        try:
            if name in registered and not client.test_compatibility(name, schema):
                problems.append(
                    SchemaProblem(
                        name,
                        f"schemas/{topic}.avsc is not {COMPATIBILITY} "
                        "compatible with the registered versions",
                    )
                )
                continue
            if register:
                client.register_schema(name, schema)
                client.set_compatibility(name, COMPATIBILITY)
        except SchemaRegistryError as exc:
            problems.append(SchemaProblem(name, str(exc)))
    return problems

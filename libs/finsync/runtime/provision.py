"""Provisioning from code: Kafka topics and registered schemas with their compatibility mode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from finsync.contract.events import EVENT_TYPES
from finsync.contract.topics import DAY_MS, SERVICES, all_topics, dlq_topic
from finsync.runtime import clients
from finsync.runtime.serde import schema_text, subject
from finsync.settings import Settings

COMPATIBILITY = "BACKWARD"


def dlq_retention_ms(settings: Settings) -> int:
    days = settings.dlq_retention_days
    return -1 if days < 0 else days * DAY_MS


def create_topics(settings: Settings, say: Callable[[str], None] = print) -> list[str]:
    """Create the topics that do not exist yet, and give existing dead-letter topics the
    configured retention; returns the names of the topics created."""
    admin = clients.admin(settings)
    existing = set(admin.list_topics(timeout=15).topics)
    specs = all_topics(list(SERVICES), settings.topic_partitions, dlq_retention_ms(settings))
    _set_dlq_retention(
        admin, [dlq_topic(s) for s in SERVICES if dlq_topic(s) in existing], settings
    )
    missing = [
        NewTopic(t.name, num_partitions=t.partitions, replication_factor=-1, config=t.config)
        for t in specs
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


def _set_dlq_retention(admin: AdminClient, topics: list[str], settings: Settings) -> None:
    retention = ConfigEntry(
        "retention.ms",
        str(dlq_retention_ms(settings)),
        incremental_operation=AlterConfigOpType.SET,
    )
    resources = [
        ConfigResource(ResourceType.TOPIC, t, incremental_configs=[retention]) for t in topics
    ]
    if resources:
        for future in admin.incremental_alter_configs(resources).values():
            future.result(30)


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

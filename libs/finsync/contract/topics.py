"""Topic names and how finsync provisions them. Names that reach Kafka are contract."""

from __future__ import annotations

from dataclasses import dataclass

from finsync.contract.events import EVENT_TYPES

DAY_MS = 24 * 3600 * 1000


def retry_topic(service: str) -> str:
    return f"{service}.retry"


def dlq_topic(service: str) -> str:
    return f"{service}.dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def all_topics(services: list[str], partitions: int, dlq_retention_ms: int = -1) -> list[TopicSpec]:
    """Every topic finsync needs: the event topics, and per service its retry and dead letters.

    Event topics keep two weeks (replays of a busy quarter-end), retry topics a week,
    dead letters forever unless configured otherwise: an SRE decides when one is done.
    """
    events = [
        TopicSpec(
            t, partitions, KEPT_LATEST if t == KPI_TOPIC else {"retention.ms": str(14 * DAY_MS)}
        )
        for t in EVENT_TYPES
    ]
    per_service = [
        spec
        for s in services
        for spec in (
            TopicSpec(retry_topic(s), partitions, {"retention.ms": str(7 * DAY_MS)}),
            TopicSpec(dlq_topic(s), 1, {"retention.ms": str(dlq_retention_ms)}),
        )
    ]
    # finance-analytics reads the streams and dead-letters what it cannot read, like a service.
    analytics = TopicSpec(dlq_topic(ANALYTICS), 1, {"retention.ms": str(dlq_retention_ms)})
    return events + per_service + [analytics]


# finance-analytics, the stream app counting the figures finance watches; also its group.
ANALYTICS = "finance-analytics"
# Its figures, keyed by day: compaction keeps each day's newest, the current figures, forever.
KPI_TOPIC = "analytics.finance-kpis"
# The event topics it counts (it also counts the services' dead-letter topics).
ANALYTICS_READS = ("crm.opportunity-closed", "erp.invoice-posted", "erp.payment-applied")
KEPT_LATEST = {"cleanup.policy": "compact"}

# The consumer services of the platform; each name is also its consumer group.
SERVICES = ("account-sync", "subscription-activator", "invoice-poster", "payment-settler")

"""Metrics: what a service and its relay record, and Prometheus /metrics to read them.

Names follow OpenTelemetry's messaging semantic conventions where one exists
(messaging.process.duration, messaging.client.consumed.messages, messaging.client.sent.messages,
with messaging.system, messaging.destination.name, messaging.consumer.group.name and
messaging.operation.name); finsync's own are under `finsync.`. The OpenTelemetry Prometheus
exporter turns them into Prometheus names (dots become underscores, units and `_total` are
appended: messaging_process_duration_seconds, finsync_records_total, ...).

The hot path records per batch, not per record, except the end-to-end latency, which is one
value per record by nature. Gauges (consumer lag, outbox backlog) are read only when someone
scrapes, from samples at most SAMPLE_SECONDS old.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import psycopg
from confluent_kafka import Consumer
from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.util.types import Attributes
from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app, start_http_server

from finsync.contract.topics import retry_topic
from finsync.errors import Outage
from finsync.runtime import db
from finsync.runtime.messages import Outgoing, Record
from finsync.settings import Settings

log = logging.getLogger("finsync.metrics")

SYSTEM = "kafka"
RELAY_PORT_OFFSET = 100  # a service's relay child process serves its own /metrics here
SAMPLE_SECONDS = 5.0  # the oldest a lag or backlog sample may be when it is scraped
# OpenTelemetry's advice for messaging durations (seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# End to end, a record may wait minutes (a lagging consumer) or hours (a service down).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


# --- Prometheus ---------------------------------------------------------------------------


def relay_port(port: int) -> int:
    """Where the relay of a service whose /metrics is on `port` serves its own; 0: none."""
    if port == 0 or port + RELAY_PORT_OFFSET > 65535:
        return 0
    return port + RELAY_PORT_OFFSET


def prometheus_reader(
    port: int, host: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY
) -> PrometheusMetricReader:
    """A metric reader that Prometheus scrapes through `registry`, served over HTTP on `port`
    (0: not served here; the console mounts asgi_app() instead)."""
    # No otel_scope_* labels on every series: every instrument here is finsync's.
    reader = PrometheusMetricReader(scope_info_enabled=False, registry=registry)
    if port:
        serve(port, host, registry)
    return reader


def serve(port: int, host: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY) -> bool:
    """Serve /metrics on `port` from a daemon thread. A port already taken (a second instance
    on this host) is one warning, never a failure: the process goes on without /metrics."""
    try:
        start_http_server(port, host, registry)
    except OSError as exc:
        log.warning(
            "metrics port %d is taken (%s); this process serves no /metrics",
            port,
            exc.strerror or type(exc).__name__,
            extra={"port": port},
        )
        return False
    log.info("metrics on http://%s:%d/metrics", host, port, extra={"port": port})
    return True


def asgi_app(registry: CollectorRegistry = REGISTRY) -> Callable[..., Any]:
    """/metrics as an ASGI app, to mount in a web app (the console): `app.mount("/metrics",
    asgi_app())`, after telemetry.setup(..., metrics_port=0) made the reader."""
    return make_asgi_app(registry)


# --- the consumer's instruments -----------------------------------------------------------


class OutboxBacklog:
    """Messages of one service waiting in the outbox, counted at most every `every` seconds
    on a connection of its own, from whichever thread scrapes. None while the database is
    unreachable (the gauge then shows nothing rather than a stale count)."""

    def __init__(self, settings: Settings, service: str, every: float = SAMPLE_SECONDS) -> None:
        self.settings = settings
        self.service = service
        self.every = every
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._value: int | None = None
        self._at = float("-inf")

    def __call__(self) -> int | None:
        with self._lock:
            if time.monotonic() - self._at < self.every:
                return self._value
            self._at = time.monotonic()
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = db.connect(self.settings, autocommit=True)
                row = self._conn.execute(
                    "SELECT count(*) FROM finsync.outbox "
                    "WHERE service = %s AND sent_at IS NULL AND failed_at IS NULL",
                    (self.service,),
                ).fetchone()
                self._value = int(row[0]) if row else 0
            except (Outage, psycopg.Error) as exc:
                log.debug("outbox backlog not sampled: %s", type(exc).__name__)
                self._value = None
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
            return self._value


class ConsumerMeters:
    """What the consumer loop records: per batch after its commit, lag every few seconds."""

    def __init__(
        self,
        group: str,
        backlog: Callable[[], int | None] | None = None,
        meter: Meter | None = None,
    ) -> None:
        meter = meter or metrics.get_meter("finsync")
        self.group = group
        self.retry_topic = retry_topic(group)
        self.backlog = backlog
        self.records = meter.create_counter(
            "finsync.records",
            description="records consumed, by outcome: processed, duplicate, "
            "retried, dead-lettered",
        )
        self.batch_seconds = meter.create_histogram(
            "finsync.batch.duration",
            unit="s",
            description="one batch, consumed to committed",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.consumed = meter.create_counter(
            "messaging.client.consumed.messages",
            unit="{message}",
            description="records handed to the service by Kafka (again after an outage)",
        )
        self.process_seconds = meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="processing a batch, from its records' topic to the offset commit",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.latency = meter.create_histogram(
            "finsync.end_to_end.duration",
            unit="s",
            description="commit time minus the Kafka timestamp, per record of an input topic",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        meter.create_observable_gauge(
            "finsync.consumer.lag",
            callbacks=[self._observe_lag],
            unit="{message}",
            description="records of an assigned partition not consumed yet",
        )
        if backlog is not None:
            meter.create_observable_gauge(
                "finsync.outbox.backlog",
                callbacks=[self._observe_backlog],
                unit="{message}",
                description="messages the service committed that its relay has not published",
            )
        self._service = {"service": group}
        self._by_outcome: dict[str, Attributes] = {}
        self._by_topic: dict[tuple[str, str], Attributes] = {}
        self._lag: Mapping[tuple[str, int], int] = {}
        self._next_lag = 0.0

    def _attributes(self, topic: str, operation: str) -> Attributes:
        """Made once per topic and operation: the hot path reuses them."""
        key = (topic, operation)
        found = self._by_topic.get(key)
        if found is None:
            found = self._by_topic[key] = {
                "messaging.system": SYSTEM,
                "messaging.destination.name": topic,
                "messaging.consumer.group.name": self.group,
                "messaging.operation.name": operation,
            }
        return found

    def polled(self, records: Sequence[Record]) -> None:
        """A batch Kafka handed over."""
        for topic, n in Counter(r.topic for r in records).items():
            self.consumed.add(n, self._attributes(topic, "poll"))

    def committed(
        self,
        records: Sequence[Record],
        counts: Mapping[str, int],
        seconds: float,
        now_ms: int | None = None,
    ) -> None:
        """A batch whose effects and offsets are committed, `seconds` after it was polled."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        for outcome, n in counts.items():
            attributes = self._by_outcome.get(outcome)
            if attributes is None:
                attributes = self._by_outcome[outcome] = {**self._service, "outcome": outcome}
            self.records.add(n, attributes)
        self.batch_seconds.record(seconds, self._service)
        for topic in {r.topic for r in records}:
            self.process_seconds.record(seconds, self._attributes(topic, "process"))
        for r in records:
            # A retry's timestamp is when it was parked, not when it was first published.
            if r.timestamp_ms > 0 and r.topic != self.retry_topic:
                self.latency.record(
                    max(now_ms - r.timestamp_ms, 0) / 1000, self._attributes(r.topic, "process")
                )

    def sample_lag(self, consumer: Consumer, force: bool = False) -> None:
        """Lag per assigned partition, from the client's cached watermarks: no broker round
        trip, and at most every SAMPLE_SECONDS. Call it from the thread that consumes."""
        if not force and time.monotonic() < self._next_lag:
            return
        self._next_lag = time.monotonic() + SAMPLE_SECONDS
        lag = {}
        assigned = consumer.assignment()
        for tp in consumer.position(assigned) if assigned else []:
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and high >= 0:
                lag[(tp.topic, tp.partition)] = max(high - tp.offset, 0)
        self._lag = lag  # one assignment: the scrape thread reads it whole

    def _observe_lag(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(
                n,
                {
                    "messaging.system": SYSTEM,
                    "messaging.destination.name": topic,
                    "messaging.destination.partition.id": str(partition),
                    "messaging.consumer.group.name": self.group,
                },
            )
            for (topic, partition), n in sorted(self._lag.items())
        ]

    def _observe_backlog(self, options: CallbackOptions) -> Iterable[Observation]:
        assert self.backlog is not None
        value = self.backlog()
        return [] if value is None else [Observation(value, self._service)]


# --- the relay's instruments --------------------------------------------------------------


class RelayMeters:
    """What the outbox relay records, once per batch it publishes."""

    def __init__(self, service: str, meter: Meter | None = None) -> None:
        meter = meter or metrics.get_meter("finsync")
        self.service = service
        self.published = meter.create_counter(
            "finsync.outbox.published", description="messages the relay published"
        )
        self._sent = meter.create_counter(
            "messaging.client.sent.messages",
            unit="{message}",
            description="messages the relay produced, with error.type where Kafka did not "
            "take them",
        )

    def sent(self, messages: Sequence[Outgoing], errors: Sequence[str | None]) -> None:
        """Kafka's answer to each message: None where it took it, else the error's name."""
        for (topic, error), n in Counter(
            (m.topic, e) for m, e in zip(messages, errors, strict=True)
        ).items():
            attributes: dict[str, str] = {
                "messaging.system": SYSTEM,
                "messaging.destination.name": topic,
                "messaging.operation.name": "send",
            }
            if error is not None:
                attributes["error.type"] = error
            self._sent.add(n, attributes)

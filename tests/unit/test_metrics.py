"""What the consumer and the relay record, under which names Prometheus sees it, and where
each process serves it."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import TopicPartition
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from finsync.runtime import metrics
from finsync.runtime.messages import Outgoing, Record
from finsync.settings import Settings
from finsync.stack import prometheus

INVOICES = "billing.invoice-issued"
RETRY = "invoice-poster.retry"


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    if data is None:  # nothing recorded or observed
        return {}
    return {
        m.name: list(m.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }


def _meters(backlog: Any = None) -> tuple[InMemoryMetricReader, metrics.ConsumerMeters]:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("finsync")
    return reader, metrics.ConsumerMeters("invoice-poster", backlog, meter)


def test_a_committed_batch_is_counted_timed_and_its_records_latency_measured() -> None:
    reader, meters = _meters()
    batch = [Record(INVOICES, 0, i, 1_000, b"k", b"v") for i in range(3)]
    batch.append(Record(RETRY, 1, 9, 500, b"k", b"v"))  # parked long ago: no latency
    meters.polled(batch)
    meters.committed(batch, {"processed": 3, "retried": 1}, 0.2, now_ms=1_750)
    points = _points(reader)

    consumed = {p.attributes["messaging.destination.name"]: p for p in points[
        "messaging.client.consumed.messages"]}  # fmt: skip
    assert consumed[INVOICES].value == 3 and consumed[RETRY].value == 1
    assert dict(consumed[INVOICES].attributes) == {
        "messaging.system": "kafka",
        "messaging.destination.name": INVOICES,
        "messaging.consumer.group.name": "invoice-poster",
        "messaging.operation.name": "poll",
    }
    by_outcome = {p.attributes["outcome"]: p.value for p in points["finsync.records"]}
    assert by_outcome == {"processed": 3, "retried": 1}
    [batch_time] = points["finsync.batch.duration"]
    assert (batch_time.count, batch_time.sum) == (1, 0.2)
    process = {p.attributes["messaging.destination.name"]: p for p in points[
        "messaging.process.duration"]}  # fmt: skip
    assert {t: (p.count, p.sum) for t, p in process.items()} == {
        INVOICES: (1, 0.2),
        RETRY: (1, 0.2),
    }
    [latency] = points["finsync.end_to_end.duration"]
    assert latency.attributes["messaging.destination.name"] == INVOICES
    assert (latency.count, latency.sum) == (3, pytest.approx(2.25))


class _Consumer:
    """What sample_lag reads of a consumer: its assignment, positions and cached watermarks."""

    def __init__(self, positions: dict[tuple[str, int], int], high: int) -> None:
        self.positions, self.high = positions, high

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self.positions]

    def position(self, parts: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.positions[tp.topic, tp.partition])
                for tp in parts]  # fmt: skip

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool) -> tuple[int, int]:
        assert cached  # never a broker round trip from the consuming thread
        return 0, self.high


def test_lag_is_a_gauge_per_assigned_partition_that_forgets_partitions_no_longer_held() -> None:
    reader, meters = _meters()
    meters.sample_lag(_Consumer({(INVOICES, 0): 90, (INVOICES, 1): -1001}, 100))
    [lag] = _points(reader)["finsync.consumer.lag"]
    assert lag.value == 10
    assert lag.attributes["messaging.destination.partition.id"] == "0"
    assert lag.attributes["messaging.consumer.group.name"] == "invoice-poster"

    meters.sample_lag(_Consumer({(INVOICES, 2): 95}, 100))
    assert _points(reader)["finsync.consumer.lag"][0].value == 10  # not resampled yet
    meters.sample_lag(_Consumer({(INVOICES, 2): 95}, 100), force=True)
    [lag] = _points(reader)["finsync.consumer.lag"]
    assert (lag.attributes["messaging.destination.partition.id"], lag.value) == ("2", 5)


def test_the_outbox_backlog_is_shown_only_when_it_could_be_counted() -> None:
    backlog: list[int | None] = [12]
    reader, _ = _meters(lambda: backlog[0])
    [point] = _points(reader)["finsync.outbox.backlog"]
    assert (dict(point.attributes), point.value) == ({"service": "invoice-poster"}, 12)
    backlog[0] = None  # the database is unreachable: nothing, rather than a stale count
    assert "finsync.outbox.backlog" not in _points(reader)


def test_the_relay_counts_what_it_sent_per_topic_and_what_kafka_refused_by_error() -> None:
    reader = InMemoryMetricReader()
    relay = metrics.RelayMeters(
        "invoice-poster", MeterProvider(metric_readers=[reader]).get_meter("f")
    )
    sent = [Outgoing("erp.invoice-posted", b"k", b"v")] * 3 + [
        Outgoing("invoice-poster.dlq", b"k", b"v")
    ]
    relay.sent(sent, [None, None, "MSG_SIZE_TOO_LARGE", None])
    counts = {
        (p.attributes["messaging.destination.name"], p.attributes.get("error.type")): p.value
        for p in _points(reader)["messaging.client.sent.messages"]
    }
    assert counts == {
        ("erp.invoice-posted", None): 2,
        ("erp.invoice-posted", "MSG_SIZE_TOO_LARGE"): 1,
        ("invoice-poster.dlq", None): 1,
    }


def test_prometheus_sees_the_opentelemetry_names_with_units_and_histogram_buckets() -> None:
    registry = CollectorRegistry()
    reader = metrics.prometheus_reader(0, registry=registry)  # 0: read here, served by no port
    meters = metrics.ConsumerMeters(
        "invoice-poster", lambda: 4, MeterProvider(metric_readers=[reader]).get_meter("finsync")
    )
    batch = [Record(INVOICES, 0, 1, 1_000, b"k", b"v")]
    meters.polled(batch)
    meters.committed(batch, {"processed": 1}, 0.03, now_ms=1_100)
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    assert families["messaging_client_consumed_messages"].type == "counter"
    assert families["finsync_records"].type == "counter"
    for histogram in ("messaging_process_duration_seconds", "finsync_end_to_end_duration_seconds",
                      "finsync_batch_duration_seconds"):  # fmt: skip
        assert families[histogram].type == "histogram"
    process = families["messaging_process_duration_seconds"].samples
    buckets = {s.labels["le"]: s.value for s in process if s.name.endswith("_bucket")}
    assert buckets["0.025"] == 0 and buckets["0.05"] == 1 and buckets["+Inf"] == 1
    assert families["finsync_outbox_backlog"].samples[0].value == 4
    [consumed] = families["messaging_client_consumed_messages"].samples
    assert consumed.labels["messaging_destination_name"] == INVOICES
    assert "otel_scope_name" not in consumed.labels


def test_metrics_ports_default_per_service_can_be_moved_or_turned_off_and_are_checked() -> None:
    assert Settings.from_env({}).metrics_port("invoice-poster") == 9466
    moved = Settings.from_env({"FINSYNC_METRICS_PORT_PAYMENT_SETTLER": "19467",
                               "FINSYNC_METRICS_PORT_INVOICE_POSTER": "0"})  # fmt: skip
    assert moved.metrics_port("payment-settler") == 19467
    assert moved.metrics_port("invoice-poster") == 0
    assert moved.metrics_port("no-such-service") == 0
    assert (metrics.relay_port(9466), metrics.relay_port(0), metrics.relay_port(65500)) == (
        9566,
        0,
        0,
    )
    with pytest.raises(SystemExit, match="FINSYNC_METRICS_PORT_ACCOUNT_SYNC='nine' is not a port"):
        Settings.from_env({"FINSYNC_METRICS_PORT_ACCOUNT_SYNC": "nine"})


def test_the_local_prometheus_scrapes_each_process_on_the_port_this_environment_gives_it() -> None:
    settings = Settings.from_env({"FINSYNC_METRICS_PORT_ACCOUNT_SYNC": "19000",
                                  "FINSYNC_METRICS_PORT_INVOICE_POSTER": "0",
                                  "FINSYNC_CONSOLE_PORT": "18180"})  # fmt: skip
    import yaml

    jobs = {j["job_name"]: j for j in yaml.safe_load(prometheus.config(settings))["scrape_configs"]}
    targets = {name: [t for g in job["static_configs"] for t in g["targets"]]
               for name, job in jobs.items()}  # fmt: skip
    assert targets == {
        "account-sync": ["127.0.0.1:19000", "127.0.0.1:19100"],
        "subscription-activator": ["127.0.0.1:9465", "127.0.0.1:9565"],
        "invoice-poster": [],
        "payment-settler": ["127.0.0.1:9467", "127.0.0.1:9567"],
        "console": ["127.0.0.1:18180"],
    }
    assert jobs["console"]["metrics_path"] == "/metrics"
    default = yaml.safe_load(prometheus.config(Settings.from_env({})))
    assert default == yaml.safe_load(prometheus.CONFIG.read_text())  # the file, as it is

"""A running service serves Prometheus /metrics under OpenTelemetry's messaging names, its
relay on the port beside it; a second instance on the same host does without, and runs."""

from __future__ import annotations

import socket
import urllib.request
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from finsync.runtime.metrics import RELAY_PORT_OFFSET
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from tests.support import ServiceProcess, crm_account, eventually, publish, scalar

pytestmark = pytest.mark.integration

SERVICE = "account-sync"
TOPIC = "crm.account-upserted"


def _free_ports() -> int:
    """A port free on this host, and free 100 above too (for the relay)."""
    while True:
        with socket.socket() as a, socket.socket() as b:
            a.bind(("0.0.0.0", 0))
            port: int = a.getsockname()[1]
            try:
                b.bind(("0.0.0.0", port + RELAY_PORT_OFFSET))
            except OSError:
                continue
            return port


def _samples(port: int) -> list[Sample]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of `name`'s samples that carry `labels` (a label a sample lacks is "")."""
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k, "") == v for k, v in labels.items())
    )


def test_a_service_and_its_relay_serve_messaging_metrics_and_a_second_instance_runs_without(
    settings: Settings, serde: Serde, tmp_path: Path
) -> None:
    port = _free_ports()
    env = {"FINSYNC_METRICS_PORT_ACCOUNT_SYNC": str(port)}
    first = ServiceProcess(SERVICE, tmp_path, env).start()
    second = None
    try:
        ids = [f"MET-{uuid.uuid4().hex[:10]}-{i}" for i in range(3)]
        publish(settings, serde, [crm_account(a, 1, f"Metrics {a} GmbH") for a in ids])
        eventually(
            lambda: scalar(
                settings,
                "SELECT count(*) FROM finsync.account_xref WHERE account_id = ANY(%s)",
                ids,
            ) == 3,
            60,
            "the accounts to sync",
        )  # fmt: skip
        group = {"messaging_consumer_group_name": SERVICE, "messaging_destination_name": TOPIC}
        samples = _samples(port)
        consumed = _value(samples, "messaging_client_consumed_messages_total", **group)
        assert consumed >= 3
        assert _value(samples, "finsync_records_total", outcome="processed", service=SERVICE) >= 3
        buckets = [
            s
            for s in samples
            if s.name == "messaging_process_duration_seconds_bucket"
            and s.labels["messaging_destination_name"] == TOPIC
        ]
        bounds = [s.labels["le"] for s in buckets]
        assert bounds[0] == "0.005" and bounds[-1] == "+Inf"
        counts = [s.value for s in buckets]
        assert counts == sorted(counts) and counts[-1] >= 1  # cumulative, at least one batch
        assert _value(samples, "messaging_process_duration_seconds_sum", **group) > 0
        latency = _value(samples, "finsync_end_to_end_duration_seconds_count", **group)
        assert latency >= 3
        assert any(s.name == "finsync_outbox_backlog" for s in samples)

        def lag() -> dict[str, float]:  # sampled every few seconds, once positions are known
            return {
                s.labels["messaging_destination_partition_id"]: s.value
                for s in _samples(port)
                if s.name == "finsync_consumer_lag"
                and s.labels["messaging_destination_name"] == TOPIC
            }

        partitions = eventually(lag, 15, "the consumer lag per partition")
        assert set(partitions) <= {str(p) for p in range(settings.topic_partitions)}
        assert all(n >= 0 for n in partitions.values())

        # The relay, a process of its own, counts what it published on the port beside.
        eventually(
            lambda: _value(
                _samples(port + RELAY_PORT_OFFSET),
                "messaging_client_sent_messages_total",
                messaging_destination_name="erp.customer-synced",
                error_type="",
            ) >= 3,
            30,
            "the relay to count what it published",
        )  # fmt: skip

        # A second instance on this host finds the port taken: one warning, and it runs.
        second = ServiceProcess(SERVICE, tmp_path, env).start()
        second.wait_log(f"metrics port {port} is taken", 10)
        assert second.running()
        assert _value(_samples(port), "finsync_records_total", service=SERVICE) >= 3
    finally:
        if second is not None:
            assert second.stop() == 0
        assert first.stop() == 0

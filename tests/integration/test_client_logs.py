"""librdkafka's own log lines go through Python logging like every other line: as JSON from a
service, into a file from the demo, never as raw `%3|…|FAIL|…` lines on someone's terminal."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

# A producer and a consumer that cannot reach their broker: librdkafka logs connection failures.
PROBE = """
import time
from finsync.runtime import clients, telemetry
from finsync.settings import Settings

telemetry.json_logs("INFO")
settings = Settings.from_env({"FINSYNC_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
producer = clients.producer(settings, "log-probe")
consumer = clients.consumer(settings, "log-probe")
consumer.subscribe(["finsync-log-probe"])
deadline = time.monotonic() + 3
while time.monotonic() < deadline:
    producer.poll(0.1)
    consumer.poll(0.1)
consumer.close()
"""


def test_librdkafka_log_lines_are_json_through_python_logging() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stderr.splitlines()
    assert lines, "librdkafka logged nothing about a broker it cannot reach"
    assert not [line for line in lines if line.startswith("%")], done.stderr
    records = [json.loads(line) for line in lines]  # every line is JSON
    kafka = [r for r in records if r["logger"] == "finsync.kafka"]
    assert any("Connection refused" in r["msg"] for r in kafka), done.stderr
    for client in ("#producer", "#consumer"):
        assert any(client in r["msg"] for r in kafka), done.stderr

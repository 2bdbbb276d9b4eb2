"""Helpers for tests against the real stack: service processes, topic readers, waiting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from confluent_kafka import Consumer, TopicPartition

from finsync import clients, db, outbox
from finsync.events import Event
from finsync.messages import Outgoing, Record
from finsync.serde import Serde
from finsync.settings import Settings

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 60, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


class ServiceProcess:
    """`finsync run NAME` as a real process, its JSON log in a file."""

    def __init__(self, name: str, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.env = {**os.environ, **(env or {})}
        self.log = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "finsync.cli.main", "run", self.name],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        eventually(lambda: "started" in self.log.read_text(), 30, f"{self.name} to start")
        return self

    def wait_log(self, text: str, timeout: float = 60) -> None:
        eventually(lambda: text in self.log.read_text(), timeout, f"{text!r} in {self.log}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        print(
            f"--- {self.log} (last lines) ---\n"
            + "\n".join(self.log.read_text().splitlines()[-15:])
        )
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired as exc:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"{self.name} did not stop on SIGTERM in {timeout}s") from exc
        return self.proc.returncode


class TopicTail:
    """Reads what arrives on a topic after this object was made."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.consumer: Consumer = clients.consumer(settings, f"test-tail-{uuid.uuid4()}")
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.positions = [
            TopicPartition(
                topic, p, self.consumer.get_watermark_offsets(TopicPartition(topic, p))[1]
            )
            for p in partitions
        ]
        self.consumer.assign(self.positions)
        self.records: list[Record] = []

    def poll(self, seconds: float = 1.0) -> list[Record]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(500, timeout=0.2):
                if not msg.error():
                    self.records.append(clients.to_record(msg))
        return self.records

    def close(self) -> None:
        self.consumer.close()


def publish(settings: Settings, serde: Serde, events: list[Event]) -> None:
    clients.send(clients.producer(settings, "test"), [serde.outgoing(e) for e in events])


def publish_raw(
    settings: Settings,
    topic: str,
    key: bytes,
    value: bytes,
    headers: list[tuple[str, bytes | None]] | None = None,
) -> None:
    clients.send(clients.producer(settings, "test"), [Outgoing(topic, key, value, headers or [])])


def drain(settings: Settings, name: str, topics: list[str], log_dir: Path) -> None:
    """Run the service until it has caught up with its topics and its outbox is empty."""
    service = ServiceProcess(name, log_dir).start()
    try:
        eventually(
            lambda: clients.group_lag(settings, name, topics) == 0 and unsent(settings, name) == 0,
            120,
            f"{name} to catch up",
        )
    finally:
        service.stop()


def unsent(settings: Settings, service: str) -> int:
    with db.connect(settings) as conn:
        return outbox.backlog(conn).get(service, 0)

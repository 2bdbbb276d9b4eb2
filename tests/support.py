"""Helpers for tests against the real stack: service processes, topic readers, waiting."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition

from finsync.contract.events import AccountUpserted, Event
from finsync.runtime import clients, db, outbox
from finsync.runtime.messages import Outgoing, Record
from finsync.runtime.serde import Serde
from finsync.scenario import processes
from finsync.settings import Settings

T = TypeVar("T")

# Retries that end in a dead letter within seconds, for tests that wait for one.
FAST_RETRIES = {"FINSYNC_RETRY_BASE_SECONDS": "0.3", "FINSYNC_RETRY_BUDGET_SECONDS": "1"}


def free_port() -> int:
    """A port nothing on this host listens on now: for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], T], timeout: float = 60, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


class ServiceProcess(processes.ServiceProcess):
    """A service process whose last log lines are printed when it stops, for failing tests."""

    def stop(self, timeout: float = 60) -> int:
        tail = "\n".join(self.log.read_text().splitlines()[-15:])
        print(f"--- {self.log} (last lines) ---\n{tail}")
        return super().stop(timeout)


class TopicTail:
    """Reads what arrives on a topic after this object was made."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.consumer: Consumer = clients.consumer(settings, f"test-tail-{uuid.uuid4()}")
        # A topic created a moment ago may not have its leaders known yet.
        self.positions = eventually(lambda: self._ends(topic), 15, f"the end of {topic}")
        self.consumer.assign(self.positions)
        self.records: list[Record] = []

    def _ends(self, topic: str) -> list[TopicPartition] | None:
        metadata = self.consumer.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None or not metadata.partitions:
            return None
        try:
            return [
                TopicPartition(
                    topic,
                    p,
                    self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1],
                )
                for p in metadata.partitions
            ]
        except KafkaException:
            return None

    def poll(self, seconds: float = 1.0) -> list[Record]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(500, timeout=0.2):
                if not msg.error():
                    self.records.append(clients.to_record(msg))
        return self.records

    def close(self) -> None:
        self.consumer.close()


def commit_at_end(settings: Settings, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """Commit the group's offsets at the topics' ends, so a new app counts only what follows
    (the shared test stack holds every earlier test's events)."""
    c = Consumer({**settings.kafka_config(), "group.id": group, "enable.auto.commit": False})
    try:
        found = c.list_topics(timeout=10).topics
        ends = [
            TopicPartition(t, p, c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1])
            for t in topics
            for p in found[t].partitions
        ]
        c.commit(offsets=ends, asynchronous=False)
    finally:
        c.close()
    return {(tp.topic, tp.partition): tp.offset for tp in ends}


def publish(settings: Settings, serde: Serde, events: list[Event]) -> None:
    clients.send(clients.producer(settings, "test"), [serde.outgoing(e) for e in events])


def publish_to_partition(
    settings: Settings, serde: Serde, partition: int, events: list[Event]
) -> None:
    """Events of different keys into one partition, in order: to show one key waiting while
    the others of its partition flow."""
    producer = clients.producer(settings, "test")
    for e in events:
        producer.produce(e.TOPIC, serde.encode(e), e.key.encode(), partition=partition)
    assert producer.flush(30) == 0


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


@contextmanager
def rolled_back(settings: Settings) -> Iterator[psycopg.Connection]:
    """A connection whose writes are rolled back at the end: for tests that drive the real
    processing on the shared database and leave nothing behind."""
    with db.connect(settings) as conn:
        conn.execute("SET lock_timeout = '20s'")  # the stack is shared
        yield conn
        conn.rollback()


def unsent(settings: Settings, service: str) -> int:
    with db.connect(settings) as conn:
        return outbox.backlog(conn).get(service, 0)


def scalar(settings: Settings, sql: str, *params: object) -> object:
    """The first column of the first row the query returns, None if none."""
    with db.connect(settings) as conn:
        row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def lines_of(settings: Settings, key: str) -> dict[str, Decimal]:
    """Net debit per account of the journal with this idempotency key."""
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT l.account_code, sum(l.debit - l.credit) FROM erp.journal_lines l "
            "JOIN erp.journal_entries e USING (entry_id) WHERE e.idempotency_key = %s GROUP BY 1",
            (key,),
        ).fetchall()
    return dict(rows)


def journals(settings: Settings, idempotency_key: str) -> int:
    """Journal entries the reference ERP holds under one key, e.g. `invoice:<id>`."""
    with db.connect(settings) as conn:
        row = conn.execute(
            "SELECT count(*) FROM erp.journal_entries WHERE idempotency_key = %s",
            (idempotency_key,),
        ).fetchone()
    assert row is not None
    return int(row[0])


class Forwarder:
    """A TCP forwarder on loopback, started later than the client that needs it: a database
    that comes up after the service that uses it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.listener.close()  # nothing listens until start(): connections are refused

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def stop(self) -> None:
        self.listener.close()


def crm_account(account_id: str, version: int, name: str, **fields: object) -> AccountUpserted:
    """A CRM account of ACME-DE, as the CRM would publish it; `fields` override any field."""
    values: dict[str, object] = dict(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        source="crm",
        correlation_id=f"corr-{account_id}",
        account_id=account_id,
        name=name,
        country="DE",
        currency="EUR",
        tax_id=f"DE{uuid.uuid4().int % 10**12:012d}",
        legal_entity="ACME-DE",
        version=version,
    )
    return AccountUpserted(**{**values, **fields})  # type: ignore[arg-type]

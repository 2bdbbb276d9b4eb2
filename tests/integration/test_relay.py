"""The outbox relay: one active per service, a standby that takes over, order kept."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from finsync.contract.events import InvoicePosted
from finsync.runtime import clients, outbox
from finsync.runtime.messages import Outgoing
from finsync.runtime.relay import Relay
from finsync.runtime.serde import Serde
from finsync.scenario import documents
from finsync.settings import Settings
from tests.support import ServiceProcess, TopicTail, eventually, publish

pytestmark = pytest.mark.integration


def test_one_relay_publishes_while_another_stands_by_and_takes_over_in_order(
    settings: Settings,
) -> None:
    topic, service = f"test.relay-{uuid.uuid4().hex[:8]}", f"test-relay-{uuid.uuid4().hex[:8]}"
    admin = clients.admin(settings)  # kept alive until the topic exists
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    tail = TopicTail(settings, topic)

    def write(n: int, start: int) -> None:
        with psycopg.connect(settings.database_url) as conn:
            outbox.add(conn, service, [
                Outgoing(topic, b"k", str(i).encode()) for i in range(start, start + n)
            ])  # fmt: skip
            outbox.notify(conn, service)

    first, second = Relay(service, settings), Relay(service, settings)
    stop_first, stop_second = threading.Event(), threading.Event()
    threads = [
        threading.Thread(target=first.run, args=(stop_first,)),
        threading.Thread(target=second.run, args=(stop_second,)),
    ]
    threads[0].start()
    time.sleep(1)
    threads[1].start()
    try:
        write(50, 0)
        # A reader may see the messages before the relay has marked them sent and counted them.
        eventually(lambda: len(tail.poll(0.3)) >= 50 and first.sent == 50, 30, "the first 50")
        assert second.sent == 0  # the second only stands by

        stop_first.set()
        threads[0].join(30)
        write(50, 50)
        eventually(lambda: len(tail.poll(0.3)) >= 100 and second.sent == 50, 30, "the standby's 50")
        assert first.sent == 50  # the stopped relay sent nothing more
    finally:
        stop_first.set()
        stop_second.set()
        for t in threads:
            t.join(30)
    values = [int(r.value or b"-1") for r in tail.poll(1)]
    tail.close()
    admin.delete_topics([topic])
    assert values == list(range(100))  # each once, in commit order


def test_a_message_kafka_refuses_for_good_is_recorded_and_the_rest_is_published(
    settings: Settings,
) -> None:
    name = uuid.uuid4().hex[:8]
    topic, strict, service = f"test.relay-{name}", f"test.strict-{name}", f"test-relay-{name}"
    admin = clients.admin(settings)
    created = admin.create_topics(
        [NewTopic(topic, 1, 1), NewTopic(strict, 1, 1, config={"max.message.bytes": "1000"})]
    )
    for future in created.values():
        future.result(30)
    tail = TopicTail(settings, topic)
    messages = [
        Outgoing(topic, b"k", b"first"),
        Outgoing(topic, b"k", b"x" * 2_000_000),  # over the producer's limit: refused at once
        Outgoing(strict, b"k", os.urandom(5_000)),  # over the topic's limit even compressed
        Outgoing(topic, b"k", b"last"),
    ]
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        outbox.add(conn, service, messages)
        relay = Relay(service, settings)
        assert relay.publish_pending(conn) == 4  # no exception: the relay goes on
        assert relay.publish_pending(conn) == 0  # and sends none of them again
        rows = conn.execute(
            "SELECT topic, sent_at IS NOT NULL, error FROM finsync.outbox "
            "WHERE service = %s ORDER BY id",
            (service,),
        ).fetchall()
        assert outbox.failed(conn)[service] == 2
        assert outbox.backlog(conn).get(service, 0) == 0
    assert [(t, sent) for t, sent, _ in rows] == [
        (topic, True),
        (topic, False),
        (strict, False),
        (topic, True),
    ]
    assert "too large" in rows[1][2].lower() and "too large" in rows[2][2].lower()
    assert [r.value for r in eventually(lambda: len(tail.poll(0.5)) >= 2 and tail.records)] == [
        b"first",
        b"last",
    ]
    tail.close()
    admin.delete_topics([topic, strict])


def test_a_relay_that_dies_is_started_again_and_publishes_what_was_committed(
    settings: Settings, serde: Serde, tmp_path: Path, rng: random.Random
) -> None:
    tail = TopicTail(settings, InvoicePosted.TOPIC)
    service = ServiceProcess("invoice-poster", tmp_path).start()
    try:
        assert service.proc is not None
        [relay_pid] = [
            int(pid)
            for pid in subprocess.run(
                ["pgrep", "-P", str(service.proc.pid), "-f", "spawn_main"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
        ]
        os.kill(relay_pid, signal.SIGKILL)
        invoice = documents.invoice(rng, 1)
        publish(settings, serde, [invoice])  # committed while the relay is gone
        service.wait_log("starting it again", 30)
        posted = eventually(
            lambda: [r for r in tail.poll(0.5) if r.key_text == invoice.invoice_id],
            60,
            "erp.invoice-posted from the restarted relay",
        )
        assert len(posted) == 1
    finally:
        assert service.stop() == 0
        tail.close()

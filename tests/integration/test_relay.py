"""The outbox relay: one active per service, a standby that takes over, order kept."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from finsync.runtime import clients, outbox
from finsync.runtime.messages import Outgoing
from finsync.runtime.relay import Relay
from finsync.settings import Settings
from tests.support import TopicTail, eventually

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
        eventually(lambda: len(tail.poll(0.3)) >= 50, 30, "the first 50 messages")
        assert (first.sent, second.sent) == (50, 0)  # the second only stands by

        stop_first.set()
        threads[0].join(30)
        write(50, 50)
        eventually(lambda: len(tail.poll(0.3)) >= 100, 30, "the standby to take over")
        assert second.sent == 50
    finally:
        stop_first.set()
        stop_second.set()
        for t in threads:
            t.join(30)
    values = [int(r.value or b"-1") for r in tail.poll(1)]
    tail.close()
    admin.delete_topics([topic])
    assert values == list(range(100))  # each once, in commit order

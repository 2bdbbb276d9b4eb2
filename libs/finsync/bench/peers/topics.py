"""The Kafka side of the peers' bench: their result topic, their groups, offset ranges."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from finsync.bench.invoice_poster import Offsets
from finsync.runtime import clients
from finsync.settings import Settings

OUT_TOPIC = "bench.peer-invoice-posted"


def ensure_topic(settings: Settings, topic: str = OUT_TOPIC) -> None:
    """The peers' result topic, kept a day: only the runs of the bench read it."""
    admin = clients.admin(settings)
    if topic in admin.list_topics(timeout=10).topics:
        return
    new = NewTopic(
        topic,
        num_partitions=settings.topic_partitions,
        replication_factor=-1,
        config={"retention.ms": str(24 * 3600 * 1000)},
    )
    for future in admin.create_topics([new], operation_timeout=30).values():
        try:
            future.result()
        except KafkaException as exc:
            if "already exists" not in str(exc).lower():  # created meanwhile: fine
                raise


def high_watermarks(settings: Settings, topic: str) -> dict[int, int]:
    probe = clients.consumer(settings, f"bench-peers-probe-{uuid.uuid4()}")
    try:
        parts = probe.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts
        }
    finally:
        probe.close()


def tail(offsets: Offsets, n: int) -> Offsets:
    """The last `n` records of the range, spread over its partitions as the range is."""
    total = sum(end - first for first, end in offsets.values())
    n = min(n, total)
    share = {p: (end - first) * n // total if total else 0 for p, (first, end) in offsets.items()}
    for p in sorted(offsets, key=lambda p: offsets[p][1] - offsets[p][0], reverse=True):
        if sum(share.values()) >= n:
            break
        share[p] += 1 if share[p] < offsets[p][1] - offsets[p][0] else 0
    return {p: (end - share[p], end) for p, (_, end) in offsets.items()}


def forget_group(settings: Settings, group: str) -> None:
    """Delete a peer's group and the topics its framework made for it (faust's leader topic)."""
    admin = clients.admin(settings)
    made = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"{group}-")]
    if made:
        for future in admin.delete_topics(made, operation_timeout=30).values():
            future.result()
    deadline = time.monotonic() + 90  # a killed member stays for its session timeout
    while True:
        try:
            for future in admin.delete_consumer_groups([group], request_timeout=15).values():
                future.result()
            return
        except KafkaException as exc:
            code = exc.args[0].code() if exc.args else None
            if code == KafkaError.GROUP_ID_NOT_FOUND:
                return  # a group that never committed is not there
            if code != KafkaError.NON_EMPTY_GROUP or time.monotonic() > deadline:
                raise
            time.sleep(2)


def read(
    settings: Settings, topic: str, since: dict[int, int], until: dict[int, int] | None = None
) -> Iterator[bytes]:
    """The values on `topic` from `since` to `until` (what is there now, if not given), partition
    by partition in order. Joins no group."""
    until = high_watermarks(settings, topic) if until is None else until
    reader = clients.consumer(settings, f"bench-peers-reader-{uuid.uuid4()}")
    left = {p: end for p, end in until.items() if end > since.get(p, 0)}
    try:
        reader.assign([TopicPartition(topic, p, since.get(p, 0)) for p in left])
        quiet_since = time.monotonic()
        while left:
            # consume() waits for the whole batch or the timeout: keep the timeout short.
            batch = reader.consume(500, timeout=0.2)
            if batch:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 10:
                raise TimeoutError(f"timed out reading {topic}")
            for m in batch:
                p, offset = m.partition(), m.offset()
                if m.error() or p not in left or offset is None or offset >= left[p]:
                    continue
                if offset + 1 >= left[p]:
                    del left[p]
                yield m.value() or b""
    finally:
        reader.close()

"""Kafka clients, configured one way for the whole runtime."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from finsync.runtime.messages import Outgoing, Record
from finsync.settings import KAFKA_LOG, Settings


class AuthenticationFailed(RuntimeError):
    """Kafka refused our credentials. Retrying cannot help, so a client stops at once instead
    of reconnecting for ever: fail closed, and say which settings to check."""


def _config(settings: Settings) -> dict[str, Any]:
    """settings.kafka_config(), plus an error callback: librdkafka reports a refused login
    only there (a consumer would otherwise poll empty-handed and a producer time out)."""

    def on_error(err: KafkaError) -> None:
        if err.code() == KafkaError._AUTHENTICATION:
            raise AuthenticationFailed(
                f"Kafka authentication failed for user {settings.kafka_sasl_username!r} "
                f"({settings.kafka_sasl_mechanism or settings.kafka_security_protocol}): "
                f"{err.str()}. Check FINSYNC_KAFKA_SASL_USERNAME and FINSYNC_KAFKA_SASL_PASSWORD."
            )
        KAFKA_LOG.warning("kafka client error: %s", err)

    return {**settings.kafka_config(), "error_cb": on_error}


def producer(settings: Settings, client_id: str, **extra: object) -> Producer:
    return Producer(
        {
            **_config(settings),
            "client.id": client_id,
            "enable.idempotence": True,  # acks=all, ordered retries without duplicates
            "linger.ms": 2,
            "compression.type": "lz4",
            **extra,
        }
    )


def consumer(settings: Settings, group: str, **extra: object) -> Consumer:
    """Offsets are committed by finsync, after its database transaction, never automatically."""
    return Consumer(
        {
            **_config(settings),
            "group.id": group,
            "client.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # Shorter than Kafka's 45 s, so a killed instance's partitions move within seconds.
            # Heartbeats come from librdkafka's own thread, so a long batch does not miss them.
            "session.timeout.ms": int(settings.session_timeout_seconds * 1000),
            "heartbeat.interval.ms": max(1000, int(settings.session_timeout_seconds * 1000 / 3)),
            **extra,
        }
    )


def group_lag(settings: Settings, group: str, topics: list[str]) -> int:
    """Records on `topics` that `group` has not committed yet (all of them, if it never has)."""
    probe = Consumer({**_config(settings), "group.id": group})
    try:
        total = 0
        for topic in topics:
            partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
            committed = probe.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
            for tp in committed:
                low, high = probe.get_watermark_offsets(tp, timeout=10)
                total += high - (tp.offset if tp.offset >= 0 else low)
        return total
    finally:
        probe.close()


def read(settings: Settings, topic: str, since_ms: int | None = None) -> Iterator[Record]:
    """What is on `topic` now (from `since_ms` on, if given), partition by partition in order.
    Reads only: joins no group, commits nothing. Raises LookupError if the topic is missing."""
    reader = consumer(settings, f"finsync-reader-{uuid.uuid4()}")
    try:
        metadata = reader.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise LookupError(f"topic {topic} does not exist")
        partitions = [TopicPartition(topic, p) for p in metadata.partitions]
        if since_ms is not None:
            starts = reader.offsets_for_times(
                [TopicPartition(topic, p, since_ms) for p in metadata.partitions], timeout=10
            )
        else:
            starts = [TopicPartition(topic, p, -2) for p in metadata.partitions]  # beginning
        ends: dict[int, int] = {}
        assigned = []
        for tp, start in zip(partitions, starts, strict=True):
            low, high = reader.get_watermark_offsets(tp, timeout=10)
            first = low if start.offset < 0 and since_ms is None else start.offset
            if 0 <= first < high:
                ends[tp.partition] = high
                assigned.append(TopicPartition(topic, tp.partition, max(first, low)))
        if not assigned:
            return
        reader.assign(assigned)
        while ends:
            msg = reader.poll(5.0)
            if msg is None:
                raise TimeoutError(f"timed out reading {topic}")
            if msg.error():
                continue
            record = to_record(msg)
            yield record
            if record.offset + 1 >= ends.get(record.partition, 0):
                ends.pop(record.partition, None)
    finally:
        reader.close()


def admin(settings: Settings) -> AdminClient:
    return AdminClient(_config(settings))


def to_record(msg: Message) -> Record:
    _, ts = msg.timestamp()
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None and partition is not None and offset is not None
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    headers = [(k, v.encode() if isinstance(v, str) else v) for k, v in pairs]
    return Record(topic, partition, offset, ts, msg.key(), msg.value(), headers)


class DeliveryError(RuntimeError):
    """Kafka did not accept every message handed to send()."""


# Answers that say the message itself can never be accepted, however often it is sent.
REJECTED = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG,
        KafkaError._INVALID_ARG,
    }
)


class Delivery(NamedTuple):
    """Kafka's answer to one message: None and where it put it, or the error; `refused` when
    the producer refused it at once, so it surely was not written."""

    error: KafkaError | None
    partition: int = -1
    offset: int = -1
    refused: bool = False


def deliver(
    producer: Producer, messages: Sequence[Outgoing], timeout: float = 60
) -> list[KafkaError | None]:
    """Produce the messages and wait for Kafka's answer to each, in order: None where it was
    accepted, the error where it was not (refused at once, rejected by the broker, or no
    answer within `timeout`)."""
    return [d.error for d in deliveries(producer, messages, timeout)]


def deliveries(
    producer: Producer, messages: Sequence[Outgoing], timeout: float = 60
) -> list[Delivery]:
    """As deliver(), with the partition and offset of each message Kafka accepted."""
    sending = Sending(producer, timeout)
    sending.produce(messages)
    producer.flush(timeout)
    return sending.outcomes


# Kafka's answer to a message handed over and not answered (yet): it may have been written.
UNANSWERED = Delivery(KafkaError(KafkaError._MSG_TIMED_OUT, "no answer from Kafka"))


class Sending:
    """Messages handed to a producer one by one, with Kafka's answer to each as it comes, so a
    caller can do other work (a database round trip) meanwhile and wait() for these answers
    alone. `outcomes` holds one entry per message that may have been handed over: one
    interrupted as produce() returned counts (it may be on its way), one interrupted while
    waiting for room in the queue does not; an answer lost to an interruption is UNANSWERED."""

    def __init__(self, producer: Producer, timeout: float = 60) -> None:
        self.producer, self.timeout = producer, timeout
        self.outcomes: list[Delivery] = []

    def produce(self, messages: Iterable[Outgoing]) -> None:
        for m in messages:
            i = len(self.outcomes)
            headers: list[tuple[str, str | bytes | None]] = [(k, v) for k, v in m.headers]
            answered = self._answered(i)
            self.outcomes.append(UNANSWERED)  # from here on it may be on its way
            while True:
                try:
                    self.producer.produce(
                        m.topic, m.value, m.key, headers=headers, on_delivery=answered
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain, below
                    pass
                except KafkaException as exc:  # refused before sending, e.g. too large
                    self.outcomes[i] = Delivery(exc.args[0], refused=True)
                    break
                except Exception:  # raised by produce() itself: not handed over
                    self.outcomes.pop()
                    raise
                try:
                    self.producer.poll(0.1)
                except BaseException:  # interrupted while waiting for room: not handed over
                    self.outcomes.pop()
                    raise

    def _answered(self, i: int) -> Callable[[KafkaError | None, Message], None]:
        def record(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                self.outcomes[i] = Delivery(err)
            else:
                partition, offset = msg.partition(), msg.offset()
                self.outcomes[i] = Delivery(
                    None, -1 if partition is None else partition, -1 if offset is None else offset
                )

        return record

    @property
    def waiting(self) -> int:
        """Messages handed over and not answered (yet)."""
        return sum(1 for o in self.outcomes if o is UNANSWERED)

    def wait(self) -> list[Delivery]:
        """The answer to every message handed over, in order, waiting at most the timeout for
        them (not for other messages of the producer); one unanswered by then, or whose answer
        an interruption lost, is UNANSWERED. The wait ends early once the producer holds
        nothing more: no answer is left to come."""
        deadline = time.monotonic() + self.timeout
        while self.waiting > 0 and len(self.producer) > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.producer.poll(min(left, 0.1))
        return self.outcomes


def send(producer: Producer, messages: Iterable[Outgoing], timeout: float = 60) -> int:
    """Produce the messages and wait until Kafka has accepted every one; returns how many."""
    outcomes = deliver(producer, list(messages), timeout)
    errors = [e for e in outcomes if e is not None]
    if errors:
        raise DeliveryError(
            f"Kafka did not accept {len(errors)} of {len(outcomes)} messages: {errors[0]}"
        )
    return len(outcomes)

"""Kafka's answers to messages handed to a producer (clients.Sending): which messages count as
handed over when the hand-over is interrupted, and which answers a replay may act on. The
producer is a stand-in that answers on poll(), as librdkafka does."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, KafkaException

from finsync.ops.replay_sending import UNKNOWN, halts, outcome
from finsync.runtime.clients import UNANSWERED, Delivery, Sending
from finsync.runtime.messages import Outgoing


class Interrupt(BaseException):
    """Ctrl-C: KeyboardInterrupt is a BaseException, raised wherever the signal lands."""


class Message:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


Answer = Callable[[KafkaError | None, Message], None]


class Producer:
    """Takes messages into a queue and answers them on poll(), in order. `full` hand-overs are
    refused for want of room first; `on_poll` runs at the start of each poll."""

    def __init__(self, full: int = 0, answers: bool = True) -> None:
        self.queue: list[Answer] = []
        self.full, self.answers, self.written = full, answers, 0
        self.on_poll: Callable[[], None] = lambda: None

    def produce(
        self, topic: str, value: bytes, key: bytes, *, headers: list, on_delivery: Answer
    ) -> None:
        if value == b"too large":
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        if self.full:
            self.full -= 1
            raise BufferError("queue full")
        self.queue.append(on_delivery)

    def poll(self, timeout: float) -> int:
        self.on_poll()
        if not self.answers:
            time.sleep(timeout)
            return 0
        served = 0
        while self.queue:
            answer = self.queue.pop(0)
            self.written += 1
            answer(None, Message(self.written))
            served += 1
        return served

    def __len__(self) -> int:
        return len(self.queue)


def ctrl_c(*_: object) -> None:
    raise Interrupt


def messages(*values: bytes) -> list[Outgoing]:
    return [Outgoing("t", b"k", v, []) for v in values]


def test_answers_come_in_order_and_the_wait_ends_with_the_last() -> None:
    producer = Producer(full=2)  # twice no room: the message is handed over once it drains
    sending = Sending(producer, timeout=30)  # type: ignore[arg-type]
    sending.produce(messages(b"a", b"b", b"too large"))
    began = time.monotonic()
    answers = sending.wait()
    assert time.monotonic() - began < 1
    assert answers[:2] == [Delivery(None, 0, 1), Delivery(None, 0, 2)]
    assert answers[2].error is not None
    assert answers[2].error.code() == KafkaError.MSG_SIZE_TOO_LARGE
    assert answers[2].refused  # by the producer at once: surely not written
    assert sending.waiting == 0


def test_interrupted_while_waiting_for_room_the_message_was_not_handed_over() -> None:
    producer = Producer(full=1)
    producer.on_poll = ctrl_c  # pressed while it waits for room
    sending = Sending(producer)  # type: ignore[arg-type]
    with pytest.raises(Interrupt):
        sending.produce(messages(b"a"))
    assert sending.outcomes == [] and sending.waiting == 0


def test_interrupted_as_produce_returns_the_message_counts_and_its_answer_is_awaited() -> None:
    class Lands(Producer):  # the signal lands just after librdkafka took the message
        def produce(self, *args: object, **kwargs: object) -> None:
            super().produce(*args, **kwargs)  # type: ignore[arg-type]
            raise Interrupt

    sending = Sending(Lands())  # type: ignore[arg-type]
    with pytest.raises(Interrupt):
        sending.produce(messages(b"a", b"b"))
    assert sending.wait() == [Delivery(None, 0, 1)]


def test_an_answer_lost_to_an_interruption_stays_unanswered_and_the_wait_does_not_hang() -> None:
    producer = Producer()
    sending = Sending(producer, timeout=30)  # type: ignore[arg-type]
    sending.produce(messages(b"a", b"b"))
    _, second = producer.queue

    producer.queue = [ctrl_c, second]  # pressed in the first answer, before it is recorded
    with pytest.raises(Interrupt):
        sending.wait()
    began = time.monotonic()
    answers = sending.wait()  # what an interrupted replay does before it stops
    assert time.monotonic() - began < 1  # nothing is left in the producer to answer
    assert answers == [UNANSWERED, Delivery(None, 0, 2)]


def test_no_answer_within_the_timeout_is_unanswered() -> None:
    sending = Sending(Producer(answers=False), timeout=0.3)  # type: ignore[arg-type]
    sending.produce(messages(b"a"))
    assert sending.wait() == [UNANSWERED]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Delivery(None, 0, 7), "replayed"),
        (Delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large")), "failed: too large"),
        (Delivery(KafkaError(KafkaError._FATAL, "fatal"), refused=True), "failed: fatal"),
        # Could follow an earlier attempt that timed out after the broker wrote it.
        (Delivery(KafkaError(KafkaError._UNKNOWN_TOPIC, "no topic")), UNKNOWN.format("no topic")),
        (UNANSWERED, UNKNOWN.format("no answer from Kafka")),
        (Delivery(KafkaError(KafkaError._MSG_TIMED_OUT, "timed out")), UNKNOWN.format("timed out")),
        (Delivery(KafkaError(KafkaError._TRANSPORT, "broker gone")), UNKNOWN.format("broker gone")),
    ],
)
def test_a_letter_goes_back_only_on_an_answer_that_says_it_was_not_written(
    answer: Delivery, expected: str
) -> None:
    assert outcome(answer) == expected


@pytest.mark.parametrize(
    ("answer", "stops"),
    [
        (Delivery(None, 0, 7), False),
        (Delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large")), False),  # that one
        (Delivery(KafkaError(KafkaError._UNKNOWN_TOPIC, "no topic"), refused=True), False),
        (Delivery(KafkaError(KafkaError._FATAL, "fatal"), refused=True), True),
        (Delivery(KafkaError(KafkaError._FATAL, "fatal")), True),
        (UNANSWERED, True),  # Kafka may be unreachable: every later letter would end unknown
        (Delivery(KafkaError(KafkaError._TRANSPORT, "broker gone")), True),
    ],
)
def test_a_replay_claims_no_more_after_an_unknown_outcome_or_a_fatal_error(
    answer: Delivery, stops: bool
) -> None:
    assert halts(answer) is stops

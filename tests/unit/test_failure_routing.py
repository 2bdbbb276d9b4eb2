"""Where failed records go, and what they carry with them."""

from finsync.errors import DependencyNotReady, InvalidEvent
from finsync.runtime import headers as h
from finsync.runtime.failures import (
    Origin,
    RetryPolicy,
    dead_letter,
    not_before_ms,
    retry,
    retry_due,
)
from finsync.runtime.messages import Record

POLICY = RetryPolicy(budget_seconds=5, base_seconds=2, max_seconds=60)
NOW = 1_800_000_000_000


def original():
    return Record(
        "billing.invoice-issued",
        2,
        41,
        1_700_000_000_000,
        b"INV-1",
        b"\x00\x00\x00\x00\x01avro",
        [("traceparent", b"00-abc-def-01"), ("publisher", b"\xff\x00raw")],
    )


def route(record, error, now=NOW, policy=POLICY):
    due = retry_due(record, error, policy, now)
    if due is not None:
        return retry(record, "invoice-poster", due, now, [])
    return dead_letter(
        record, error, service="invoice-poster", stage="TASK_PUT", now_ms=now, trace_id="t" * 32
    )


def as_record(out, offset=0):
    return Record(out.topic, 0, offset, NOW, out.key, out.value, out.headers)


def test_a_business_invalid_event_is_dead_lettered_at_once_with_the_reason():
    out = route(original(), InvalidEvent("invoice INV-1 has no lines"))
    assert out.topic == "invoice-poster.dlq"
    letter = as_record(out)
    assert letter.header_text(h.ERR_EXCEPTION_MESSAGE) == "invoice INV-1 has no lines"
    assert letter.header_text(h.ERR_EXCEPTION_CLASS) == "finsync.errors.InvalidEvent"
    assert letter.header_text(h.ERR_CLASS) == "permanent"
    assert letter.header_text(h.ERR_TOPIC) == "billing.invoice-issued"
    assert letter.header_text(h.ERR_PARTITION) == "2"
    assert letter.header_text(h.ERR_OFFSET) == "41"
    assert letter.header_text(h.ERR_ATTEMPTS) == "1"
    assert letter.header_text(h.ERR_TRACE_ID) == "t" * 32


def test_a_dead_letter_keeps_key_value_and_publisher_headers_byte_for_byte():
    rec = original()
    out = route(rec, InvalidEvent("bad"))
    assert (out.key, out.value) == (rec.key, rec.value)
    assert [x for x in out.headers if not h.is_runtime(x[0])] == rec.headers


def test_a_transient_failure_is_retried_with_backoff_until_its_time_budget_is_spent():
    rec = original()
    first = route(rec, DependencyNotReady("invoice not posted"))
    assert first.topic == "invoice-poster.retry"
    assert not_before_ms(as_record(first)) == NOW + 2000
    second = route(as_record(first, 7), DependencyNotReady("invoice not posted"), now=NOW + 2000)
    assert second.topic == "invoice-poster.retry"
    assert not_before_ms(as_record(second)) == NOW + 2000 + 4000
    third = route(as_record(second, 9), DependencyNotReady("invoice not posted"), now=NOW + 6000)
    assert third.topic == "invoice-poster.dlq"
    letter = as_record(third)
    assert letter.header_text(h.ERR_CLASS) == "retries-exhausted"
    assert letter.header_text(h.ERR_ATTEMPTS) == "3"
    # The dead letter points at where the event first arrived, not at the retry topic.
    assert letter.header_text(h.ERR_TOPIC) == "billing.invoice-issued"
    assert letter.header_text(h.ERR_OFFSET) == "41"
    assert letter.header_text(h.ERR_FIRST_FAILURE).startswith("2027-01-15")
    assert letter.header_text(h.ERR_WAITED) == "6.000"  # how long it waited, in seconds
    assert [x for x in third.headers if not h.is_runtime(x[0])] == rec.headers


def test_origin_of_a_first_delivery_is_the_record_itself():
    o = Origin.of(original())
    assert (o.topic, o.partition, o.offset, o.attempts) == ("billing.invoice-issued", 2, 41, 0)


def test_backoff_is_capped():
    assert RetryPolicy(10, 1, 30).delay_seconds(8) == 30


def test_a_replayed_dead_letter_is_a_retry_due_now_with_its_origin_and_fresh_attempts():
    from finsync.runtime.dlq import replay_message

    rec = original()
    origin = Origin("billing.invoice-issued", 2, 41, 1_700_000_000_000, 3, NOW - 5000)
    out = replay_message("invoice-poster", rec.key, rec.value, rec.headers, origin, "r-1", 42)
    assert out.topic == "invoice-poster.retry"
    replayed = as_record(out)
    assert not_before_ms(replayed) == 0
    o = Origin.of(replayed)
    assert (o.topic, o.partition, o.offset, o.attempts) == ("billing.invoice-issued", 2, 41, 0)
    assert o.first_failure_ms is None
    assert o.timestamp_ms == 1_700_000_000_000
    assert replayed.header_text(h.REPLAY_ID) == "r-1"
    assert replayed.header_text(h.REPLAY_DEAD_LETTER) == "42"
    assert [x for x in out.headers if not h.is_runtime(x[0])] == original().headers


def test_a_replayed_record_keeps_its_replay_headers_through_retries_and_its_next_dead_letter():
    from finsync.runtime.dlq import replay_message

    rec = original()
    origin = Origin.of(rec)
    out = replay_message("invoice-poster", rec.key, rec.value, rec.headers, origin, "r-1", 42)
    again = as_record(route(as_record(out), DependencyNotReady("not yet")))
    assert again.topic == "invoice-poster.retry"
    assert again.header_text(h.REPLAY_DEAD_LETTER) == "42"
    letter = as_record(route(again, InvalidEvent("bad")))
    assert letter.topic == "invoice-poster.dlq"
    assert letter.header_text(h.REPLAY_ID) == "r-1"
    assert letter.header_text(h.REPLAY_DEAD_LETTER) == "42"
    assert [k for k, _ in letter.headers].count(h.REPLAY_DEAD_LETTER) == 1


def test_a_replay_message_is_the_retry_as_retry_makes_of_the_letter():
    from dataclasses import replace

    from finsync.runtime.dlq import replay_message
    from finsync.runtime.failures import as_retry

    stored = [
        *original().headers,
        (h.REPLAY_ID, b"r-0"),  # a letter that was itself a replay that failed again
        (h.ERR_ATTEMPTS, b"3"),
        ("late", None),
    ]
    origin = Origin("billing.invoice-issued", 2, 41, 1_700_000_000_000, 3, NOW - 5000)
    made = replay_message("invoice-poster", b"INV-1", b"v", stored, origin, "r-1", 42)
    record = Record("invoice-poster.dlq", 0, 0, origin.timestamp_ms, b"INV-1", b"v", stored)
    extra = [(h.REPLAY_ID, b"r-1"), (h.REPLAY_DEAD_LETTER, b"42")]
    fresh = replace(origin, attempts=0, first_failure_ms=None)
    assert made == as_retry(record, "invoice-poster", fresh, 0, 0, None, extra=extra)


def test_a_dead_letter_names_the_event_when_the_record_decoded():
    out = dead_letter(
        original(), InvalidEvent("bad"), service="invoice-poster", stage="TASK_PUT",
        now_ms=NOW, trace_id=None, event_id="e-1",
    )  # fmt: skip
    assert as_record(out).header_text(h.ERR_EVENT_ID) == "e-1"
    assert as_record(route(original(), InvalidEvent("bad"))).header(h.ERR_EVENT_ID) is None


def test_a_dependency_down_for_an_hour_costs_no_dead_letter_under_the_default_budget():
    day = RetryPolicy(budget_seconds=24 * 3600, base_seconds=1, max_seconds=300)
    record, now = original(), NOW
    for _ in range(40):  # capped at 5 minutes apart: 40 tries take well over an hour
        out = route(record, DependencyNotReady("invoice not posted"), now, day)
        assert out.topic == "invoice-poster.retry"
        now = not_before_ms(as_record(out))
        record = as_record(out)
    assert now - NOW > 3600 * 1000
    late = route(record, DependencyNotReady("x"), NOW + 24 * 3600 * 1000, day)
    assert late.topic == "invoice-poster.dlq"


def test_a_dead_letter_reason_is_bounded_so_the_letter_stays_under_kafkas_limit():
    out = route(original(), InvalidEvent("x" * 100_000))
    assert len(as_record(out).header_text(h.ERR_EXCEPTION_MESSAGE)) == 2000

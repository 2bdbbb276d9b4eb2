"""The dead-letter index's pure parts: what a row holds, how a query filters, what the loop
guard refuses, how a value is shown."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from finsync.errors import DependencyNotReady, InvalidEvent
from finsync.ops import payload
from finsync.ops.dead_letters import Letter, Query, where
from finsync.ops.replay import chunk_size, refusal
from finsync.runtime import headers as h
from finsync.runtime.dead_letter_index import Settled, row_of
from finsync.runtime.failures import dead_letter, retry
from finsync.runtime.messages import Record

NOW = 1_800_000_000_000


def original(key: bytes = b"INV-1") -> Record:
    return Record(
        "billing.invoice-issued",
        2,
        41,
        1_700_000_000_000,
        key,
        b"\x00\x00\x00\x00\x01avro",
        [("traceparent", b"00-abc-def-01"), ("publisher", b"\xff\x00raw")],
    )


def test_a_row_holds_what_the_dead_letter_headers_say_and_the_publisher_headers_alone():
    out = dead_letter(
        original(),
        InvalidEvent("invoice INV-1 has no lines"),
        service="invoice-poster",
        stage="TASK_PUT",
        now_ms=NOW,
        trace_id="t" * 32,
        event_id="9f0c",
    )
    row = row_of("invoice-poster", out.topic, out.key, out.value, out.headers)
    assert (row.service, row.dlq_topic, row.message_key) == (
        "invoice-poster",
        "invoice-poster.dlq",
        "INV-1",
    )
    assert (row.source_topic, row.source_partition, row.source_offset) == (
        "billing.invoice-issued",
        2,
        41,
    )
    assert row.source_timestamp == datetime.fromtimestamp(1_700_000_000, UTC)
    assert (row.stage, row.error_class, row.category) == ("TASK_PUT", "InvalidEvent", "permanent")
    assert row.reason == "invoice INV-1 has no lines"
    assert "InvalidEvent" in row.stack
    assert (row.attempts, row.trace_id, row.event_id) == (1, "t" * 32, "9f0c")
    assert row.failed_at == datetime.fromtimestamp(NOW / 1000, UTC)
    assert row.headers == original().headers
    assert row.value == original().value
    assert row.replay_of is None


def test_a_retries_exhausted_letter_counts_its_attempts_and_is_no_replay():
    first = retry(original(), "invoice-poster", NOW + 1000, NOW, [])
    again = Record(first.topic, 0, 7, NOW, first.key, first.value, first.headers)
    out = dead_letter(
        again, DependencyNotReady("no"), service="invoice-poster", stage="TASK_PUT",
        now_ms=NOW + 90_000, trace_id=None,
    )  # fmt: skip
    row = row_of("invoice-poster", out.topic, out.key, out.value, out.headers)
    assert (row.category, row.attempts, row.trace_id, row.event_id) == (
        "retries-exhausted",
        2,
        None,
        None,
    )
    assert row.source_offset == 41  # where it was first consumed, not the retry topic


def test_a_failed_replay_links_the_letter_it_replayed():
    replayed = Record(
        "invoice-poster.retry", 0, 3, NOW, b"K", b"v",
        [(h.REPLAY_ID, b"r-1"), (h.REPLAY_DEAD_LETTER, b"42")],
    )  # fmt: skip
    out = dead_letter(
        replayed, InvalidEvent("bad"), service="invoice-poster", stage="TASK_PUT",
        now_ms=NOW, trace_id=None,
    )  # fmt: skip
    row = row_of("invoice-poster", out.topic, out.key, out.value, out.headers)
    assert row.replay_of == 42
    assert row.headers == []  # the replay's own headers are not the publisher's


def test_a_key_or_reason_with_a_nul_still_indexes():
    out = dead_letter(
        original(b"INV\x00X"), InvalidEvent("id INV\x00X"), service="invoice-poster",
        stage="TASK_PUT", now_ms=NOW, trace_id=None,
    )  # fmt: skip
    row = row_of("invoice-poster", out.topic, out.key, out.value, out.headers)
    assert row.message_key == "INV\ufffdX"
    assert "\x00" not in row.reason
    assert row.key == b"INV\x00X"  # the bytes replayed stay the original ones


def test_a_letter_without_finsync_headers_indexes_with_what_the_topic_says():
    row = row_of("invoice-poster", "invoice-poster.dlq", None, b"x", [("a", b"b")], NOW)
    assert (row.source_topic, row.source_partition, row.error_class, row.attempts) == (
        "",
        -1,
        "",
        0,
    )
    assert row.failed_at == datetime.fromtimestamp(NOW / 1000, UTC)
    assert row.headers == [("a", b"b")]


def test_only_replayed_records_on_the_retry_topic_settle_a_letter():
    settled = Settled("invoice-poster")
    replay = [(h.REPLAY_ID, b"r-9"), (h.REPLAY_DEAD_LETTER, b"7")]
    settled.note(Record("billing.invoice-issued", 0, 1, 0, b"K", b"v", replay), "processed")
    settled.note(Record("invoice-poster.retry", 0, 1, 0, b"K", b"v", []), "processed")
    settled.note(Record("invoice-poster.retry", 0, 2, 0, b"K", b"v", replay[:1]), "processed")
    assert not settled._notes
    settled.note(Record("invoice-poster.retry", 0, 3, 0, b"K", b"v", replay), "processed")
    assert settled._notes == {7: ("took effect after replay r-9", "r-9")}


def test_the_error_filter_is_a_category_or_a_class_in_any_case():
    assert where(Query(error="Retries-Exhausted")) == ("category = %s", ["retries-exhausted"])
    assert where(Query(error="invalidevent")) == ("lower(error_class) = %s", ["invalidevent"])
    assert where(Query()) == ("TRUE", [])
    since = datetime(2026, 11, 1, tzinfo=UTC)
    condition, params = where(Query(service="invoice-poster", key="K", since=since, status="open"))
    assert condition == (
        "service = %s AND md5(message_key) = md5(%s) AND message_key = %s "
        "AND failed_at >= %s AND NOT resolved AND status = %s"
    )
    assert params == ["invoice-poster", "K", "K", since, "open"]
    assert where(Query(status="resolved")) == ("resolved", [])
    with pytest.raises(ValueError, match="none of open, replayed, resolved"):
        where(Query(status="closed"))


def letter(status: str = "open", replays: int = 0) -> Letter:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    return Letter(
        1, "invoice-poster", "invoice-poster.dlq", 0, 5, "K", None, "billing.invoice-issued",
        0, 3, "TASK_PUT", "InvalidEvent", "permanent", "bad", 1, None, at, status, None, None,
        None, replays, at,
    )  # fmt: skip


def test_the_loop_guard_refuses_content_that_failed_again_too_often_unless_forced():
    assert refusal(letter(replays=2), 3, force=False) is None
    why = refusal(letter(replays=3), 3, force=False)
    assert why is not None and "failed again 3 time(s)" in why and "FINSYNC_REPLAY_MAX=3" in why
    assert refusal(letter(replays=3), 3, force=True) is None
    assert "resolved already" in (refusal(letter("resolved"), 3, force=False) or "")
    assert "replayed already" in (refusal(letter("replayed"), 3, force=False) or "")
    assert refusal(letter("replayed"), 3, force=True) is None


def test_a_replay_sends_about_a_seconds_worth_at_a_time():
    assert chunk_size(50) == 50
    assert chunk_size(0.5) == 1
    assert chunk_size(0) == chunk_size(100_000) == 500


def test_a_value_that_is_not_confluent_avro_says_why():
    assert payload.framing_note(None) == "no value (an empty message)"
    assert "first byte is 0x6e" in payload.framing_note(b"not avro")
    assert "too short" in payload.framing_note(b"\x00\x00\x01")
    assert payload.framing_note(b"\x00\x00\x00\x00\x07\x02") == ""
    assert payload.schema_id_of(b"\x00\x00\x00\x01\x00\x02") == 256
    assert payload.schema_id_of(b"not avro") is None


def test_decoded_values_become_json_with_exact_decimals():
    value = {
        "total": Decimal("10.50"),
        "issued_on": datetime(2026, 1, 2, tzinfo=UTC).date(),
        "at": datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        "raw": b"\x01\x02",
        "lines": [{"amount": Decimal("1.5")}],
    }
    assert payload.jsonable(value) == {
        "total": "10.50",
        "issued_on": "2026-01-02",
        "at": "2026-01-02T03:04:00+00:00",
        "raw": "AQI=",
        "lines": [{"amount": "1.5"}],
    }


def test_a_record_timestamp_no_datetime_holds_still_indexes():
    record = Record("billing.invoice-issued", 0, 1, 10**15, b"INV-1", b"x", [])  # year 30000+
    out = dead_letter(
        record, InvalidEvent("bad"), service="invoice-poster", stage="TASK_PUT", now_ms=NOW,
        trace_id=None,
    )  # fmt: skip
    row = row_of("invoice-poster", out.topic, out.key, out.value, out.headers, 10**15)
    assert row.source_timestamp is None
    assert row.failed_at == datetime.fromtimestamp(NOW / 1000, UTC)

"""The console's pure parts: the dead-letter chart, display filters, where a sign-in may lead,
the queue's filters, and the AsyncAPI view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import HTTPException

from finsync.console import asyncapi_view, chart, web
from finsync.console.filters import Filters, parse_time

START = datetime(2026, 11, 27, 0, tzinfo=UTC)


def test_the_chart_stacks_classes_per_hour_on_a_round_axis() -> None:
    rows = [
        (START, "invoice-poster", "InvalidEvent", 3),
        (START, "account-sync", "InvalidEvent", 2),
        (START + timedelta(hours=2), "invoice-poster", "UnknownSchema", 7),
        (START - timedelta(hours=1), "invoice-poster", "InvalidEvent", 99),  # before the window
    ]
    c = chart.layout(rows, START, buckets=4)
    assert [b.total for b in c.bars] == [5, 0, 7, 0]
    assert c.top == 10 and c.total == 12
    assert [(name, n) for _, name, n in c.legend] == [("UnknownSchema", 7), ("InvalidEvent", 5)]
    [segment] = c.bars[0].segments
    assert segment.height == pytest.approx(c.plot_height / 2)  # 5 of 10
    assert segment.y + segment.height == pytest.approx(c.plot_height)
    assert "5 InvalidEvent" in segment.title


def test_classes_past_the_palette_are_drawn_as_other() -> None:
    rows = [(START, "s", f"E{i}", 10 - i) for i in range(8)]
    c = chart.layout(rows, START, buckets=1)
    names = [name for _, name, _ in c.legend]
    assert names == ["E0", "E1", "E2", "E3", "E4", "other"]
    assert c.legend[-1][2] == 5 + 4 + 3  # E5, E6, E7
    assert len(c.bars[0].segments) == chart.COLOURS


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (4000, 5000)]
)
def test_axis_maximum_is_round(value: int, top: int) -> None:
    assert chart._nice(value) == top


def test_control_characters_are_shown_and_long_values_clipped() -> None:
    assert web.printable("a\x00b\x1bc\x7f\n") == "a␀b␛c␡\n"
    assert web.clip("x" * 10, 4) == "xxxx… (6 more characters)"
    assert web.clip(None) == ""
    assert web.when(None) == "—"


@pytest.mark.parametrize(
    ("target", "lands"),
    [
        ("/exceptions?key=A", "/exceptions?key=A"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_a_sign_in_only_leads_to_a_page_of_the_console(target: str | None, lands: str) -> None:
    assert web.safe_next(target) == lands


def test_filters_round_trip_as_url_parameters_and_become_a_query() -> None:
    f = Filters.of({"service": " invoice-poster ", "error": "InvalidEvent", "since": "2026-11-27"})
    assert f.params() == {
        "service": "invoice-poster",
        "error": "InvalidEvent",
        "since": "2026-11-27",
    }
    assert f.params(status="open", error="") == {
        "service": "invoice-poster",
        "since": "2026-11-27",
        "status": "open",
    }
    q = f.query()
    assert q.service == "invoice-poster" and q.since == START and q.status is None
    with pytest.raises(HTTPException):
        Filters(status="closed").query()


def test_times_without_an_offset_are_utc_and_nonsense_is_a_clear_400() -> None:
    assert parse_time("2026-11-27T14:00", "since") == START + timedelta(hours=14)
    assert parse_time("2026-11-27T14:00+01:00", "since") == START + timedelta(hours=13)
    assert parse_time("  ", "since") is None
    with pytest.raises(HTTPException) as refused:
        parse_time("yesterday", "until")
    assert refused.value.status_code == 400 and "until" in str(refused.value.detail)


DOC = {
    "info": {"title": "finsync", "version": "1"},
    "servers": {"kafka": {"host": "localhost:9092", "protocol": "kafka"}},
    "channels": {
        "erp.invoice-posted": {
            "address": "erp.invoice-posted",
            "tags": [{"name": "event"}],
            "bindings": {"kafka": {"partitions": 3, "topicConfiguration": {"retention.ms": -1}}},
            "messages": {"InvoicePosted": {"$ref": "#/components/messages/InvoicePosted"}},
        }
    },
    "operations": {
        "invoice-poster.send.erp.invoice-posted": {
            "action": "send",
            "channel": {"$ref": "#/channels/erp.invoice-posted"},
            "summary": "posts",
        }
    },
    "components": {
        "schemas": {
            "headers.event": {"properties": {"traceparent": {"description": "W3C"}}},
            "erp.invoice-posted": {
                "schema": {
                    "type": "record",
                    "name": "InvoicePosted",
                    "namespace": "finsync.events",
                    "fields": [
                        {"name": "invoice_id", "type": "string", "doc": "the invoice"},
                        {
                            "name": "journal_lines",
                            "type": {
                                "type": "array",
                                "items": {
                                    "type": "record",
                                    "name": "Line",
                                    "fields": [
                                        {
                                            "name": "debit",
                                            "type": {
                                                "type": "bytes",
                                                "logicalType": "decimal",
                                                "precision": 18,
                                                "scale": 4,
                                            },
                                        },
                                        {"name": "memo", "type": ["null", "string"]},
                                    ],
                                },
                            },
                        },
                    ],
                }
            },
        },
        "messages": {
            "InvoicePosted": {
                "title": "InvoicePosted",
                "headers": {"$ref": "#/components/schemas/headers.event"},
                "payload": {"$ref": "#/components/schemas/erp.invoice-posted"},
                "bindings": {"kafka": {"key": {"description": "the invoice id"}}},
            }
        },
    },
}


def test_the_asyncapi_view_resolves_references_and_flattens_avro_records() -> None:
    v = asyncapi_view.view(DOC)
    [channel] = v.of_kind("event")
    assert channel.retention == "forever" and channel.partitions == "3"
    assert [(o.action, o.summary) for o in channel.operations] == [("send", "posts")]
    [message] = channel.messages
    assert message.key == "the invoice id"
    assert message.headers == [("traceparent", "W3C")]
    assert message.payload_name == "finsync.events.InvoicePosted"
    assert [(f.path, f.type) for f in message.fields] == [
        ("invoice_id", "string"),
        ("journal_lines", "array<Line>"),
        ("journal_lines[].debit", "decimal(18,4)"),
        ("journal_lines[].memo", "null | string"),
    ]

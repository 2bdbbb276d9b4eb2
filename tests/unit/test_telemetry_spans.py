"""Spans follow OpenTelemetry's messaging conventions and continue the publisher's trace."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from finsync.runtime import telemetry
from finsync.runtime.messages import Outgoing, Record

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01".encode()


def _tracer() -> tuple[InMemorySpanExporter, Tracer]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider.get_tracer("finsync")


def test_a_record_is_processed_in_a_consumer_span_of_the_publishers_trace() -> None:
    exporter, tracer = _tracer()
    record = Record(
        "billing.invoice-issued", 2, 41, 0, b"INV-1", b"avro", [("traceparent", TRACEPARENT)]
    )
    with telemetry.process_span(record, "invoice-poster", "e-1", using=tracer):
        published = dict(telemetry.inject())  # what the handler's events carry on
    [span] = exporter.get_finished_spans()
    assert span.name == "process billing.invoice-issued"
    assert span.kind == SpanKind.CONSUMER
    assert format(span.context.trace_id, "032x") == TRACE
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT
    assert dict(span.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": "billing.invoice-issued",
        "messaging.destination.partition.id": "2",
        "messaging.kafka.offset": 41,
        "messaging.consumer.group.name": "invoice-poster",
        "messaging.message.id": "e-1",
    }
    _, trace_id, span_id, _ = published["traceparent"].decode().split("-")
    assert (trace_id, span_id) == (TRACE, format(span.context.span_id, "016x"))


def test_a_record_without_trace_context_starts_a_trace_of_its_own() -> None:
    exporter, tracer = _tracer()
    record = Record("invoice-poster.retry", 0, 7, 0, b"INV-2", b"avro", [])
    with telemetry.process_span(record, "invoice-poster", None, using=tracer):
        pass
    [span] = exporter.get_finished_spans()
    assert span.name == "process invoice-poster.retry"
    assert span.parent is None
    assert "messaging.message.id" not in (span.attributes or {})


def test_each_message_the_relay_sends_is_a_producer_span_below_the_one_that_wrote_it() -> None:
    exporter, tracer = _tracer()
    messages = [
        Outgoing("erp.invoice-posted", b"INV-1", b"avro", [("traceparent", TRACEPARENT)]),
        Outgoing("invoice-poster.dlq", b"INV-2", b"avro", []),
    ]
    spans = telemetry.send_spans(messages, using=tracer)
    assert exporter.get_finished_spans() == ()  # open until Kafka answers
    telemetry.end_send_spans(spans, [None, "MSG_SIZE_TOO_LARGE"])
    sent, refused = exporter.get_finished_spans()
    assert (sent.name, sent.kind) == ("send erp.invoice-posted", SpanKind.PRODUCER)
    assert format(sent.context.trace_id, "032x") == TRACE
    assert sent.parent is not None and format(sent.parent.span_id, "016x") == PARENT
    assert sent.attributes is not None and sent.attributes["messaging.operation.name"] == "send"
    assert sent.status.status_code == StatusCode.UNSET
    assert refused.name == "send invoice-poster.dlq" and refused.parent is None
    assert refused.status.status_code == StatusCode.ERROR
    assert refused.attributes is not None
    assert refused.attributes["error.type"] == "MSG_SIZE_TOO_LARGE"


def test_the_relay_makes_no_send_spans_where_no_span_is_exported() -> None:
    assert not telemetry._exporting_spans  # no FINSYNC_OTEL_EXPORTER in the tests
    spans = telemetry.send_spans([Outgoing("erp.invoice-posted", b"k", b"v", [])])
    assert spans == []
    telemetry.end_send_spans(spans, [None])  # Kafka's answers, with nothing to end


def test_where_spans_are_not_exported_the_trace_still_goes_on_through_the_handler() -> None:
    assert not telemetry._exporting_spans  # unit tests export no spans
    for flags in ("01", "00"):
        parent = f"00-{TRACE}-{PARENT}-{flags}".encode()
        record = Record(
            "billing.invoice-issued", 2, 41, 0, b"INV-1", b"avro", [("traceparent", parent)]
        )
        with telemetry.process_span(record, "invoice-poster", "e-1"):
            published = dict(telemetry.inject())
            logged = telemetry.current_trace_id()
        _, trace_id, span_id, sampled = published["traceparent"].decode().split("-")
        assert (trace_id, sampled, logged) == (TRACE, flags, TRACE)
        assert span_id != PARENT and int(span_id, 16) != 0  # a span of its own below the parent
    assert telemetry.inject() == []  # and none once the record is done


def test_where_spans_are_not_exported_a_record_without_context_starts_a_sampled_trace() -> None:
    record = Record("invoice-poster.retry", 0, 7, 0, b"INV-2", b"avro", [])
    seen = set()
    for _ in range(2):
        with telemetry.process_span(record, "invoice-poster", None):
            _, trace_id, span_id, sampled = (
                dict(telemetry.inject())["traceparent"].decode().split("-")
            )
        assert sampled == "03" and int(trace_id, 16) and int(span_id, 16)
        seen.add(trace_id)
    assert len(seen) == 2  # one trace per record


def test_where_spans_are_not_exported_the_flags_are_those_the_sdk_would_give() -> None:
    # Sampled and random-id bits as the SDK's default sampler sets them; reserved bits zeroed.
    _, tracer = _tracer()
    for flags in (None, "00", "01", "02", "03", "ff", "fc"):
        carried = (
            [] if flags is None else [("traceparent", f"00-{TRACE}-{PARENT}-{flags}".encode())]
        )
        record = Record("billing.invoice-issued", 2, 41, 0, b"INV-1", b"avro", carried)
        given = []
        for using in (tracer, None):
            with telemetry.process_span(record, "invoice-poster", "e-1", using=using):
                given.append(dict(telemetry.inject())["traceparent"].decode().split("-")[3])
        assert given[1] == given[0], flags

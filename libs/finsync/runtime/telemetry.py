"""JSON logs and W3C trace context carried in Kafka headers.

A consumed record's `traceparent` becomes the parent of the span that handles it, and every
message the handler publishes carries that span's context on, so one trace runs from the
publisher through every service.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from finsync.runtime.messages import Headers

_propagator = TraceContextTextMapPropagator()
tracer = trace.get_tracer("finsync")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra` fields (event_id, trace_id, ...) become keys."""

    _skip = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            out["trace_id"] = format(span.trace_id, "032x")
        out.update({k: v for k, v in vars(record).items() if k not in self._skip})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def json_logs(level: str = "INFO", file: Path | None = None) -> None:
    """Every log line as JSON, librdkafka's and the libraries' too: to `file`, or to stderr."""
    handler: logging.Handler
    if file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for chatty in ("httpx", "httpx2"):  # one INFO line per registry request otherwise
        logging.getLogger(chatty).setLevel(logging.WARNING)


def setup(service: str, level: str = "INFO") -> None:
    json_logs(level)
    resource = Resource.create({"service.name": service})
    provider = TracerProvider(resource=resource)
    readers = []
    if os.environ.get("FINSYNC_OTEL_EXPORTER") == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stderr)))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))


class Meters:
    """The service's metrics (OpenTelemetry): made after setup(), so they use its provider."""

    def __init__(self) -> None:
        meter = metrics.get_meter("finsync")
        self.records = meter.create_counter(
            "finsync.records",
            description="records consumed, by outcome: processed, duplicate, "
            "retried, dead-lettered",
        )
        self.batch_seconds = meter.create_histogram(
            "finsync.batch.duration", unit="s", description="one batch, consumed to committed"
        )
        self.published = meter.create_counter(
            "finsync.outbox.published", description="messages the relay published"
        )


def extract(headers: Headers) -> otel_context.Context:
    carrier = {
        k: v.decode("latin-1")
        for k, v in headers
        if v is not None and k in ("traceparent", "tracestate")
    }
    return _propagator.extract(carrier)


def inject() -> Headers:
    """The current span's context as Kafka headers."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return [(k, v.encode()) for k, v in carrier.items()]


def current_trace_id() -> str | None:
    span = trace.get_current_span().get_span_context()
    return format(span.trace_id, "032x") if span.is_valid else None

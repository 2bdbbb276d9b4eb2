"""`make bench`'s latency phase: invoices published at a steady rate to a running
invoice-poster, and the time from each publish to its `erp.invoice-posted` being readable."""

from __future__ import annotations

import dataclasses
import random
import statistics
import time
import uuid

from confluent_kafka import Producer, TopicPartition
from rich.console import Console

from finsync.contract.events import InvoiceIssued, InvoicePosted
from finsync.runtime import clients
from finsync.runtime.serde import Serde
from finsync.scenario import documents
from finsync.settings import Settings

console = Console()
TOPIC = InvoiceIssued.TOPIC


@dataclasses.dataclass(frozen=True)
class Latency:
    rate: int  # events published a second
    seconds: int
    sent: int
    latencies_ms: list[float]  # of those whose posting was readable within the wait

    @property
    def complete(self) -> bool:
        return len(self.latencies_ms) == self.sent

    def as_json(self) -> dict[str, object]:
        q = statistics.quantiles(self.latencies_ms, n=100) if len(self.latencies_ms) > 1 else []
        return {
            "rate": self.rate,
            "seconds": self.seconds,
            "sent": self.sent,
            "arrived": len(self.latencies_ms),
            "p50_ms": round(q[49], 1) if q else None,
            "p90_ms": round(q[89], 1) if q else None,
            "p99_ms": round(q[98], 1) if q else None,
            "max_ms": round(max(self.latencies_ms), 1) if self.latencies_ms else None,
        }


def latency(settings: Settings, serde: Serde, rate: int, seconds: int) -> Latency:
    """Publish at `rate`/s; milliseconds from publish to the posting being readable. Events
    whose posting is not readable 30 s after the last was published count as not arrived.

    The load is made and encoded before the clock starts, and a posting is matched to its
    invoice by its key (the invoice's), not decoded: the bench shares the machine with what
    it measures, and its own Avro work would otherwise take CPU from the service."""
    rng = random.Random(rate * 1000 + seconds)
    total = rate * seconds
    with console.status(f"latency at {rate}/s: making {total} invoices ..."):
        load = []
        for i in range(total):
            invoice = documents.invoice(rng, i)
            load.append((invoice.key.encode(), serde.encode(invoice)))
    tail = clients.consumer(settings, f"bench-tail-{uuid.uuid4()}")
    topic = InvoicePosted.TOPIC
    parts = tail.list_topics(topic, timeout=10).topics[topic].partitions
    tail.assign(
        [
            TopicPartition(topic, p, tail.get_watermark_offsets(TopicPartition(topic, p))[1])
            for p in parts
        ]
    )
    producer = Producer(settings.kafka_config())
    sent: dict[bytes, float] = {}
    seen: dict[bytes, float] = {}
    start = time.perf_counter()
    i = 0
    with console.status(f"latency at {rate}/s for {seconds}s ..."):
        while len(seen) < total and time.perf_counter() - start < seconds + 30:
            due = min(total, int((time.perf_counter() - start) * rate))
            while i < due:
                key, value = load[i]
                producer.produce(TOPIC, value, key)
                producer.poll(0)
                sent[key] = time.perf_counter()
                i += 1
            for m in tail.consume(100, timeout=0.005):
                posted = m.key()
                if m.error() is None and posted in sent:
                    seen.setdefault(posted, time.perf_counter())
    producer.flush(10)
    tail.close()
    return Latency(rate, seconds, total, [(seen[k] - sent[k]) * 1000 for k in seen])


def latency_line(at: Latency) -> str:
    figures = at.as_json()
    if figures["p50_ms"] is None:
        return f"at {at.rate}/s for {at.seconds}s: no posting arrived"
    more = "" if at.complete else f" — only {len(at.latencies_ms)} of {at.sent} arrived in time"
    return (
        f"at {at.rate}/s for {at.seconds}s ({at.sent} events): p50 {figures['p50_ms']:.0f} ms, "
        f"p90 {figures['p90_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms, "
        f"max {figures['max_ms']:.0f} ms{more}"
    )

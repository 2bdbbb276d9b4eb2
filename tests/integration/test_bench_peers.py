"""`make bench`'s peers of invoice-poster at a tiny size on the real stack: each peer, as a
process, posts every invoice of the range once and announces it once; the fault counters
count what is lost, doubled or never announced."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from finsync.bench.invoice_poster import publish_invoices
from finsync.bench.peers.bench import peers_settings, run_peers
from finsync.bench.peers.counting import range_invoices, tally
from finsync.bench.peers.runs import PEERS
from finsync.bench.peers.topics import OUT_TOPIC, high_watermarks, tail
from finsync.contract.events import InvoicePosted
from finsync.runtime import clients
from finsync.runtime.messages import Outgoing
from finsync.runtime.serde import Serde
from finsync.settings import Settings

pytestmark = pytest.mark.integration

N = 300


def test_each_peer_posts_and_announces_every_invoice_once_and_faults_are_counted(
    settings: Settings, serde: Serde
) -> None:
    offsets = publish_invoices(settings, serde, N, seed=uuid.uuid4().int)
    figures = run_peers(settings, serde, offsets, N, faults=0, say=lambda _: None)

    assert [t.run for t in figures.throughput] == [p.name for p in PEERS]
    for t in figures.throughput:
        assert (t.events, t.lost, t.duplicated, t.unpublished) == (N, 0, 0, 0), t
        assert t.events_per_second, t
    assert figures.faults == []
    rows = figures.as_json()["throughput"]
    assert all(r["events_per_second"] > 0 for r in rows)

    # The last peer's postings stand in the peers' database: count a made-up run against them.
    peers = peers_settings(settings)
    invoices = range_invoices(peers, serde, tail(offsets, 3))
    doubled, once, silent = list(invoices)  # event ids: two results, one, none
    missing = str(uuid.uuid4())
    since = high_watermarks(peers, OUT_TOPIC)
    results = []
    for cause, times in ((doubled, 2), (once, 1)):
        posted = InvoicePosted(
            event_id=uuid.uuid4(),
            occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
            source="test",
            correlation_id="test",
            causation_id=cause,
            invoice_id=invoices[cause],
            erp_document_id=f"AR-{invoices[cause]}",
            journal_entry_id="JE-test",
            legal_entity="US01",
            currency="USD",
            journal_lines=[],
            posted_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        for _ in range(times):  # each time under a new event id, as a redelivery makes it
            again = posted.model_copy(update={"event_id": uuid.uuid4()})
            results.append(Outgoing(OUT_TOPIC, again.key.encode(), serde.encode(again), []))
    producer = clients.producer(settings, "test-bench-peers")
    assert clients.send(producer, results) == 3

    counted = tally(peers, serde, {**invoices, missing: "INV-never-posted"}, OUT_TOPIC, since)
    assert (counted.invoices, counted.lost, counted.duplicated, counted.unpublished) == (4, 1, 1, 1)
    assert silent not in (doubled, once)

"""Crashes and outages: a relay killed mid-publish, PostgreSQL stopped mid-run."""

from __future__ import annotations

import random
import threading
import uuid
from pathlib import Path

import psycopg
import pytest

from finsync.contract.events import InvoicePosted
from finsync.reference import reports
from finsync.runtime import db, dlq
from finsync.runtime.failures import RetryPolicy
from finsync.runtime.processing import BatchProcessor
from finsync.runtime.serde import Serde
from finsync.scenario import documents
from finsync.service import Service
from finsync.settings import Settings
from finsync.stack import postgres
from tests.support import ServiceProcess, TopicTail, drain, eventually, publish

pytestmark = pytest.mark.integration

INPUTS = ["billing.invoice-issued", "billing.credit-memo-issued"]


def journal_counts(settings: Settings, keys: list[str]) -> dict[str, int]:
    with db.connect(settings) as conn:
        return reports.postings_by_key(conn, keys)


def test_a_relay_killed_after_publishing_before_marking_sent_causes_no_duplicate_effect(
    settings: Settings, serde: Serde, tmp_path: Path
) -> None:
    invoice = documents.invoice(random.Random(uuid.uuid4().int), 1)
    drain(settings, "invoice-poster", INPUTS, tmp_path)  # so the relay's next batch is ours
    tail = TopicTail(settings, InvoicePosted.TOPIC)
    crashing = ServiceProcess(
        "invoice-poster", tmp_path, {"FINSYNC_FAULT_PAUSE": "before-mark-sent"}
    ).start()
    publish(settings, serde, [invoice])
    crashing.wait_log("fault point before-mark-sent reached", 30)
    crashing.kill()

    def copies() -> list:
        return [r for r in tail.poll(0.5) if r.key_text == invoice.invoice_id]

    assert len(eventually(copies, 10, "the first copy")) == 1  # published, not marked sent
    restarted = ServiceProcess("invoice-poster", tmp_path).start()  # its relay publishes again
    try:
        published = eventually(lambda: len(copies()) >= 2 and copies(), 60, "the second copy")
    finally:
        restarted.stop()
    event_ids = {serde.decode(InvoicePosted.TOPIC, r.value).event_id for r in published}
    assert len(event_ids) == 1  # the same event, twice on the wire

    # A downstream service built on the runtime takes effect once for both copies.
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS public.test_downstream_effects (invoice_id text NOT NULL)"
        )

    def record(event: InvoicePosted, conn: psycopg.Connection) -> list:
        conn.execute("INSERT INTO public.test_downstream_effects VALUES (%s)", (event.invoice_id,))
        return []

    downstream = Service(
        name=f"test-downstream-{uuid.uuid4().hex[:8]}",
        handlers={InvoicePosted.TOPIC: record},
        bind=lambda conn: conn,
    )
    processor = BatchProcessor(
        downstream, serde, RetryPolicy(budget_seconds=3, base_seconds=1, max_seconds=1)
    )
    with psycopg.connect(settings.database_url) as conn:
        for copy in published:  # each copy a separate delivery
            processor.process(conn, [copy])
        count = conn.execute(
            "SELECT count(*) FROM public.test_downstream_effects WHERE invoice_id = %s",
            (invoice.invoice_id,),
        ).fetchone()
    assert count == (1,)
    assert journal_counts(settings, [f"invoice:{invoice.invoice_id}"]) == {
        f"invoice:{invoice.invoice_id}": 1
    }


def test_postgres_stopped_and_restarted_mid_run_retries_then_posts_every_event_once(
    settings: Settings, serde: Serde, tmp_path: Path
) -> None:
    rng = random.Random(uuid.uuid4().int)
    invoices = [documents.invoice(rng, n) for n in range(300)]
    keys = [f"invoice:{i.invoice_id}" for i in invoices]
    poster = ServiceProcess("invoice-poster", tmp_path).start()
    try:
        publish(settings, serde, invoices[:150])
        eventually(lambda: journal_counts(settings, keys), 60, "the first postings")
        postgres.stop(settings)
        try:
            publish(settings, serde, invoices[150:])  # arrives while the database is down
            poster.wait_log("database unavailable", 30)
            threading.Event().wait(3)
        finally:
            postgres.start(settings, say=lambda _: None)
        counts = eventually(
            lambda: (c := journal_counts(settings, keys)) and len(c) == len(keys) and c,
            120,
            "every invoice posted after the restart",
        )
    finally:
        assert poster.stop() == 0
    assert set(counts.values()) == {1}
    ids = {i.invoice_id for i in invoices}
    assert not [x for x in dlq.read(settings, "invoice-poster") if x.record.key_text in ids]

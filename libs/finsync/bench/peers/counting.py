"""What a run left behind, counted against the invoices of its range: postings lost, results
doubled, postings never announced.

A result is doubled when an invoice has results of more than one distinct event id: a
redelivered message re-published under a new id. The same event published twice under one
id (a relay that crashed after sending) is one result, which consumers dedupe by id.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import psycopg

from finsync.bench.invoice_poster import Offsets
from finsync.bench.peers.topics import read
from finsync.contract.events import InvoiceIssued, InvoicePosted
from finsync.runtime.serde import Serde
from finsync.settings import Settings


@dataclass(frozen=True)
class Tally:
    invoices: int  # in the run's range
    lost: int  # no journal entry
    duplicated: int  # results of more than one distinct event id
    unpublished: int  # posted, but no result


def range_invoices(settings: Settings, serde: Serde, offsets: Offsets) -> dict[str, str]:
    """The range's invoices: event id -> invoice id."""
    topic = InvoiceIssued.TOPIC
    since = {p: first for p, (first, _) in offsets.items()}
    until = {p: end for p, (_, end) in offsets.items()}
    invoices: dict[str, str] = {}
    for value in read(settings, topic, since, until):
        event = serde.decode(topic, value)
        assert isinstance(event, InvoiceIssued)
        invoices[str(event.event_id)] = event.invoice_id
    return invoices


def posted_invoices(settings: Settings, invoice_ids: list[str]) -> set[str]:
    keys = [f"invoice:{i}" for i in invoice_ids]
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT idempotency_key FROM erp.journal_entries WHERE idempotency_key = ANY(%s)",
            (keys,),
        ).fetchall()
    return {key.removeprefix("invoice:") for (key,) in rows}


def results(
    settings: Settings, serde: Serde, topic: str, since: dict[int, int]
) -> dict[str, set[str]]:
    """Results on `topic` from `since` on: the causing event id -> the results' event ids."""
    found: dict[str, set[str]] = defaultdict(set)
    for value in read(settings, topic, since):
        event = serde.decode(InvoicePosted.TOPIC, value)
        if event.causation_id is not None:
            found[event.causation_id].add(str(event.event_id))
    return found


def tally(
    settings: Settings,
    serde: Serde,
    invoices: dict[str, str],
    topic: str,
    since: dict[int, int],
) -> Tally:
    posted = posted_invoices(settings, list(invoices.values()))
    found = results(settings, serde, topic, since)
    return Tally(
        invoices=len(invoices),
        lost=sum(1 for i in invoices.values() if i not in posted),
        duplicated=sum(1 for e in invoices if len(found.get(e, ())) > 1),
        unpublished=sum(1 for e, i in invoices.items() if i in posted and not found.get(e)),
    )

"""What every peer does with an invoice, whatever runs it: decode, post, say what was posted.

The rows are the hand-written loop's (journal entry and lines, AR open item, invoice lines,
revenue schedule). The write is an idempotent upsert: the entry goes in with
`ON CONFLICT (idempotency_key) DO NOTHING`, and an invoice whose entry was already there
writes nothing more; its result event then names the entry that stands.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from finsync.contract.events import DocumentType, InvoiceIssued, InvoicePosted
from finsync.domain.accounting import Journal
from finsync.runtime.serde import Serde, registry_client, schema_text
from finsync.settings import Settings
from services.invoice_poster.posting import invoice_posting

TOPIC = InvoiceIssued.TOPIC
SOURCE = "finsync.bench.peer"

ENTRIES = (
    "INSERT INTO erp.journal_entries (entry_id, idempotency_key, legal_entity, currency, "
    "description) SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::text[]) ON CONFLICT (idempotency_key) DO NOTHING "
    "RETURNING idempotency_key, entry_id, posted_at"
)
EXISTING = (
    "SELECT idempotency_key, entry_id, posted_at FROM erp.journal_entries "
    "WHERE idempotency_key = ANY(%s::text[])"
)
LINES = (
    "INSERT INTO erp.journal_lines (entry_id, line_no, account_code, debit, credit) "
    "SELECT * FROM unnest(%s::text[], %s::int[], %s::text[], %s::numeric[], %s::numeric[])"
)
ITEMS = (
    "INSERT INTO erp.ar_open_items (document_id, invoice_id, invoice_number, account_id, "
    "legal_entity, currency, issued_on, due_on, original_amount, open_amount, "
    "journal_entry_id) SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::text[], %s::text[], %s::date[], %s::date[], %s::numeric[], %s::numeric[], %s::text[])"
)
INVOICE_LINES = (
    "INSERT INTO erp.ar_invoice_lines (invoice_id, line_id, amount, revenue_account, "
    "deferred_account) SELECT * FROM unnest(%s::text[], %s::text[], %s::numeric[], "
    "%s::text[], %s::text[])"
)
SCHEDULES = (
    "INSERT INTO erp.revenue_schedules (invoice_id, line_id, period, legal_entity, currency, "
    "revenue_account, deferred_account, amount) SELECT * FROM unnest(%s::text[], %s::text[], "
    "%s::date[], %s::text[], %s::text[], %s::text[], %s::text[], %s::numeric[])"
)

Row = tuple[Any, ...]


def arguments(description: str, modes: Sequence[str]) -> argparse.Namespace:
    """A peer's command line. The database comes from FINSYNC_DATABASE_URL, as for every
    finsync process, so its password never shows in a process list."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--mode", choices=modes, required=True)
    parser.add_argument("--group", required=True, help="consumer group (start it first)")
    parser.add_argument("--topic-out", required=True, help="where results are published")
    return parser.parse_args()


class Decoder:
    """Decoded as a user would without finsync: confluent-kafka's deserializer, then the model."""

    def __init__(self, settings: Settings) -> None:
        self._deserialize = AvroDeserializer(registry_client(settings), schema_text(TOPIC))
        self._context = SerializationContext(TOPIC, MessageField.VALUE)

    def __call__(self, value: bytes | None) -> InvoiceIssued:
        return InvoiceIssued.model_validate(self._deserialize(value, self._context))


@dataclass(frozen=True)
class Posting:
    """An invoice, its journal and the rows that post it."""

    invoice: InvoiceIssued
    journal: Journal
    entry: Row
    lines: list[Row]
    item: Row
    invoice_lines: list[Row]
    schedules: list[Row]

    @classmethod
    def of(cls, invoice: InvoiceIssued) -> Posting:
        journal, bookings = invoice_posting(invoice)
        entry_id = f"JE-{uuid.uuid4().hex[:20]}"
        i, e, c = invoice.invoice_id, invoice.legal_entity, invoice.currency
        invoice_lines: list[Row] = []
        schedules: list[Row] = []
        for b in bookings:
            accounts = (b.revenue_account, b.deferred_account)
            invoice_lines.append((i, b.line_id, b.amount, *accounts))
            schedules += [(i, b.line_id, r.period, e, c, *accounts, r.amount) for r in b.schedule]
        return cls(
            invoice,
            journal,
            (entry_id, journal.key, journal.legal_entity, journal.currency, journal.description),
            [
                (entry_id, n, x.account_code, x.debit, x.credit)
                for n, x in enumerate(journal.lines, 1)
            ],
            (
                f"AR-{i}",
                i,
                invoice.invoice_number,
                invoice.account_id,
                e,
                c,
                invoice.issued_on,
                invoice.due_on,
                invoice.total,
                invoice.total,
                entry_id,
            ),
            invoice_lines,
            schedules,
        )

    def posted(self, entry_id: str, posted_at: datetime) -> InvoicePosted:
        invoice = self.invoice
        return invoice.follow(
            InvoicePosted,
            source=SOURCE,
            invoice_id=invoice.invoice_id,
            document_type=DocumentType.INVOICE,
            document_id=invoice.invoice_id,
            erp_document_id=f"AR-{invoice.invoice_id}",
            journal_entry_id=entry_id,
            legal_entity=invoice.legal_entity,
            currency=invoice.currency,
            journal_lines=list(self.journal.lines),
            posted_at=posted_at,
            accounting_date=invoice.issued_on,
            due_on=invoice.due_on,
        )


def _columns(rows: Sequence[Row]) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)]


async def post(conn: AsyncConnection[Any], postings: Sequence[Posting]) -> list[InvoicePosted]:
    """Post the invoices in one transaction; one result event per invoice, in their order.
    Entries that were already there (a redelivery) are reported, not written again."""
    async with conn.transaction():
        cur = await conn.execute(ENTRIES, _columns([p.entry for p in postings]))
        stood = {key: (entry_id, at) for key, entry_id, at in await cur.fetchall()}
        new = [p for p in postings if p.journal.key in stood]
        again = [p.journal.key for p in postings if p.journal.key not in stood]
        if again:
            cur = await conn.execute(EXISTING, (again,))
            stood |= {key: (entry_id, at) for key, entry_id, at in await cur.fetchall()}
        if new:
            # One statement per table: the balance trigger checks each entry once.
            await conn.execute(LINES, _columns([x for p in new for x in p.lines]))
            await conn.execute(ITEMS, _columns([p.item for p in new]))
            await conn.execute(INVOICE_LINES, _columns([x for p in new for x in p.invoice_lines]))
            schedules = [x for p in new for x in p.schedules]
            if schedules:
                await conn.execute(SCHEDULES, _columns(schedules))
    return [p.posted(*stood[p.journal.key]) for p in postings]


def pool(url: str) -> AsyncConnectionPool:
    """Opened by the caller. Each connection is checked as it is taken, so one the server
    dropped while it sat in the pool is replaced instead of failing the next message."""
    return AsyncConnectionPool(
        url, min_size=1, max_size=2, open=False, check=AsyncConnectionPool.check_connection
    )


def datadir(settings: Settings, group: str) -> Path:
    """Where a faust peer keeps its directory (it has no tables, but faust makes one)."""
    return settings.home / "run" / "peers" / group


def serde(settings: Settings) -> Serde:
    return Serde(registry_client(settings))

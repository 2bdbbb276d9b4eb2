"""Journals of the reference ERP (erp.journal_entries, erp.journal_lines) for one unit of work:
each dated by the periods rule (a journal dated in a closed period posts in the next open
one), converted to its entity's functional currency, kept, and written by flush() in two
statements, all lines in one so the balance trigger sees whole entries."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import psycopg

from finsync.contract.events import JournalLine
from finsync.domain import periods as period_rules
from finsync.domain.accounting import Journal
from finsync.ports.erp import Posted
from finsync.reference.erp import periods
from finsync.reference.erp.fx import Converter
from finsync.runtime import bulk

_ENTRY_COLUMNS = (
    ("entry_id", "text"),
    ("idempotency_key", "text"),
    ("legal_entity", "text"),
    ("currency", "text"),
    ("description", "text"),
    ("posted_at", "timestamptz"),
    ("accounting_date", "date"),
    ("original_date", "date"),
    ("date_reason", "text"),
    ("functional_currency", "text"),
    ("rate_from", "text"),
    ("rate_to", "text"),
    ("rate_date", "date"),
)
_LINE_COLUMNS = (
    ("entry_id", "text"),
    ("line_no", "int"),
    ("account_code", "text"),
    ("debit", "numeric"),
    ("credit", "numeric"),
    ("mapping_rule", "text"),
    ("functional_debit", "numeric"),
    ("functional_credit", "numeric"),
    ("rate", "numeric"),
)


class Journals:
    def __init__(self, conn: psycopg.Connection, fx: Converter) -> None:
        self.conn = conn
        self._fx = fx
        self._entries: list[tuple[object, ...]] = []
        self._lines: list[tuple[object, ...]] = []
        # Closed periods per entity, read once per unit of work under the entity's shared
        # period lock, which holds off a close of its periods until this transaction ends.
        self._closed: dict[str, frozenset[date]] = {}
        # The lines each journal booked, by entry id, for the Posted it returns.
        self._booked: dict[str, tuple[str, tuple[JournalLine, ...]]] = {}

    @property
    def pending(self) -> bool:
        return bool(self._entries)

    def post(self, journal: Journal) -> tuple[str, datetime, date]:
        """Date the journal (a closed period moves it), convert it to its entity's functional
        currency and keep it for flush(): its entry id, when it was posted, its date."""
        # Ids and time are made here, so nothing waits for the database to answer.
        entry_id, posted_at = f"JE-{uuid.uuid4().hex[:20]}", datetime.now(UTC)
        entity = journal.legal_entity
        if entity not in self._closed:
            self._closed[entity] = periods.closed_periods(self.conn, entity)
        dated = period_rules.resolve(
            journal.accounting_date or posted_at.date(), entity, self._closed[entity]
        )
        booking = self._fx.book(journal, dated.on)
        source = booking.source
        self._booked[entry_id] = (booking.functional_currency, booking.lines)
        self._entries.append(
            (
                entry_id,
                journal.key,
                entity,
                journal.currency,
                journal.description,
                posted_at,
                dated.on,
                dated.original,
                dated.reason,
                booking.functional_currency,
                source and source.from_currency,
                source and source.to_currency,
                source and source.rate_date,
            )
        )
        self._lines += [
            (
                entry_id,
                n,
                x.account_code,
                x.debit,
                x.credit,
                x.mapping_rule,
                x.functional_debit,
                x.functional_credit,
                x.rate,
            )
            for n, x in enumerate(booking.lines, 1)
        ]
        return entry_id, posted_at, dated.on

    def posted(
        self, document_id: str, entry_id: str, posted_at: datetime, accounting_date: date
    ) -> Posted:
        """What posting the document did, with the lines its journal booked."""
        functional_currency, lines = self._booked.pop(entry_id)
        return Posted(document_id, entry_id, posted_at, accounting_date, lines, functional_currency)

    def flush(self, cur: psycopg.Cursor) -> None:
        if not self._entries:
            return
        bulk.insert(cur, "erp.journal_entries", _ENTRY_COLUMNS, self._entries)
        # One statement for all lines: the balance trigger checks each entry once.
        bulk.insert(cur, "erp.journal_lines", _LINE_COLUMNS, self._lines)
        self._entries, self._lines = [], []

"""The reference ERP on PostgreSQL (schema `erp`): the embedded default behind the Erp port.

Idempotency keys are unique constraints, so a second post of the same document changes
nothing; the database itself refuses an unbalanced or altered journal.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg

from finsync.accounting import Journal
from finsync.errors import InvalidEvent
from finsync.ports.erp import OpenItem, Posted


class ReferenceErp:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def _post_with_journal(
        self, journal: Journal, document_sql: str, document_params: tuple[object, ...]
    ) -> tuple[str, datetime]:
        """Post the journal and write the document that refers to it, in one statement.

        `document_sql` is an INSERT whose last parameter is the journal entry id. Ids and time
        are made here and nothing is read back, so the caller never waits for the database.
        The lines go in one INSERT, so the balance trigger sees the whole entry at once.
        """
        entry_id, posted_at = f"JE-{uuid.uuid4().hex[:20]}", datetime.now(UTC)
        self.conn.execute(
            "WITH entry AS ("
            " INSERT INTO erp.journal_entries"
            " (entry_id, idempotency_key, legal_entity, currency, description, posted_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)),"
            " lines AS ("
            " INSERT INTO erp.journal_lines (entry_id, line_no, account_code, debit, credit)"
            " SELECT %s, n, a, d, c FROM unnest(%s::text[], %s::numeric[], %s::numeric[])"
            " WITH ORDINALITY AS x(a, d, c, n)) " + document_sql,
            (
                entry_id,
                journal.key,
                journal.legal_entity,
                journal.currency,
                journal.description,
                posted_at,
                entry_id,
                [x.account_code for x in journal.lines],
                [x.debit for x in journal.lines],
                [x.credit for x in journal.lines],
                *document_params,
                entry_id,
            ),
        )
        return entry_id, posted_at

    def post_invoice(self, item: OpenItem, journal: Journal) -> Posted:
        document_id = f"AR-{item.invoice_id}"
        entry_id, posted_at = self._post_with_journal(
            journal,
            "INSERT INTO erp.ar_open_items (document_id, invoice_id, invoice_number, account_id, "
            "legal_entity, currency, issued_on, due_on, original_amount, open_amount, "
            "journal_entry_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                document_id,
                item.invoice_id,
                item.invoice_number,
                item.account_id,
                item.legal_entity,
                item.currency,
                item.issued_on,
                item.due_on,
                item.original_amount,
                item.open_amount,
            ),
        )
        return Posted(document_id, entry_id, posted_at)

    def post_credit_memo(
        self, credit_memo_id: str, invoice_id: str, amount: Decimal, journal: Journal
    ) -> Posted:
        reduced = self.conn.execute(
            "UPDATE erp.ar_open_items SET open_amount = open_amount - %s "
            "WHERE invoice_id = %s AND open_amount >= %s RETURNING open_amount",
            (amount, invoice_id, amount),
        ).fetchone()
        if reduced is None:
            raise InvalidEvent(
                f"credit memo {credit_memo_id} for {amount.normalize():f} exceeds the open "
                f"amount of invoice {invoice_id}; a refund of a paid invoice is not a credit memo"
            )
        entry_id, posted_at = self._post_with_journal(
            journal,
            "INSERT INTO erp.ar_credits (credit_memo_id, invoice_id, amount, journal_entry_id) "
            "VALUES (%s, %s, %s, %s)",
            (credit_memo_id, invoice_id, amount),
        )
        return Posted(f"CM-{credit_memo_id}", entry_id, posted_at)

    def open_item(self, invoice_id: str) -> OpenItem | None:
        row = self.conn.execute(
            "SELECT invoice_id, invoice_number, account_id, legal_entity, currency, issued_on, "
            "due_on, original_amount, open_amount FROM erp.ar_open_items WHERE invoice_id = %s",
            (invoice_id,),
        ).fetchone()
        return None if row is None else OpenItem(*row)

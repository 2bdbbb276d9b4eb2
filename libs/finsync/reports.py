"""What finance reads back from the reference ERP: trial balance, postings, receivables."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import psycopg


@dataclass(frozen=True)
class TrialBalanceRow:
    legal_entity: str
    currency: str
    account_code: str
    account_name: str
    debit: Decimal
    credit: Decimal


def trial_balance(conn: psycopg.Connection) -> list[TrialBalanceRow]:
    rows = conn.execute(
        "SELECT e.legal_entity, e.currency, a.code, a.name, sum(l.debit), sum(l.credit) "
        "FROM erp.journal_lines l JOIN erp.journal_entries e USING (entry_id) "
        "JOIN erp.accounts a ON a.code = l.account_code "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3"
    ).fetchall()
    return [TrialBalanceRow(*r) for r in rows]


def unbalanced_entries(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM (SELECT entry_id FROM erp.journal_lines GROUP BY entry_id "
        "HAVING sum(debit) <> sum(credit)) x"
    ).fetchone()
    return int(row[0]) if row else 0


def postings_by_key(conn: psycopg.Connection, keys: list[str]) -> dict[str, int]:
    """How many journal entries exist for each idempotency key."""
    rows = conn.execute(
        "SELECT idempotency_key, count(*) FROM erp.journal_entries "
        "WHERE idempotency_key = ANY(%s) GROUP BY 1",
        (keys,),
    ).fetchall()
    return {k: int(n) for k, n in rows}


def open_receivables(
    conn: psycopg.Connection, invoice_ids: list[str]
) -> list[tuple[str, str, Decimal, Decimal]]:
    """(legal entity, currency, original, open) summed over the given invoices."""
    return [
        (e, c, o, p)
        for e, c, o, p in conn.execute(
            "SELECT legal_entity, currency, sum(original_amount), sum(open_amount) "
            "FROM erp.ar_open_items WHERE invoice_id = ANY(%s) GROUP BY 1, 2 ORDER BY 1, 2",
            (invoice_ids,),
        ).fetchall()
    ]

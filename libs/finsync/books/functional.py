"""The ledger in each legal entity's functional currency (0019_functional_currency.sql): it nets
to zero per entity whatever currencies its journals are in — part of ledger.py's trial-balance
check — and its totals, which `finsync reconcile` shows."""

from __future__ import annotations

from decimal import Decimal

import psycopg

from finsync.books.findings import Finding
from finsync.domain.accounting import ACCOUNTS_RECEIVABLE, ZERO, fmt
from finsync.reference.erp import booked_ar

# An entity filter every query takes as %(entity)s: NULL means every entity (as ledger.py's).
ENTITY = "(%(entity)s::text IS NULL OR {column} = %(entity)s)"


def balance(conn: psycopg.Connection, params: dict[str, object]) -> list[Finding]:
    """Each entity's books in its functional currency, whatever currencies its journals are in,
    net to zero too (0019_functional_currency.sql)."""
    rows = conn.execute(
        "SELECT e.legal_entity, e.functional_currency, "
        "  sum(l.functional_debit) - sum(l.functional_credit), "
        "  (SELECT array_agg(k) FROM (SELECT x.idempotency_key AS k FROM erp.journal_entries x "
        "     JOIN erp.journal_lines y USING (entry_id) WHERE x.legal_entity = e.legal_entity "
        "     AND x.functional_currency = e.functional_currency GROUP BY x.entry_id, "
        "     x.idempotency_key HAVING sum(y.functional_debit) <> sum(y.functional_credit) "
        "     LIMIT 10) u) "
        "FROM erp.journal_lines l JOIN erp.journal_entries e USING (entry_id) "
        f"WHERE {ENTITY.format(column='e.legal_entity')} "
        "GROUP BY 1, 2 HAVING sum(l.functional_debit) <> sum(l.functional_credit) ORDER BY 1, 2",
        params,
    ).fetchall()
    return [
        Finding(
            "trial-balance",
            f"{e} functional {c}",
            f"functional debits exceed credits by {fmt(diff, c)}",
            tuple(keys or ()),
        )
        for e, c, diff, keys in rows
    ]


def totals(conn: psycopg.Connection, entity: str | None) -> list[tuple[str, str, Decimal, Decimal]]:
    """(entity, functional currency, debits, credits) of the whole ledger."""
    rows = conn.execute(
        "SELECT e.legal_entity, e.functional_currency, sum(l.functional_debit), "
        "sum(l.functional_credit) FROM erp.journal_lines l "
        "JOIN erp.journal_entries e USING (entry_id) "
        f"WHERE {ENTITY.format(column='e.legal_entity')} GROUP BY 1, 2 ORDER BY 1, 2",
        {"entity": entity},
    ).fetchall()
    return [(e, c, d, cr) for e, c, d, cr in rows]


def ar(conn: psycopg.Connection, params: dict[str, object]) -> list[Finding]:
    """Per entity and foreign currency, 1200 in functional currency is what its invoices have
    open at their booked rates (reference/erp/booked_ar.py): AR relieved at another rate would
    leave functional AR behind on invoices that are paid."""
    subledger = booked_ar.functional_open(conn, params["entity"])  # type: ignore[arg-type]
    rows = conn.execute(
        "SELECT e.legal_entity, e.currency, e.functional_currency, "
        "  sum(l.functional_debit - l.functional_credit) "
        "FROM erp.journal_lines l JOIN erp.journal_entries e USING (entry_id) "
        "WHERE l.account_code = %(account)s AND e.currency <> e.functional_currency "
        f"AND {ENTITY.format(column='e.legal_entity')} GROUP BY 1, 2, 3",
        {**params, "account": ACCOUNTS_RECEIVABLE},
    ).fetchall()
    gl = {(e, c, f): net for e, c, f, net in rows}
    reopened = _reopened(conn)
    return [
        Finding(
            "gl-ar",
            f"{e} {c} functional {f}",
            f"open {fmt(subledger.get((e, c, f), ZERO), f)} at booked rates in the sub-ledger, "
            f"{fmt(gl.get((e, c, f), ZERO), f)} on {ACCOUNTS_RECEIVABLE}",
            (),
        )
        for e, c, f in sorted(set(gl) | set(subledger))
        if gl.get((e, c, f), ZERO) != subledger.get((e, c, f), ZERO) and (e, c) not in reopened
    ]


def _reopened(conn: psycopg.Connection) -> set[tuple[str, str]]:
    """Entity and currency of invoices a refund or lost dispute reopened: reopened at their own
    day's rate, which the booked-rate sub-ledger does not model yet, so not checked."""
    if not conn.execute("SELECT to_regclass('erp.payment_reversals') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
        return set()
    rows = conn.execute(
        "SELECT DISTINCT a.legal_entity, a.currency FROM erp.payment_reversals r "
        "JOIN erp.ar_open_items a USING (invoice_id)"
    ).fetchall()
    return {(e, c) for e, c in rows}

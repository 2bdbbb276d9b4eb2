"""Ledger checks: each control account of the reference ERP equals the documents behind it.

Every check compares document by document, so each break names the document whose posting
and sub-ledger disagree; journal lines on a control account that no document explains are
breaks of their own. Amounts are net: debit minus credit for assets, the reverse for
liabilities.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from finsync.books import functional
from finsync.books.findings import Check, Finding
from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    UNAPPLIED_CASH,
    fmt,
)

TRIAL_BALANCE = Check(
    "trial-balance",
    "the trial balance nets to zero per entity and currency, and per entity in its functional "
    "currency",
    "ledger",
)
GL_AR = Check("gl-ar", f"GL {ACCOUNTS_RECEIVABLE} equals the AR sub-ledger", "ledger")
GL_UNAPPLIED = Check(
    "gl-unapplied-cash", f"GL {UNAPPLIED_CASH} equals the unapplied cash held", "ledger"
)
CHECKS = (TRIAL_BALANCE, GL_AR, GL_UNAPPLIED)

# An entity filter every query takes as %(entity)s: NULL means every entity.
ENTITY = "(%(entity)s::text IS NULL OR {column} = %(entity)s)"
# Documents whose journal was posted since %(since)s (NULL: all): the activity of a window.
SINCE = (
    "(%(since)s::timestamptz IS NULL OR EXISTS (SELECT 1 FROM erp.journal_entries j "
    "WHERE j.entry_id = {entry} AND j.posted_at >= %(since)s))"
)

# The journal entry of each AR document, and the invoice it moves.
AR_DOCUMENTS = (
    "SELECT journal_entry_id AS entry_id, invoice_id, 'invoice ' || invoice_id AS document "
    "FROM erp.ar_open_items "
    "UNION ALL SELECT journal_entry_id, invoice_id, 'credit memo ' || credit_memo_id "
    "FROM erp.ar_credits "
    # Customer credit used on an invoice as it posted (customer_credit.py checks 2400).
    "UNION ALL SELECT journal_entry_id, invoice_id, 'credit applied to ' || invoice_id "
    "FROM erp.customer_credits WHERE kind = 'USED'"
)
# Invoices reopened by refunds and lost disputes (0018): by amount, as one journal may reopen
# several; refunds_disputes.py ties each journal's 1200 lines to these amounts.
REOPENED = (
    "SELECT invoice_id, sum(amount) AS net, "
    "       array_agg(DISTINCT lower(document_kind) || ' ' || document_id) AS documents "
    "FROM erp.payment_reversals WHERE invoice_id IS NOT NULL GROUP BY 1"
)
REVERSAL_ENTRIES = "SELECT journal_entry_id FROM erp.payment_reversals"
# Payments move AR by their applications (0017): one journal may settle several invoices on one
# 1200 line, so each invoice ties by the amounts applied, and each journal by its 1200 lines.
PAID = (
    "SELECT invoice_id, sum(applied_amount + written_off_amount) AS settled, "
    "       array_agg(DISTINCT 'payment ' || payment_id) AS documents "
    "FROM erp.payment_applications GROUP BY 1"
)
PAYMENT_ENTRIES = (
    "SELECT journal_entry_id AS entry_id FROM erp.payments "
    "UNION SELECT journal_entry_id FROM erp.payment_applications"
)


def has_reversals(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('erp.payment_reversals') IS NOT NULL").fetchone()
    return bool(row and row[0])


def run(conn: psycopg.Connection, entity: str | None, since: datetime | None) -> list[Finding]:
    """Every ledger check; documents posted since `since` only (all if None), but the trial
    balance always of the whole ledger."""
    params: dict[str, object] = {"entity": entity, "since": since}
    return [
        *trial_balance(conn, params),
        *gl_ar(conn, params),
        *gl_unapplied(conn, params),
    ]


def trial_balance(conn: psycopg.Connection, params: dict[str, object]) -> list[Finding]:
    rows = conn.execute(
        "SELECT e.legal_entity, e.currency, sum(l.debit) - sum(l.credit), "
        "  (SELECT array_agg(k) FROM (SELECT x.idempotency_key AS k FROM erp.journal_entries x "
        "     JOIN erp.journal_lines y USING (entry_id) WHERE x.legal_entity = e.legal_entity "
        "     AND x.currency = e.currency GROUP BY x.entry_id, x.idempotency_key "
        "     HAVING sum(y.debit) <> sum(y.credit) LIMIT 10) u) "
        "FROM erp.journal_lines l JOIN erp.journal_entries e USING (entry_id) "
        f"WHERE {ENTITY.format(column='e.legal_entity')} "
        "GROUP BY 1, 2 HAVING sum(l.debit) <> sum(l.credit) ORDER BY 1, 2",
        params,
    ).fetchall()
    found = [
        Finding(
            TRIAL_BALANCE.name,
            f"{e} {c}",
            f"debits exceed credits by {fmt(diff, c)}",
            tuple(keys or ()),
        )
        for e, c, diff, keys in rows
    ]
    return found + functional.balance(conn, params)


def untied(
    conn: psycopg.Connection,
    check: Check,
    account: str,
    tied: str,
    params: dict[str, object],
) -> list[Finding]:
    """Lines on a control account whose journal is none of the documents that account holds."""
    rows = conn.execute(
        "SELECT e.legal_entity, e.currency, e.idempotency_key, sum(l.debit - l.credit) "
        "FROM erp.journal_lines l JOIN erp.journal_entries e USING (entry_id) "
        f"WHERE l.account_code = %(account)s AND {ENTITY.format(column='e.legal_entity')} "
        "AND (%(since)s::timestamptz IS NULL OR e.posted_at >= %(since)s) "
        f"AND e.entry_id NOT IN ({tied}) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        {**params, "account": account},
    ).fetchall()
    return [
        Finding(
            check.name,
            f"{e} {c}",
            f"journal {key} {'debits' if net > 0 else 'credits'} {account} with "
            f"{fmt(abs(net), c)}, and no document explains it",
            (key,),
        )
        for e, c, key, net in rows
    ]


def gl_ar(conn: psycopg.Connection, params: dict[str, object]) -> list[Finding]:
    """Per invoice: its own journal, its credit memos', its payments' and the customer credit it
    used's lines on 1200, and what refunds and lost disputes reopened, add up to its open
    amount."""
    reversals = has_reversals(conn)
    reopened = REOPENED if reversals else "SELECT NULL::text, 0::numeric, NULL::text[]"
    rows = conn.execute(
        f"WITH docs AS ({AR_DOCUMENTS}), rv (invoice_id, net, documents) AS ({reopened}), "
        f"paid AS ({PAID}), "
        "gl AS (SELECT d.invoice_id, sum(l.debit - l.credit) AS net, "
        "              array_agg(DISTINCT d.document) AS documents "
        "       FROM docs d JOIN erp.journal_lines l USING (entry_id) "
        "       WHERE l.account_code = %(account)s AND d.invoice_id IS NOT NULL GROUP BY 1) "
        "SELECT a.invoice_id, a.legal_entity, a.currency, a.open_amount, "
        "       COALESCE(gl.net, 0) + COALESCE(rv.net, 0) - COALESCE(paid.settled, 0), "
        "       gl.documents || rv.documents || paid.documents "
        "FROM erp.ar_open_items a LEFT JOIN gl USING (invoice_id) LEFT JOIN rv USING (invoice_id) "
        "LEFT JOIN paid USING (invoice_id) "
        "WHERE a.open_amount <> COALESCE(gl.net, 0) + COALESCE(rv.net, 0) "
        "      - COALESCE(paid.settled, 0) "
        f"AND {ENTITY.format(column='a.legal_entity')} "
        f"AND {SINCE.format(entry='a.journal_entry_id')} "
        "ORDER BY 1",
        {**params, "account": ACCOUNTS_RECEIVABLE},
    ).fetchall()
    found = [
        Finding(
            GL_AR.name,
            f"invoice {i}",
            f"open {fmt(open_, c)} in the sub-ledger, {fmt(net, c)} on {ACCOUNTS_RECEIVABLE}",
            (f"invoice {i}", *sorted(set(docs or ()) - {f"invoice {i}"})),
        )
        for i, e, c, open_, net, docs in rows
    ]
    found += _payment_journals(conn, params)
    found += functional.ar(conn, params)  # foreign invoices' AR at their booked rates
    tied = f"SELECT entry_id FROM ({AR_DOCUMENTS}) d WHERE d.invoice_id IS NOT NULL"
    tied += f" UNION ALL {PAYMENT_ENTRIES}"
    if reversals:
        tied += f" UNION ALL {REVERSAL_ENTRIES} WHERE invoice_id IS NOT NULL"
    return found + untied(conn, GL_AR, ACCOUNTS_RECEIVABLE, tied, params)


def _payment_journals(conn: psycopg.Connection, params: dict[str, object]) -> list[Finding]:
    """Per payment journal (a settlement, or held cash applied later): what it credits to 1200
    is what its applications settle."""
    rows = conn.execute(
        f"WITH x AS ({PAYMENT_ENTRIES}), "
        "paid AS (SELECT journal_entry_id AS entry_id, "
        "                sum(applied_amount + written_off_amount) AS settled "
        "         FROM erp.payment_applications GROUP BY 1), "
        "gl AS (SELECT l.entry_id, sum(l.credit - l.debit) AS net FROM erp.journal_lines l "
        "       WHERE l.account_code = %(account)s AND l.entry_id IN (SELECT entry_id FROM x) "
        "       GROUP BY 1) "
        "SELECT e.legal_entity, e.currency, e.idempotency_key, COALESCE(paid.settled, 0), "
        "       COALESCE(gl.net, 0) "
        "FROM x JOIN erp.journal_entries e USING (entry_id) LEFT JOIN paid USING (entry_id) "
        "LEFT JOIN gl USING (entry_id) WHERE COALESCE(paid.settled, 0) <> COALESCE(gl.net, 0) "
        f"AND {ENTITY.format(column='e.legal_entity')} "
        "AND (%(since)s::timestamptz IS NULL OR e.posted_at >= %(since)s) ORDER BY 3",
        {**params, "account": ACCOUNTS_RECEIVABLE},
    ).fetchall()
    return [
        Finding(
            GL_AR.name,
            f"{e} {c}",
            f"journal {key} credits {fmt(net, c)} to {ACCOUNTS_RECEIVABLE}, its payment "
            f"applications settle {fmt(settled, c)}",
            (key,),
        )
        for e, c, key, settled, net in rows
    ]


def gl_unapplied(conn: psycopg.Connection, params: dict[str, object]) -> list[Finding]:
    """Per payment: what its settlement journal credits to 2100, less the held cash it applied
    later (earmarked, auto-applied) and what refunds and lost disputes took back, is the cash it
    still holds (unapplied_open); per later application, its journal debits 2100 with what it
    applied."""
    reversals = has_reversals(conn)
    taken = (
        "COALESCE((SELECT sum(r.amount) FROM erp.payment_reversals r "
        "WHERE r.payment_id = p.payment_id AND r.invoice_id IS NULL), 0)"
        if reversals
        else "0"
    )
    rows = conn.execute(
        "SELECT p.payment_id, p.currency, p.unapplied_open, "
        "  COALESCE((SELECT sum(l.credit - l.debit) FROM erp.journal_lines l "
        "    WHERE l.entry_id = p.journal_entry_id AND l.account_code = %(account)s), 0) "
        "  - COALESCE((SELECT sum(a.applied_amount) FROM erp.payment_applications a "
        f"    WHERE a.payment_id = p.payment_id AND a.kind <> 'SETTLEMENT'), 0) - {taken} AS net "
        "FROM erp.payments p "
        f"WHERE {ENTITY.format(column='p.legal_entity')} "
        f"AND {SINCE.format(entry='p.journal_entry_id')} "
        "AND p.unapplied_open <> "
        "  COALESCE((SELECT sum(l.credit - l.debit) FROM erp.journal_lines l "
        "    WHERE l.entry_id = p.journal_entry_id AND l.account_code = %(account)s), 0) "
        "  - COALESCE((SELECT sum(a.applied_amount) FROM erp.payment_applications a "
        f"    WHERE a.payment_id = p.payment_id AND a.kind <> 'SETTLEMENT'), 0) - {taken} "
        "ORDER BY 1",
        {**params, "account": UNAPPLIED_CASH},
    ).fetchall()
    later = conn.execute(
        "SELECT a.payment_id, a.invoice_id, e.currency, a.applied_amount, "
        "       COALESCE(sum(l.debit - l.credit), 0) "
        "FROM erp.payment_applications a JOIN erp.journal_entries e "
        "  ON e.entry_id = a.journal_entry_id "
        "LEFT JOIN erp.journal_lines l ON l.entry_id = a.journal_entry_id "
        "  AND l.account_code = %(account)s "
        f"WHERE a.kind <> 'SETTLEMENT' AND {ENTITY.format(column='e.legal_entity')} "
        "AND (%(since)s::timestamptz IS NULL OR e.posted_at >= %(since)s) "
        "GROUP BY 1, 2, 3, 4 HAVING a.applied_amount <> COALESCE(sum(l.debit - l.credit), 0) "
        "ORDER BY 1, 2",
        {**params, "account": UNAPPLIED_CASH},
    ).fetchall()
    found = [
        Finding(
            GL_UNAPPLIED.name,
            f"payment {p}",
            f"{fmt(held, c)} unapplied, {fmt(net, c)} on {UNAPPLIED_CASH}",
            (f"payment {p}",),
        )
        for p, c, held, net in rows
    ]
    found += [
        Finding(
            GL_UNAPPLIED.name,
            f"payment {p}",
            f"applied {fmt(applied, c)} of its unapplied cash to invoice {i}, its journal "
            f"debits {fmt(net, c)} to {UNAPPLIED_CASH}",
            (f"payment {p}", f"invoice {i}"),
        )
        for p, i, c, applied, net in later
    ]
    tied = PAYMENT_ENTRIES
    if has_reversals(conn):  # refunds_disputes.py ties their 2100 lines
        tied += f" UNION ALL {REVERSAL_ENTRIES} WHERE invoice_id IS NULL"
    return found + untied(conn, GL_UNAPPLIED, UNAPPLIED_CASH, tied, params)

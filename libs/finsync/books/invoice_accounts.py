"""Ledger checks of what invoices credit besides revenue: deferred revenue against the revenue
schedules, and tax payable against the invoices' and memos' tax, per account the GL mapping
names. Each break names its document, as in ledger.py."""

from __future__ import annotations

from datetime import datetime

import psycopg

from finsync.books.findings import Check, Finding
from finsync.books.ledger import ENTITY, SINCE, untied
from finsync.domain.accounting import DEFERRED_REVENUE, TAX_PAYABLE, fmt

GL_DEFERRED = Check(
    "gl-deferred-revenue",
    f"GL {DEFERRED_REVENUE} equals the revenue schedules not yet released",
    "ledger",
)
GL_TAX = Check(
    "gl-tax",
    f"GL {TAX_PAYABLE} and the tax accounts the GL mapping names equal the tax billed less the "
    "tax credited",
    "ledger",
)
CHECKS = (GL_DEFERRED, GL_TAX)


def run(conn: psycopg.Connection, entity: str | None, since: datetime | None) -> list[Finding]:
    """Documents posted since `since` (all if None)."""
    params: dict[str, object] = {"entity": entity, "since": since}
    return [*gl_deferred(conn, params), *gl_tax(conn, params)]


def _has_schedules(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('erp.revenue_schedules') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _mapped(conn: psycopg.Connection, kind: str) -> list[str]:
    """The deferred revenue accounts of the GL mapping's REVENUE rules, or the tax accounts of
    its TAX rules; retired rules' too, as postings used them."""
    if not conn.execute("SELECT to_regclass('erp.gl_mapping_rules') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
        return []
    rows = conn.execute(
        "SELECT DISTINCT CASE kind WHEN 'REVENUE' THEN deferred_account ELSE tax_account END "
        "FROM erp.gl_mapping_rules WHERE kind = %s",
        (kind,),
    )
    return [r[0] for r in rows]


def gl_deferred(conn: psycopg.Connection, params: dict[str, object]) -> list[Finding]:
    """Deferred revenue, three ways: what each invoice deferred is its schedule; what each credit
    memo took back is what its schedule cancelled; what each recognition run released is the
    schedule rows it marked. Then nothing else may move a deferred account."""
    if not _has_schedules(conn):
        return []
    scheduled = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT deferred_account FROM erp.revenue_schedules UNION SELECT %s",
            (DEFERRED_REVENUE,),
        )
    ]
    accounts = sorted({*scheduled, *_mapped(conn, "REVENUE")})
    p = {**params, "accounts": accounts}
    invoice_entry = (
        "(SELECT a.journal_entry_id FROM erp.ar_open_items a WHERE a.invoice_id = s.invoice_id)"
    )
    entity = ENTITY.format(column="s.legal_entity")
    found: list[Finding] = []
    deferred_by_invoice = conn.execute(
        "WITH s AS (SELECT invoice_id, legal_entity, currency, sum(amount) AS scheduled, "
        "                  sum(cancelled_amount) AS cancelled "
        "           FROM erp.revenue_schedules GROUP BY 1, 2, 3), "
        "inv AS (SELECT a.invoice_id, sum(l.credit - l.debit) AS net FROM erp.ar_open_items a "
        "        JOIN erp.journal_lines l ON l.entry_id = a.journal_entry_id "
        "        WHERE l.account_code = ANY(%(accounts)s) GROUP BY 1), "
        "cm AS (SELECT c.invoice_id, sum(l.debit - l.credit) AS net FROM erp.ar_credits c "
        "       JOIN erp.journal_lines l ON l.entry_id = c.journal_entry_id "
        "       WHERE l.account_code = ANY(%(accounts)s) GROUP BY 1) "
        "SELECT s.invoice_id, s.currency, s.scheduled, COALESCE(inv.net, 0), s.cancelled, "
        "       COALESCE(cm.net, 0) "
        "FROM s LEFT JOIN inv USING (invoice_id) LEFT JOIN cm USING (invoice_id) "
        f"WHERE {entity} AND {SINCE.format(entry=invoice_entry)} "
        "AND (s.scheduled <> COALESCE(inv.net, 0) "
        "                     OR s.cancelled <> COALESCE(cm.net, 0)) ORDER BY 1",
        p,
    ).fetchall()
    for invoice, c, scheduled, deferred, cancelled, taken_back in deferred_by_invoice:
        if scheduled != deferred:
            found.append(
                Finding(
                    GL_DEFERRED.name,
                    f"invoice {invoice}",
                    f"deferred {fmt(deferred, c)} but its schedule holds {fmt(scheduled, c)}",
                    (f"invoice {invoice}",),
                )
            )
        if cancelled != taken_back:
            found.append(
                Finding(
                    GL_DEFERRED.name,
                    f"invoice {invoice}",
                    f"credit memos took back {fmt(taken_back, c)} of deferred revenue but "
                    f"cancelled {fmt(cancelled, c)} of its schedule",
                    (f"invoice {invoice}",),
                )
            )
    released = conn.execute(
        "WITH s AS (SELECT recognized_entry_id AS entry_id, legal_entity, currency, "
        "                  sum(amount - cancelled_amount) AS released "
        "           FROM erp.revenue_schedules WHERE recognized_entry_id IS NOT NULL "
        "           GROUP BY 1, 2, 3) "
        "SELECT e.idempotency_key, s.currency, s.released, "
        "       COALESCE((SELECT sum(l.debit - l.credit) FROM erp.journal_lines l "
        "                 WHERE l.entry_id = s.entry_id "
        "                 AND l.account_code = ANY(%(accounts)s)), 0) AS net "
        f"FROM s JOIN erp.journal_entries e USING (entry_id) WHERE {entity} "
        "AND (%(since)s::timestamptz IS NULL OR e.posted_at >= %(since)s) ORDER BY 1",
        p,
    ).fetchall()
    found += [
        Finding(
            GL_DEFERRED.name,
            f"{key}",
            f"released {fmt(net, c)} of deferred revenue for schedule rows of {fmt(amount, c)}",
            (key,),
        )
        for key, c, amount, net in released
        if amount != net
    ]
    tied = (
        "SELECT journal_entry_id FROM erp.ar_open_items "
        "UNION ALL SELECT journal_entry_id FROM erp.ar_credits "
        "UNION ALL SELECT recognized_entry_id FROM erp.revenue_schedules "
        "WHERE recognized_entry_id IS NOT NULL"
    )
    for account in accounts:
        found += untied(conn, GL_DEFERRED, account, tied, params)
    return found


def gl_tax(conn: psycopg.Connection, params: dict[str, object]) -> list[Finding]:
    """Per document: the tax the ERP booked on it is the tax billing issued (an invoice) or took
    back (a credit memo, the tax of the line it credits). Documents billing issued that the ERP
    has not posted are the three-way check's; here they count only once posted. The tax is
    what the document's journal posted to all tax accounts: 2200 and those the GL mapping
    names."""
    accounts = sorted({TAX_PAYABLE, *_mapped(conn, "TAX")})
    rows = conn.execute(
        "WITH billed AS ("
        "  SELECT 'invoice ' || i.invoice_id AS document, i.legal_entity, i.currency, "
        "         i.tax_total AS tax, a.journal_entry_id AS entry_id "
        "  FROM billing.invoices i JOIN erp.ar_open_items a USING (invoice_id) "
        "  UNION ALL "
        "  SELECT 'credit memo ' || m.credit_memo_id, i.legal_entity, i.currency, "
        "         -l.tax_amount, c.journal_entry_id "
        "  FROM billing.credit_memos m JOIN billing.invoices i USING (invoice_id) "
        "  JOIN billing.invoice_lines l ON l.invoice_id = m.invoice_id AND l.line_id = m.line_id "
        "  JOIN erp.ar_credits c USING (credit_memo_id)), "
        "posted AS (SELECT l.entry_id, sum(l.credit - l.debit) AS net FROM erp.journal_lines l "
        "           WHERE l.account_code = ANY(%(accounts)s) GROUP BY 1) "
        "SELECT b.document, b.currency, b.tax, COALESCE(p.net, 0) "
        "FROM billed b LEFT JOIN posted p USING (entry_id) "
        f"WHERE b.tax <> COALESCE(p.net, 0) AND {ENTITY.format(column='b.legal_entity')} "
        f"AND {SINCE.format(entry='b.entry_id')} "
        "ORDER BY 1",
        {**params, "accounts": accounts},
    ).fetchall()
    found = [
        Finding(
            GL_TAX.name,
            document,
            f"billing's tax {fmt(tax, c)}, {fmt(net, c)} on {', '.join(accounts)}",
            (document,),
        )
        for document, c, tax, net in rows
    ]
    tied = (
        "SELECT a.journal_entry_id FROM erp.ar_open_items a "
        "JOIN billing.invoices USING (invoice_id) "
        "UNION ALL SELECT c.journal_entry_id FROM erp.ar_credits c "
        "JOIN billing.credit_memos USING (credit_memo_id)"
    )
    for account in accounts:
        found += untied(conn, GL_TAX, account, tied, params)
    return found

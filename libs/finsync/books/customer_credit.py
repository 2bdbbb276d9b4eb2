"""Ledger check of account 2400: customer credit balances, against the ERP's credit ledger.

Per credit document — a credit memo that left credit, an invoice that used it — what its
journal moved on 2400 is what the ledger recorded; per holder (customer, entity, currency),
the balance postings lock and use is the sum of its ledger; and no other journal moves 2400.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from finsync.books.findings import Check, Finding
from finsync.books.ledger import ENTITY, SINCE, untied
from finsync.domain.accounting import CUSTOMER_CREDIT, fmt

GL_CUSTOMER_CREDIT = Check(
    "gl-customer-credit", f"GL {CUSTOMER_CREDIT} equals the customer credit balances held", "ledger"
)
CHECKS = (GL_CUSTOMER_CREDIT,)


def run(conn: psycopg.Connection, entity: str | None, since: datetime | None) -> list[Finding]:
    """Documents posted since `since` (all if None); the holders' balances always in full."""
    if not conn.execute("SELECT to_regclass('erp.customer_credits') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
        return []
    params: dict[str, object] = {"entity": entity, "since": since, "account": CUSTOMER_CREDIT}
    documents = conn.execute(
        "SELECT c.kind, c.document_id, c.currency, c.amount, "
        "       COALESCE(sum(l.credit - l.debit), 0) "
        "FROM erp.customer_credits c LEFT JOIN erp.journal_lines l "
        "  ON l.entry_id = c.journal_entry_id AND l.account_code = %(account)s "
        f"WHERE {ENTITY.format(column='c.legal_entity')} "
        f"AND {SINCE.format(entry='c.journal_entry_id')} "
        "GROUP BY 1, 2, 3, 4 HAVING c.amount <> COALESCE(sum(l.credit - l.debit), 0) "
        "ORDER BY 1, 2",
        params,
    ).fetchall()
    found = []
    for kind, document, c, amount, net in documents:
        scope = f"credit memo {document}" if kind == "CREATED" else f"invoice {document}"
        did = f"held {fmt(amount, c)} as" if kind == "CREATED" else f"used {fmt(-amount, c)} of"
        found.append(
            Finding(
                GL_CUSTOMER_CREDIT.name,
                scope,
                f"{did} customer credit, {fmt(net, c)} credited to {CUSTOMER_CREDIT}",
                (scope,),
            )
        )
    refunds = conn.execute("SELECT to_regclass('erp.refunds') IS NOT NULL").fetchone()[0]  # type: ignore[index]
    if refunds:  # a refund pays credit out (0018): erp.refunds is that part of the ledger
        found += _refunds(conn, params)
    paid_out = (
        "UNION ALL SELECT account_id, legal_entity, currency, -from_credit FROM erp.refunds "
        "WHERE from_credit > 0"
        if refunds
        else ""
    )
    holders = conn.execute(
        "WITH ledger AS (SELECT account_id, legal_entity, currency, sum(amount) AS held "
        "                FROM (SELECT account_id, legal_entity, currency, amount "
        f"                      FROM erp.customer_credits {paid_out}) x GROUP BY 1, 2, 3) "
        "SELECT account_id, legal_entity, currency, COALESCE(b.held, 0), "
        "       COALESCE(ledger.held, 0) "
        "FROM erp.customer_credit_balances b FULL JOIN ledger "
        "  USING (account_id, legal_entity, currency) "
        "WHERE COALESCE(b.held, 0) <> COALESCE(ledger.held, 0) "
        f"AND {ENTITY.format(column='legal_entity')} ORDER BY 1, 2, 3",
        params,
    ).fetchall()
    found += [
        Finding(
            GL_CUSTOMER_CREDIT.name,
            f"customer {account} {e} {c}",
            f"holds {fmt(held, c)} of customer credit, its credit ledger {fmt(ledger, c)}",
            (f"customer {account}",),
        )
        for account, e, c, held, ledger in holders
    ]
    tied = "SELECT journal_entry_id FROM erp.customer_credits"
    if refunds:
        tied += " UNION ALL SELECT journal_entry_id FROM erp.refunds"
    return found + untied(conn, GL_CUSTOMER_CREDIT, CUSTOMER_CREDIT, tied, params)


def _refunds(conn: psycopg.Connection, params: dict[str, object]) -> list[Finding]:
    """Per refund: what its journal debited to 2400 is the credit it paid out."""
    rows = conn.execute(
        "SELECT r.refund_id, r.currency, r.from_credit, COALESCE(sum(l.debit - l.credit), 0) "
        "FROM erp.refunds r LEFT JOIN erp.journal_lines l "
        "  ON l.entry_id = r.journal_entry_id AND l.account_code = %(account)s "
        f"WHERE {ENTITY.format(column='r.legal_entity')} "
        f"AND {SINCE.format(entry='r.journal_entry_id')} "
        "GROUP BY 1, 2, 3 HAVING r.from_credit <> COALESCE(sum(l.debit - l.credit), 0) "
        "ORDER BY 1",
        params,
    ).fetchall()
    return [
        Finding(
            GL_CUSTOMER_CREDIT.name,
            f"refund {refund}",
            f"paid out {fmt(paid, c)} of customer credit, {fmt(net, c)} debited to "
            f"{CUSTOMER_CREDIT}",
            (f"refund {refund}",),
        )
        for refund, c, paid, net in rows
    ]

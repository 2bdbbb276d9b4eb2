"""Ledger checks of refunds and disputes (0018_refunds_disputes.sql).

gl-disputed: 1260 Disputed receivables holds, per legal entity and currency, the amounts of
the disputes still OPENED; each dispute's opening journal debits it with its amount and its
closing journal credits it back; no other journal moves it.

What refunds and lost disputes take back (erp.payment_reversals) is tied journal by journal:
the 2100 and 1200 lines of each refund's or lost dispute's journal are what its document says
it took off unapplied cash and reopened, and what its reversal rows say, payment by payment
and invoice by invoice (ledger.py adds the reopened amounts to each invoice's AR). These are
reported under gl-unapplied-cash and gl-ar.

refund-dispute-booked: every refund and every dispute outcome the gateways published is booked
(refunds and disputes publish nothing of their own, so this is where one that never took
effect shows, with the dead letter that explains it).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import psycopg

from finsync.books.findings import Check, Finding
from finsync.books.ledger import ENTITY, GL_AR, GL_UNAPPLIED, SINCE, untied
from finsync.books.threeway import Held
from finsync.contract.events import DisputeStatus, DisputeUpdated, RefundSettled
from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    DISPUTED_RECEIVABLES,
    UNAPPLIED_CASH,
    fmt,
)

GL_DISPUTED = Check(
    "gl-disputed",
    f"GL {DISPUTED_RECEIVABLES} equals the amounts of the disputes still open",
    "ledger",
)
BOOKED = Check(
    "refund-dispute-booked",
    "every refund and dispute status the gateways published is booked",
    "three-way",
)
CHECKS = (GL_DISPUTED, BOOKED)


def run(conn: psycopg.Connection, entity: str | None, since: datetime | None) -> list[Finding]:
    """Documents posted since `since` (all if None); the balances of 1260 always in full."""
    if not conn.execute("SELECT to_regclass('erp.disputes') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
        return []
    params: dict[str, object] = {"entity": entity, "since": since}
    return gl_disputed(conn, params) + taken_back(conn, params)


def gl_disputed(conn: psycopg.Connection, params: dict[str, object]) -> list[Finding]:
    p = {**params, "account": DISPUTED_RECEIVABLES}
    rows = conn.execute(
        "WITH moves AS ("
        "  SELECT dispute_id, legal_entity, currency, 'opened' AS move, "
        "         opened_entry_id AS entry_id, amount AS expected FROM erp.disputes "
        "  UNION ALL SELECT dispute_id, legal_entity, currency, lower(status), closed_entry_id, "
        "         -amount FROM erp.disputes WHERE closed_entry_id IS NOT NULL) "
        "SELECT m.dispute_id, m.currency, m.move, m.expected, "
        "       COALESCE((SELECT sum(l.debit - l.credit) FROM erp.journal_lines l "
        "                 WHERE l.entry_id = m.entry_id AND l.account_code = %(account)s), 0) "
        f"FROM moves m WHERE {ENTITY.format(column='m.legal_entity')} "
        f"AND {SINCE.format(entry='m.entry_id')} ORDER BY 1, 3",
        p,
    ).fetchall()
    found = [
        Finding(
            GL_DISPUTED.name,
            f"dispute {dispute}",
            f"{move}: should move {DISPUTED_RECEIVABLES} by {fmt(expected, c)}, its journal "
            f"moved it by {fmt(net, c)}",
            (f"dispute {dispute}",),
        )
        for dispute, c, move, expected, net in rows
        if expected != net
    ]
    balances = conn.execute(
        "WITH gl AS (SELECT e.legal_entity, e.currency, sum(l.debit - l.credit) AS net "
        "            FROM erp.journal_lines l JOIN erp.journal_entries e USING (entry_id) "
        "            WHERE l.account_code = %(account)s GROUP BY 1, 2), "
        "open AS (SELECT legal_entity, currency, sum(amount) AS amount, "
        "                (array_agg(dispute_id ORDER BY dispute_id))[1:10] AS disputes "
        "         FROM erp.disputes WHERE status = 'OPENED' GROUP BY 1, 2) "
        "SELECT legal_entity, currency, COALESCE(gl.net, 0), COALESCE(open.amount, 0), "
        "       open.disputes "
        "FROM gl FULL JOIN open USING (legal_entity, currency) "
        "WHERE COALESCE(gl.net, 0) <> COALESCE(open.amount, 0) "
        f"AND {ENTITY.format(column='legal_entity')} ORDER BY 1, 2",
        p,
    ).fetchall()
    found += [
        Finding(
            GL_DISPUTED.name,
            f"{e} {c}",
            f"{fmt(net, c)} on {DISPUTED_RECEIVABLES}, {fmt(amount, c)} in disputes still open",
            tuple(f"dispute {d}" for d in disputes or ()),
        )
        for e, c, net, amount, disputes in balances
    ]
    tied = (
        "SELECT opened_entry_id FROM erp.disputes "
        "UNION ALL SELECT closed_entry_id FROM erp.disputes WHERE closed_entry_id IS NOT NULL"
    )
    return found + untied(conn, GL_DISPUTED, DISPUTED_RECEIVABLES, tied, params)


def taken_back(conn: psycopg.Connection, params: dict[str, object]) -> list[Finding]:
    """Per refund and lost dispute: its journal's 2100 and 1200 debits, its document's figures
    and its reversal rows agree."""
    rows = conn.execute(
        "WITH docs AS ("
        "  SELECT 'REFUND' AS kind, refund_id AS id, legal_entity, currency, "
        "         journal_entry_id AS entry_id, from_unapplied AS unapplied, "
        "         from_invoices AS invoices FROM erp.refunds "
        "  UNION ALL SELECT 'DISPUTE', dispute_id, legal_entity, currency, closed_entry_id, "
        "         lost_to_unapplied, lost_to_invoices FROM erp.disputes WHERE status = 'LOST'), "
        "rv AS (SELECT document_kind AS kind, document_id AS id, "
        "              sum(amount) FILTER (WHERE invoice_id IS NULL) AS unapplied, "
        "              sum(amount) FILTER (WHERE invoice_id IS NOT NULL) AS invoices "
        "       FROM erp.payment_reversals GROUP BY 1, 2), "
        "gl AS (SELECT l.entry_id, "
        "              sum(l.debit - l.credit) FILTER (WHERE l.account_code = %(unapplied)s) "
        "                AS unapplied, "
        "              sum(l.debit - l.credit) FILTER (WHERE l.account_code = %(ar)s) "
        "                AS invoices "
        "       FROM erp.journal_lines l WHERE l.entry_id IN (SELECT entry_id FROM docs) "
        "       GROUP BY 1) "
        "SELECT lower(d.kind) || ' ' || d.id, d.currency, "
        "       d.unapplied, COALESCE(rv.unapplied, 0), COALESCE(gl.unapplied, 0), "
        "       d.invoices, COALESCE(rv.invoices, 0), COALESCE(gl.invoices, 0) "
        "FROM docs d LEFT JOIN rv USING (kind, id) LEFT JOIN gl USING (entry_id) "
        f"WHERE {ENTITY.format(column='d.legal_entity')} "
        f"AND {SINCE.format(entry='d.entry_id')} ORDER BY 1",
        {**params, "unapplied": UNAPPLIED_CASH, "ar": ACCOUNTS_RECEIVABLE},
    ).fetchall()
    found: list[Finding] = []
    for document, c, *figures in rows:
        for check, account, what, (said, rows_say, booked) in (
            (GL_UNAPPLIED, UNAPPLIED_CASH, "took off unapplied cash", figures[:3]),
            (GL_AR, ACCOUNTS_RECEIVABLE, "reopened on invoices", figures[3:]),
        ):
            if not said == rows_say == booked:
                found.append(_finding(check, document, c, what, said, rows_say, account, booked))
    return found


def _finding(
    check: Check,
    document: str,
    c: str,
    what: str,
    said: Decimal,
    rows_say: Decimal,
    account: str,
    booked: Decimal,
) -> Finding:
    return Finding(
        check.name,
        document,
        f"{what}: {fmt(said, c)} by the document, {fmt(rows_say, c)} payment by payment, "
        f"{fmt(booked, c)} debited to {account}",
        (document,),
    )


def booked(
    conn: psycopg.Connection,
    refunds: list[RefundSettled],
    disputes: list[DisputeUpdated],
    held: Held,
) -> list[Finding]:
    """Each refund published (its last version) is in erp.refunds for its amount; each dispute's
    last published status is its status in erp.disputes (an OPENED published after its outcome
    is late, not a break)."""
    if not conn.execute("SELECT to_regclass('erp.disputes') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
        return []
    found: list[Finding] = []
    in_erp = {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            "SELECT refund_id, amount, currency FROM erp.refunds WHERE refund_id = ANY(%s)",
            (sorted(r.refund_id for r in refunds),),
        )
    }
    for r in sorted(refunds, key=lambda r: r.refund_id):
        got = in_erp.get(r.refund_id)
        if got != (r.amount, r.currency):
            what = f"refunded {fmt(r.amount, r.currency)}, " + (
                "not booked in the ERP" if got is None else f"booked as {fmt(*got)}"
            )
            why = held("payment-settler", r.refund_id) if got is None else ""
            scope = f"refund {r.refund_id}"
            found.append(Finding(BOOKED.name, scope, what, (scope,), why))
    statuses: dict[str, str] = dict(
        conn.execute(
            "SELECT dispute_id, status FROM erp.disputes WHERE dispute_id = ANY(%s)",
            (sorted(d.dispute_id for d in disputes),),
        ).fetchall()
    )
    for d in sorted(disputes, key=lambda d: d.dispute_id):
        status = statuses.get(d.dispute_id)
        if status is None or (d.status != DisputeStatus.OPENED and status != d.status):
            what = f"{d.status} at the gateway, " + (
                "not booked in the ERP" if status is None else f"{status} in the ERP"
            )
            why = held("payment-settler", d.dispute_id)
            scope = f"dispute {d.dispute_id}"
            found.append(Finding(BOOKED.name, scope, what, (scope,), why))
    return found

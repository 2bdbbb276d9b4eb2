"""Ledger checks of the gateway's money: 1010 Gateway clearing, and 1090 Payout differences.

1010 holds what gateways owe us: payments booked to clearing (net of fees), less refunds and
disputes opened (amount and fee), plus disputes won (amount), less what payouts matched. Per
document, its journal moved 1010 by exactly that; per entity and currency, 1010 is what is in
transit; and no other journal moves it.

1090 holds what payouts brought that no document explains. Each payout booked as a MISMATCH is a
break of its own, naming its differences, until someone resolves it; per payout, its journal
credited 1090 with its differences; per entity and currency, 1090 is the sum of them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import psycopg

from finsync.books.findings import Check, Finding
from finsync.books.ledger import ENTITY, SINCE, untied
from finsync.domain.accounting import GATEWAY_CLEARING, PAYOUT_DIFFERENCES, fmt

GL_CLEARING = Check(
    "gl-clearing", f"GL {GATEWAY_CLEARING} equals the gateway money in transit", "ledger"
)
PAYOUTS = Check(
    "payouts", f"payouts match their documents; GL {PAYOUT_DIFFERENCES} holds the rest", "ledger"
)
CHECKS = (GL_CLEARING, PAYOUTS)


def _exists(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def _movements(conn: psycopg.Connection) -> str:
    """Each document's journal and what it should move on 1010 (debit positive), with the
    document's entity and currency; tables of parts not installed are left out."""
    parts = [
        "SELECT journal_entry_id AS entry_id, 'payment ' || payment_id AS document, legal_entity, "
        "currency, CASE WHEN cash_account = %(account)s THEN amount - fee_amount ELSE 0 END "
        "AS expected FROM erp.payments"
    ]
    if _exists(conn, "erp.refunds"):
        parts.append(
            "SELECT journal_entry_id, 'refund ' || refund_id, legal_entity, currency, "
            "-(amount + fee_amount) FROM erp.refunds"
        )
    if _exists(conn, "erp.disputes"):
        parts.append(
            "SELECT opened_entry_id, 'dispute ' || dispute_id || ' opened', legal_entity, "
            "currency, -(amount + fee_amount) FROM erp.disputes"
        )
        parts.append(
            "SELECT closed_entry_id, 'dispute ' || dispute_id || ' ' || lower(status), "
            "legal_entity, currency, CASE status WHEN 'WON' THEN amount ELSE 0 END "
            "FROM erp.disputes WHERE closed_entry_id IS NOT NULL"
        )
    if _exists(conn, "erp.payouts"):
        parts.append(
            "SELECT journal_entry_id, 'payout ' || payout_id, legal_entity, currency, "
            "-matched_amount FROM erp.payouts"
        )
    return " UNION ALL ".join(parts)


def run(conn: psycopg.Connection, entity: str | None, since: datetime | None) -> list[Finding]:
    """Documents posted since `since` (all if None); the balances always in full."""
    if not _exists(conn, "erp.payment_applications"):  # before 0017 there is no clearing
        return []
    params: dict[str, object] = {"entity": entity, "since": since}
    return gl_clearing(conn, params) + payouts(conn, params)


def gl_clearing(conn: psycopg.Connection, params: dict[str, object]) -> list[Finding]:
    entity = params["entity"]
    assert entity is None or isinstance(entity, str)
    p = {**params, "account": GATEWAY_CLEARING}
    docs = _movements(conn)
    moved = (
        "SELECT entry_id, sum(debit - credit) AS net FROM erp.journal_lines "
        "WHERE account_code = %(account)s GROUP BY 1"
    )
    rows = conn.execute(
        f"WITH d AS ({docs}), m AS ({moved}) "
        "SELECT d.document, d.currency, d.expected, COALESCE(m.net, 0) "
        "FROM d LEFT JOIN m USING (entry_id) WHERE d.expected <> COALESCE(m.net, 0) "
        f"AND {ENTITY.format(column='d.legal_entity')} AND {SINCE.format(entry='d.entry_id')} "
        "ORDER BY 1",
        p,
    ).fetchall()
    found = [
        Finding(
            GL_CLEARING.name,
            document,
            f"should move {fmt(expected, c)} on {GATEWAY_CLEARING}, its journal moved "
            f"{fmt(net, c)}",
            (document,),
        )
        for document, c, expected, net in rows
    ]
    found += [
        Finding(
            GL_CLEARING.name,
            f"{e} {c}",
            f"{fmt(transit, c)} in transit by its documents, {fmt(gl, c)} on {GATEWAY_CLEARING}",
        )
        for (e, c), (transit, gl) in in_transit(conn, entity).items()
        if transit != gl
    ]
    tied = f"SELECT entry_id FROM ({docs}) d"
    return found + untied(conn, GL_CLEARING, GATEWAY_CLEARING, tied, p)


def in_transit(
    conn: psycopg.Connection, entity: str | None = None
) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """Per legal entity and currency: (what is in transit by the documents, the GL balance of
    1010). The books tie when the two are equal."""
    rows = conn.execute(
        f"WITH d AS ({_movements(conn)}), "
        "transit AS (SELECT legal_entity, currency, sum(expected) AS amount FROM d GROUP BY 1, 2), "
        "gl AS (SELECT e.legal_entity, e.currency, sum(l.debit - l.credit) AS amount "
        "       FROM erp.journal_lines l JOIN erp.journal_entries e USING (entry_id) "
        "       WHERE l.account_code = %(account)s GROUP BY 1, 2) "
        "SELECT legal_entity, currency, COALESCE(transit.amount, 0), COALESCE(gl.amount, 0) "
        "FROM transit FULL JOIN gl USING (legal_entity, currency) "
        f"WHERE {ENTITY.format(column='legal_entity')} ORDER BY 1, 2",
        {"account": GATEWAY_CLEARING, "entity": entity},
    ).fetchall()
    return {(e, c): (transit, gl) for e, c, transit, gl in rows}


def payouts(conn: psycopg.Connection, params: dict[str, object]) -> list[Finding]:
    if not _exists(conn, "erp.payouts"):
        return []
    p = {**params, "account": PAYOUT_DIFFERENCES}
    entity, since = ENTITY.format(column="o.legal_entity"), SINCE.format(entry="o.journal_entry_id")
    rows = conn.execute(
        "SELECT o.payout_id, o.currency, o.difference_amount, d.type, d.reference_id, d.amount, "
        "       d.reason "
        "FROM erp.payouts o JOIN erp.payout_differences d USING (payout_id) "
        f"WHERE o.status = 'MISMATCH' AND {entity} AND {since} ORDER BY o.payout_id, d.n",
        p,
    ).fetchall()
    mismatched: dict[str, tuple[str, Decimal, list[str]]] = {}
    for payout, c, total, kind, reference, amount, reason in rows:
        what = f"{kind} {reference}" if reference else kind
        mismatched.setdefault(payout, (c, total, []))[2].append(
            f"{what} {fmt(amount, c)}: {reason}"
        )
    found = [
        Finding(
            PAYOUTS.name,
            f"payout {payout}",
            f"{fmt(total, c)} on {PAYOUT_DIFFERENCES} unresolved: {'; '.join(why)}",
            (f"payout {payout}",),
        )
        for payout, (c, total, why) in mismatched.items()
    ]
    booked = conn.execute(
        "SELECT o.payout_id, o.currency, o.difference_amount, "
        "       COALESCE((SELECT sum(d.amount) FROM erp.payout_differences d "
        "                 WHERE d.payout_id = o.payout_id), 0), "
        "       COALESCE((SELECT sum(l.credit - l.debit) FROM erp.journal_lines l "
        "                 WHERE l.entry_id = o.journal_entry_id "
        "                 AND l.account_code = %(account)s), 0) AS net "
        f"FROM erp.payouts o WHERE {entity} AND {since} ORDER BY 1",
        p,
    ).fetchall()
    found += [
        Finding(
            PAYOUTS.name,
            f"payout {payout}",
            f"differences of {fmt(listed, c)} ({fmt(amount, c)} recorded), its journal credited "
            f"{fmt(net, c)} to {PAYOUT_DIFFERENCES}",
            (f"payout {payout}",),
        )
        for payout, c, amount, listed, net in booked
        if not amount == listed == net
    ]
    totals = conn.execute(
        "WITH unresolved AS (SELECT o.legal_entity, o.currency, sum(d.amount) AS amount "
        "              FROM erp.payouts o JOIN erp.payout_differences d USING (payout_id) "
        "              GROUP BY 1, 2), "
        "gl AS (SELECT e.legal_entity, e.currency, sum(l.credit - l.debit) AS amount "
        "       FROM erp.journal_lines l JOIN erp.journal_entries e USING (entry_id) "
        "       WHERE l.account_code = %(account)s GROUP BY 1, 2) "
        "SELECT legal_entity, currency, COALESCE(unresolved.amount, 0), COALESCE(gl.amount, 0) "
        "FROM unresolved FULL JOIN gl USING (legal_entity, currency) "
        "WHERE COALESCE(unresolved.amount, 0) <> COALESCE(gl.amount, 0) "
        f"AND {ENTITY.format(column='legal_entity')} ORDER BY 1, 2",
        p,
    ).fetchall()
    found += [
        Finding(
            PAYOUTS.name,
            f"{e} {c}",
            f"payout differences of {fmt(open_, c)} unresolved, {fmt(gl, c)} on "
            f"{PAYOUT_DIFFERENCES}",
        )
        for e, c, open_, gl in totals
    ]
    tied = "SELECT journal_entry_id FROM erp.payouts"
    return found + untied(conn, PAYOUTS, PAYOUT_DIFFERENCES, tied, p)

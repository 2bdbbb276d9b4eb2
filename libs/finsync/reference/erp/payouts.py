"""Payouts in the reference ERP (erp.payouts, erp.payout_items, erp.payout_differences,
0021_payouts.sql), and the documents in gateway clearing they match: payments (0017), refunds and
disputes (0018).

Payouts are few: they are written at once, not buffered, so the next payout of the batch sees
which documents this one took.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import psycopg

from finsync.contract.events import PayoutItemType
from finsync.domain.accounting import GATEWAY_CLEARING
from finsync.ports.payouts import ClearingDocument, ClearingKind, PayoutBooking

# The payout that took a document, if any.
_PAID_OUT_BY = (
    "(SELECT i.payout_id FROM erp.payout_items i WHERE i.matched_kind = %s AND i.matched_id = {id})"
)


def _exists(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def clearing_documents(
    conn: psycopg.Connection, references: Sequence[tuple[PayoutItemType, str]]
) -> list[ClearingDocument]:
    """The documents named, locked (FOR UPDATE) until the transaction ends."""
    ids = {t: sorted({ref for kind, ref in references if kind is t}) for t in PayoutItemType}
    found: list[ClearingDocument] = []
    if ids[PayoutItemType.PAYMENT]:
        rows = conn.execute(
            "SELECT p.payment_id, p.legal_entity, p.currency, p.amount - p.fee_amount, "
            f"p.cash_account = %s, {_PAID_OUT_BY.format(id='p.payment_id')} "
            "FROM erp.payments p WHERE p.payment_id = ANY(%s) ORDER BY 1 FOR UPDATE",
            (GATEWAY_CLEARING, ClearingKind.PAYMENT.value, ids[PayoutItemType.PAYMENT]),
        ).fetchall()
        found += [
            ClearingDocument(ClearingKind.PAYMENT, p, e, c, net, in_clearing, paid_out_by)
            for p, e, c, net, in_clearing, paid_out_by in rows
        ]
    if ids[PayoutItemType.REFUND] and _exists(conn, "erp.refunds"):
        rows = conn.execute(
            "SELECT r.refund_id, r.legal_entity, r.currency, -(r.amount + r.fee_amount), "
            f"{_PAID_OUT_BY.format(id='r.refund_id')} "
            "FROM erp.refunds r WHERE r.refund_id = ANY(%s) ORDER BY 1 FOR UPDATE",
            (ClearingKind.REFUND.value, ids[PayoutItemType.REFUND]),
        ).fetchall()
        found += [
            ClearingDocument(ClearingKind.REFUND, r, e, c, net, True, paid_out_by)
            for r, e, c, net, paid_out_by in rows
        ]
    if ids[PayoutItemType.DISPUTE] and _exists(conn, "erp.disputes"):
        rows = conn.execute(
            "SELECT d.dispute_id, d.legal_entity, d.currency, d.amount, d.fee_amount, d.status, "
            f"{_PAID_OUT_BY.format(id='d.dispute_id')}, {_PAID_OUT_BY.format(id='d.dispute_id')} "
            "FROM erp.disputes d WHERE d.dispute_id = ANY(%s) ORDER BY 1 FOR UPDATE",
            (
                ClearingKind.DISPUTE_OPENED.value,
                ClearingKind.DISPUTE_WON.value,
                ids[PayoutItemType.DISPUTE],
            ),
        ).fetchall()
        for d, e, c, amount, fee, status, opened_by, won_by in rows:
            found.append(
                ClearingDocument(
                    ClearingKind.DISPUTE_OPENED,
                    d,
                    e,
                    c,
                    -(amount + fee),
                    paid_out_by=opened_by,
                    outcome_pending=status == "OPENED",
                )
            )
            if status == "WON":
                won: Decimal = amount
                found.append(ClearingDocument(ClearingKind.DISPUTE_WON, d, e, c, won, True, won_by))
    return found


def book(conn: psycopg.Connection, b: PayoutBooking, entry_id: str) -> None:
    """After the payout's journal is written (the rows refer to it)."""
    conn.execute(
        "INSERT INTO erp.payouts (payout_id, legal_entity, currency, amount, arrival_date, "
        "status, matched_amount, fee_amount, difference_amount, journal_entry_id) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            b.payout_id,
            b.legal_entity,
            b.currency,
            b.amount,
            b.arrival_date,
            b.status.value,
            b.matched_amount,
            b.fee_amount,
            b.difference_amount,
            entry_id,
        ),
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO erp.payout_items (payout_id, line_no, type, reference_id, gross, fee, "
            "net, matched_kind, matched_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    b.payout_id,
                    x.line_no,
                    x.type.value,
                    x.reference_id,
                    x.gross,
                    x.fee,
                    x.net,
                    x.matched.value if x.matched else None,
                    x.reference_id if x.matched else None,
                )
                for x in b.items
            ],
        )
        if b.differences:
            cur.executemany(
                "INSERT INTO erp.payout_differences (payout_id, n, type, reference_id, "
                "expected_net, reported_net, amount, reason) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        b.payout_id,
                        n,
                        d.type.value,
                        d.reference_id,
                        d.expected_net,
                        d.reported_net,
                        d.amount,
                        d.reason,
                    )
                    for n, d in enumerate(b.differences, 1)
                ],
            )

"""Refunds and disputes in the reference ERP (erp.refunds, erp.disputes, erp.payment_reversals:
0018_refunds_disputes.sql), for one unit of work.

Reads lock what they return (FOR UPDATE) until the transaction ends, so two refunds or lost
disputes never take back the same cash. Writes go at once, not buffered: the adapter flushes
the journal they refer to first. Refunds and disputes are few next to payments.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import psycopg

from finsync.ports.erp import (
    BookedPayment,
    CreditHolder,
    Dispute,
    DisputeLoss,
    PaidInvoice,
    RefundBooking,
    Reversal,
)

# What the payment applied to each invoice: its applications (0017), at settlement and later.
_APPLIED = (
    "SELECT invoice_id, applied_amount, applied_at FROM erp.payment_applications "
    "WHERE payment_id = %(payment)s AND applied_amount > 0"
)


class CashMovements:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def payment(self, payment_id: str) -> BookedPayment | None:
        row = self.conn.execute(
            "SELECT payment_id, account_id, legal_entity, currency, amount, unapplied_open, "
            "review_reason FROM erp.payments WHERE payment_id = %s FOR UPDATE",
            (payment_id,),
        ).fetchone()
        return None if row is None else BookedPayment(*row)

    def unapplied(self, holder: CreditHolder, first: str | None) -> list[tuple[str, Decimal]]:
        # The refunded payment's cash is all refundable; another payment's, less what it keeps
        # earmarked for an invoice not posted yet (a prepayment the customer meant for it).
        rows = self.conn.execute(
            "SELECT payment_id, free FROM (SELECT p.payment_id, p.settled_at, "
            "  CASE WHEN p.payment_id IS NOT DISTINCT FROM %(first)s THEN p.unapplied_open "
            "  ELSE p.unapplied_open - COALESCE((SELECT sum(m.amount) FROM erp.payment_earmarks m "
            "    WHERE m.payment_id = p.payment_id AND NOT m.applied), 0) END AS free "
            "  FROM erp.payments p WHERE p.account_id = %(account)s "
            "  AND p.legal_entity = %(entity)s AND p.currency = %(currency)s "
            "  AND p.unapplied_open > 0 AND p.review_reason IS NULL FOR UPDATE OF p) x "
            "WHERE free > 0 "
            "ORDER BY payment_id IS NOT DISTINCT FROM %(first)s DESC, settled_at, payment_id",
            {
                "account": holder.account_id,
                "entity": holder.legal_entity,
                "currency": holder.currency,
                "first": first,
            },
        ).fetchall()
        return [(p, amount) for p, amount in rows]

    def paid_invoices(self, payment_id: str) -> list[PaidInvoice]:
        rows = self.conn.execute(
            f"WITH applied AS ({_APPLIED}), "
            "taken AS (SELECT invoice_id, sum(amount) AS amount FROM erp.payment_reversals "
            "          WHERE payment_id = %(payment)s AND invoice_id IS NOT NULL GROUP BY 1) "
            "SELECT a.invoice_id, a.applied_amount - COALESCE(t.amount, 0), "
            "       EXISTS (SELECT 1 FROM erp.ar_credits c WHERE c.invoice_id = a.invoice_id) "
            "FROM applied a LEFT JOIN taken t USING (invoice_id) "
            "WHERE a.applied_amount > COALESCE(t.amount, 0) "
            "ORDER BY a.applied_at DESC, a.invoice_id DESC",
            {"payment": payment_id},
        ).fetchall()
        invoices = sorted(r[0] for r in rows)
        if invoices:  # in one order, so two transactions never wait on each other
            self.conn.execute(
                "SELECT 1 FROM erp.ar_open_items WHERE invoice_id = ANY(%s) "
                "ORDER BY invoice_id FOR UPDATE",
                (invoices,),
            )
        return [PaidInvoice(payment_id, i, amount, credited) for i, amount, credited in rows]

    def book_refund(self, r: RefundBooking, entry_id: str) -> None:
        self.conn.execute(
            "INSERT INTO erp.refunds (refund_id, payment_id, account_id, legal_entity, currency, "
            "amount, fee_amount, from_credit, from_unapplied, from_invoices, journal_entry_id, "
            "refunded_at, gateway_reference) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                r.refund_id,
                r.payment_id,
                r.account_id,
                r.legal_entity,
                r.currency,
                r.amount,
                r.fee_amount,
                r.from_credit,
                r.from_unapplied,
                r.from_invoices,
                entry_id,
                r.refunded_at,
                r.gateway_reference,
            ),
        )
        self._take_back("REFUND", r.refund_id, r.reversals, entry_id)

    def dispute(self, dispute_id: str) -> Dispute | None:
        row = self.conn.execute(
            "SELECT dispute_id, payment_id, account_id, legal_entity, currency, amount, "
            "fee_amount, status, opened_at, reason FROM erp.disputes WHERE dispute_id = %s "
            "FOR UPDATE",
            (dispute_id,),
        ).fetchone()
        return None if row is None else Dispute(*row)

    def open_dispute(self, d: Dispute, entry_id: str) -> None:
        self.conn.execute(
            "INSERT INTO erp.disputes (dispute_id, payment_id, account_id, legal_entity, "
            "currency, amount, fee_amount, status, reason, opened_entry_id, opened_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, 'OPENED', %s, %s, %s)",
            (
                d.dispute_id,
                d.payment_id,
                d.account_id,
                d.legal_entity,
                d.currency,
                d.amount,
                d.fee_amount,
                d.reason,
                entry_id,
                d.opened_at,
            ),
        )

    def close_dispute(
        self,
        dispute_id: str,
        status: str,
        closed_at: datetime,
        entry_id: str,
        loss: DisputeLoss | None,
    ) -> None:
        reversals = loss.reversals if loss else ()
        closed = self.conn.execute(
            "UPDATE erp.disputes SET status = %(status)s, closed_entry_id = %(entry)s, "
            "closed_at = %(at)s, outcome_policy = %(policy)s, "
            "lost_to_unapplied = %(unapplied)s, lost_to_invoices = %(invoices)s, "
            "lost_written_off = %(written_off)s "
            "WHERE dispute_id = %(dispute)s AND status = 'OPENED' RETURNING 1",
            {
                "status": status,
                "entry": entry_id,
                "at": closed_at,
                "policy": loss.policy if loss else None,
                "unapplied": sum((x.amount for x in reversals if x.invoice_id is None), Decimal(0)),
                "invoices": sum((x.amount for x in reversals if x.invoice_id), Decimal(0)),
                "written_off": loss.written_off if loss else Decimal(0),
                "dispute": dispute_id,
            },
        ).fetchone()
        if closed is None:
            raise RuntimeError(f"dispute {dispute_id} is not open: it cannot be {status}")
        self._take_back("DISPUTE", dispute_id, reversals, entry_id)

    def _take_back(
        self, kind: str, document_id: str, reversals: Sequence[Reversal], entry_id: str
    ) -> None:
        """Take each reversal off the payment's unapplied cash, or reopen the invoice; the
        amounts were read (and locked) in this transaction, so falling short is a bug."""
        for x in reversals:
            if x.invoice_id is None:
                done = self.conn.execute(
                    "UPDATE erp.payments SET unapplied_open = unapplied_open - %(amount)s "
                    "WHERE payment_id = %(payment)s AND unapplied_open >= %(amount)s RETURNING 1",
                    {"amount": x.amount, "payment": x.payment_id},
                ).fetchone()
            else:
                done = self.conn.execute(
                    "UPDATE erp.ar_open_items SET open_amount = open_amount + %(amount)s, "
                    "paid_amount = paid_amount - %(amount)s "
                    "WHERE invoice_id = %(invoice)s AND paid_amount >= %(amount)s RETURNING 1",
                    {"amount": x.amount, "invoice": x.invoice_id},
                ).fetchone()
            if done is None:
                where = f"invoice {x.invoice_id}" if x.invoice_id else "its unapplied cash"
                raise RuntimeError(
                    f"{kind.lower()} {document_id} cannot take {x.amount} of payment "
                    f"{x.payment_id} back from {where}: it has less"
                )
        if reversals:
            with self.conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO erp.payment_reversals (document_kind, document_id, payment_id, "
                    "invoice_id, amount, journal_entry_id) VALUES (%s, %s, %s, %s, %s, %s)",
                    [
                        (kind, document_id, x.payment_id, x.invoice_id, x.amount, entry_id)
                        for x in reversals
                    ],
                )

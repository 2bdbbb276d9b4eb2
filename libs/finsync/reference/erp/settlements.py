"""Settled payments in the reference ERP (erp.payments), for one unit of work: the invoices they
pay are reduced at once, so the next payment for an invoice in the batch reads what is left;
the payment rows are written by flush(), with the adapter's other buffered writes."""

from __future__ import annotations

import psycopg

from finsync.ports.erp import CashApplication, InvoiceApplication


class Settlements:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._rows: list[tuple[object, ...]] = []

    def reduce_receivables(self, a: CashApplication) -> None:
        """Take what the payment settles off each invoice it pays."""
        each = a.applications or (
            (InvoiceApplication(a.invoice_id, a.applied_amount, a.written_off_amount),)
            if a.invoice_id is not None and a.settles
            else ()
        )
        for x in each:
            settled = self.conn.execute(
                "UPDATE erp.ar_open_items SET open_amount = open_amount - %s, "
                "paid_amount = paid_amount + %s, written_off_amount = written_off_amount + %s "
                "WHERE invoice_id = %s AND open_amount >= %s RETURNING open_amount",
                (x.settles, x.applied_amount, x.written_off_amount, x.invoice_id, x.settles),
            ).fetchone()
            if settled is None:
                raise RuntimeError(
                    f"payment {a.payment_id} would settle more than invoice {x.invoice_id} has open"
                )

    def add(self, a: CashApplication, entry_id: str) -> None:
        self._rows.append(
            (
                a.payment_id,
                a.account_id,
                a.customer_id,
                a.invoice_id,
                a.legal_entity,
                a.currency,
                a.amount,
                a.fee_amount,
                a.applied_amount,
                a.written_off_amount,
                a.unapplied_amount,
                a.status.value,
                entry_id,
                a.settled_at,
                a.method,
                a.gateway_reference,
                a.cash_account,
                a.unapplied_amount,  # all of it still held
                a.review_reason,
                a.cross and a.cross.currency,
                a.cross and a.cross.amount,
                a.cross and a.cross.fee_amount,
                a.cross and a.cross.rate,
            )
        )

    def flush(self, cur: psycopg.Cursor) -> None:
        """After the journals the rows refer to."""
        if self._rows:
            cur.executemany(
                "INSERT INTO erp.payments (payment_id, account_id, customer_id, invoice_id, "
                "legal_entity, currency, amount, fee_amount, applied_amount, "
                "written_off_amount, unapplied_amount, status, journal_entry_id, settled_at, "
                "method, gateway_reference, cash_account, unapplied_open, review_reason, "
                "original_currency, original_amount, original_fee_amount, cross_rate) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s, %s, %s, %s, %s)",
                self._rows,
            )
        self._rows = []

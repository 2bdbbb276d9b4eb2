"""Cash a payment holds after it settled, in the reference ERP (erp.payments.unapplied_open,
erp.payment_applications, erp.payment_earmarks: 0017_cash_lifecycle.sql), for one unit of work.

A payment for an invoice not posted yet earmarks its cash for it. Two transactions must never
miss each other: the payment earmarks under an exclusive lock, which every invoice posting
takes shared once per unit of work before it asks which invoices have earmarks. So a posting
either sees the earmark, or the payment, waiting for the posting's transaction, sees the
invoice posted and applies its cash at once.

Most invoices have no earmark and most holders no unapplied cash: which do is asked once per
unit of work (one statement each), so their postings stay buffered. Applying held cash is rare
and done at once, with the payment rows locked (FOR UPDATE), so a refund or another application
never uses the same cash twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from finsync.domain.cash import HeldCash
from finsync.ports.erp import (
    CashApplication,
    CreditHolder,
    EarmarkedCash,
    HeldCashApplication,
    InvoiceApplication,
    OpenItem,
)

EARMARK_LOCK = "SELECT pg_advisory_xact_lock{mode}(hashtext('finsync.erp.payment_earmarks'))"
AT_ONCE = 10_000  # invoices or holders read at once per unit of work; with more, each asks

# What a payment has not applied yet and may still be applied by the policy: its unapplied
# cash less what it earmarked for invoices not posted.
AVAILABLE = (
    "p.unapplied_open - COALESCE((SELECT sum(m.amount) FROM erp.payment_earmarks m "
    "WHERE m.payment_id = p.payment_id AND NOT m.applied), 0)"
)


class HeldCashStore:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._waiting: frozenset[str] | None = None  # invoices with earmarks; None: too many
        self._holders: frozenset[CreditHolder] | None = None  # with cash; None: too many
        self._asked = False
        self._rows: list[tuple[object, ...]] = []  # settlement applications, after payments
        self._earmarks: list[tuple[object, ...]] = []

    # Settlement: written by flush() after the payment row they refer to.
    def settle(self, a: CashApplication, entry_id: str) -> None:
        applications = a.applications or (
            (InvoiceApplication(a.invoice_id, a.applied_amount, a.written_off_amount),)
            if a.invoice_id is not None and a.settles
            else ()
        )
        for x in applications:
            self._rows.append(
                (a.payment_id, x.invoice_id, x.applied_amount, x.written_off_amount, entry_id)
            )
        self._earmarks += [(a.payment_id, e.invoice_id, e.amount) for e in a.earmarks]

    def flush(self, cur: psycopg.Cursor) -> None:
        if self._rows:
            cur.executemany(
                "INSERT INTO erp.payment_applications (payment_id, invoice_id, kind, "
                "applied_amount, written_off_amount, journal_entry_id) "
                "VALUES (%s, %s, 'SETTLEMENT', %s, %s, %s)",
                self._rows,
            )
        if self._earmarks:
            cur.executemany(
                "INSERT INTO erp.payment_earmarks (payment_id, invoice_id, amount) "
                "VALUES (%s, %s, %s)",
                self._earmarks,
            )
        self._rows, self._earmarks = [], []

    def lock_for_earmark(self) -> None:
        """Wait for invoice postings in flight; hold them off until this transaction ends."""
        self.conn.execute(EARMARK_LOCK.format(mode=""))

    def _ask(self) -> None:
        if self._asked:
            return
        self.conn.execute(EARMARK_LOCK.format(mode="_shared"))
        waiting = self.conn.execute(
            "SELECT DISTINCT invoice_id FROM erp.payment_earmarks WHERE NOT applied LIMIT %s",
            (AT_ONCE + 1,),
        ).fetchall()
        self._waiting = None if len(waiting) > AT_ONCE else frozenset(r[0] for r in waiting)
        holders = self.conn.execute(
            "SELECT DISTINCT account_id, legal_entity, currency FROM erp.payments "
            "WHERE unapplied_open > 0 AND review_reason IS NULL LIMIT %s",
            (AT_ONCE + 1,),
        ).fetchall()
        many = len(holders) > AT_ONCE
        self._holders = None if many else frozenset(CreditHolder(*r) for r in holders)
        self._asked = True

    def may_have_earmarks(self, invoice_id: str) -> bool:
        """Whether cash was earmarked for the invoice when this unit of work first asked: most
        invoices have none, and their postings stay buffered."""
        self._ask()
        return self._waiting is None or invoice_id in self._waiting

    def may_hold(self, holder: CreditHolder) -> bool:
        """Whether the holder had unapplied cash when this unit of work first asked. (Cash
        committed since is used by its next invoice instead.)"""
        self._ask()
        return self._holders is None or holder in self._holders

    def earmarked(self, invoice_id: str) -> list[EarmarkedCash]:
        if not self.may_have_earmarks(invoice_id):
            return []
        rows = self.conn.execute(
            "SELECT p.payment_id, p.account_id, p.customer_id, p.legal_entity, p.currency, "
            "       LEAST(m.amount, p.unapplied_open), p.unapplied_open "
            "FROM erp.payment_earmarks m JOIN erp.payments p USING (payment_id) "
            "WHERE m.invoice_id = %s AND NOT m.applied "
            "ORDER BY p.settled_at, p.payment_id FOR UPDATE OF p",
            (invoice_id,),
        ).fetchall()
        return [EarmarkedCash(*r) for r in rows]

    def held(self, holder: CreditHolder) -> list[HeldCash]:
        if not self.may_hold(holder):
            return []
        rows = self.conn.execute(
            f"SELECT p.payment_id, p.settled_at, {AVAILABLE}, p.unapplied_open FROM erp.payments p "
            "WHERE p.account_id = %s AND p.legal_entity = %s AND p.currency = %s "
            "AND p.unapplied_open > 0 AND p.review_reason IS NULL "
            "ORDER BY p.settled_at, p.payment_id FOR UPDATE OF p",
            (holder.account_id, holder.legal_entity, holder.currency),
        ).fetchall()
        return [HeldCash(*r) for r in rows if r[2] > 0]

    def open_items(self, holder: CreditHolder) -> list[OpenItem]:
        rows = self.conn.execute(
            "SELECT invoice_id, invoice_number, account_id, legal_entity, currency, issued_on, "
            "due_on, original_amount, open_amount FROM erp.ar_open_items "
            "WHERE account_id = %s AND legal_entity = %s AND currency = %s AND open_amount > 0 "
            "ORDER BY due_on, issued_on, invoice_id FOR UPDATE",
            (holder.account_id, holder.legal_entity, holder.currency),
        ).fetchall()
        return [OpenItem(*r) for r in rows]

    def applied_pairs(self, payment_ids: Sequence[str]) -> frozenset[tuple[str, str]]:
        rows = self.conn.execute(
            "SELECT payment_id, invoice_id FROM erp.payment_applications "
            "WHERE payment_id = ANY(%s)",
            (list(payment_ids),),
        ).fetchall()
        return frozenset((r[0], r[1]) for r in rows)

    def apply(self, a: HeldCashApplication, entry_id: str) -> None:
        """After the journal is written; the payment row is locked by earmarked() or held()."""
        settles = a.applied_amount + a.written_off_amount
        invoice = self.conn.execute(
            "UPDATE erp.ar_open_items SET open_amount = open_amount - %s, "
            "paid_amount = paid_amount + %s, written_off_amount = written_off_amount + %s "
            "WHERE invoice_id = %s AND open_amount >= %s RETURNING 1",
            (settles, a.applied_amount, a.written_off_amount, a.invoice_id, settles),
        ).fetchone()
        payment = self.conn.execute(
            "UPDATE erp.payments SET unapplied_open = unapplied_open - %s "
            "WHERE payment_id = %s AND unapplied_open >= %s RETURNING 1",
            (a.applied_amount, a.payment_id, a.applied_amount),
        ).fetchone()
        if invoice is None or payment is None:
            raise RuntimeError(
                f"payment {a.payment_id} cannot apply {a.applied_amount} to invoice "
                f"{a.invoice_id}: not that much is open or unapplied"
            )
        self.conn.execute(
            "INSERT INTO erp.payment_applications (payment_id, invoice_id, kind, applied_amount, "
            "written_off_amount, journal_entry_id) VALUES (%s, %s, %s, %s, %s, %s)",
            (
                a.payment_id,
                a.invoice_id,
                a.kind.value,
                a.applied_amount,
                a.written_off_amount,
                entry_id,
            ),
        )
        self.conn.execute(
            "UPDATE erp.payment_earmarks SET applied = true "
            "WHERE payment_id = %s AND invoice_id = %s",
            (a.payment_id, a.invoice_id),
        )

    def hold_for_review(self, payment_id: str, reason: str) -> None:
        self.conn.execute(
            "UPDATE erp.payments SET review_reason = %s "
            "WHERE payment_id = %s AND review_reason IS NULL",
            (reason, payment_id),
        )

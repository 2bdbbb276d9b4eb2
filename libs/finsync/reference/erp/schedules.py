"""The reference ERP's revenue schedules and invoice lines (migration 0012), behind ReferenceErp.

Posting an invoice keeps each of its lines (amount, accounts, what credit memos took) in
`erp.ar_invoice_lines` and each line's monthly schedule in `erp.revenue_schedules`; the rows
are buffered like the adapter's other writes and sent in one statement per table. A credit
memo reads its invoice's lines with their unreleased months locked, so a recognition run
(reference/erp/recognition.py) and a credit memo never take the same amount.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from finsync.domain.revenue import ScheduleRow
from finsync.ports.erp import InvoiceLineBooking, LineBalance, LineCredit
from finsync.runtime import bulk

_LINE_COLUMNS = (
    ("invoice_id", "text"),
    ("line_id", "text"),
    ("amount", "numeric"),
    ("revenue_account", "text"),
    ("deferred_account", "text"),
    ("mapping_rule", "text"),
    ("tax_account", "text"),
    ("tax_rule", "text"),
)
_SCHEDULE_COLUMNS = (
    ("invoice_id", "text"),
    ("line_id", "text"),
    ("period", "date"),
    ("legal_entity", "text"),
    ("currency", "text"),
    ("revenue_account", "text"),
    ("deferred_account", "text"),
    ("amount", "numeric"),
)


class Schedules:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._lines: list[tuple[object, ...]] = []
        self._rows: list[tuple[object, ...]] = []

    def add(
        self,
        invoice_id: str,
        legal_entity: str,
        currency: str,
        lines: Sequence[InvoiceLineBooking],
    ) -> None:
        for x in lines:
            self._lines.append(
                (
                    invoice_id,
                    x.line_id,
                    x.amount,
                    x.revenue_account,
                    x.deferred_account,
                    x.mapping_rule,
                    x.tax_account,
                    x.tax_rule,
                )
            )
            self._rows += [
                (
                    invoice_id,
                    x.line_id,
                    r.period,
                    legal_entity,
                    currency,
                    x.revenue_account,
                    x.deferred_account,
                    r.amount,
                )
                for r in x.schedule
            ]

    def flush(self, cur: psycopg.Cursor[tuple[object, ...]]) -> None:
        """After the AR items, which the lines refer to."""
        bulk.insert(cur, "erp.ar_invoice_lines", _LINE_COLUMNS, self._lines)
        bulk.insert(cur, "erp.revenue_schedules", _SCHEDULE_COLUMNS, self._rows)
        self._lines, self._rows = [], []

    def lines_to_credit(self, invoice_id: str) -> dict[str, LineBalance]:
        """The invoice's lines and their unreleased months, locked until the transaction ends
        (lines first, then months in order, as every writer of them locks)."""
        lines = self.conn.execute(
            "SELECT line_id, amount, credited_amount, revenue_account, deferred_account, "
            "mapping_rule, tax_account, tax_rule "
            "FROM erp.ar_invoice_lines WHERE invoice_id = %s ORDER BY line_id FOR UPDATE",
            (invoice_id,),
        ).fetchall()
        unreleased: dict[str, list[ScheduleRow]] = {}
        for line_id, period, left in self.conn.execute(
            "SELECT line_id, period, amount - cancelled_amount FROM erp.revenue_schedules "
            "WHERE invoice_id = %s AND recognized_entry_id IS NULL "
            "ORDER BY line_id, period FOR UPDATE",
            (invoice_id,),
        ):
            unreleased.setdefault(line_id, []).append(ScheduleRow(period, left))
        return {
            line_id: LineBalance(
                line_id=line_id,
                amount=amount,
                credited=credited,
                revenue_account=revenue,
                deferred_account=deferred,
                unreleased=tuple(unreleased.get(line_id, ())),
                mapping_rule=rule,
                tax_account=tax_account,
                tax_rule=tax_rule,
            )
            for line_id, amount, credited, revenue, deferred, rule, tax_account, tax_rule in lines
        }

    def credit(self, invoice_id: str, credits: Sequence[LineCredit]) -> None:
        """At once, so the next credit memo of this invoice in the batch reads what is left."""
        if not credits:
            return
        self.conn.execute(
            "UPDATE erp.ar_invoice_lines l SET credited_amount = l.credited_amount + c.amount "
            "FROM unnest(%s::text[], %s::numeric[]) AS c(line_id, amount) "
            "WHERE l.invoice_id = %s AND l.line_id = c.line_id",
            ([c.line_id for c in credits], [c.amount for c in credits], invoice_id),
        )
        cancelled = [(c.line_id, r.period, r.amount) for c in credits for r in c.cancelled]
        if cancelled:
            # Only months still unreleased: a released month's revenue is reversed, not cancelled.
            done = self.conn.execute(
                "UPDATE erp.revenue_schedules s "
                "SET cancelled_amount = s.cancelled_amount + c.amount "
                "FROM unnest(%s::text[], %s::date[], %s::numeric[]) AS c(line_id, period, amount) "
                "WHERE s.invoice_id = %s AND s.line_id = c.line_id AND s.period = c.period "
                "AND s.recognized_entry_id IS NULL RETURNING 1",
                (*[list(x) for x in zip(*cancelled, strict=True)], invoice_id),
            ).fetchall()
            if len(done) != len(cancelled):
                raise RuntimeError(
                    f"invoice {invoice_id}: {len(cancelled) - len(done)} schedule month(s) "
                    "to cancel were released meanwhile; their rows should have been locked"
                )

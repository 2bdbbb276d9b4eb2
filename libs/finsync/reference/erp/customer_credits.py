"""Customer credit balances in the reference ERP (erp.customer_credits and
erp.customer_credit_balances, 0016_customer_credits.sql), for one unit of work.

Each holder's balance row is locked (FOR UPDATE) the first time a posting asks what it holds,
and stays locked until the transaction ends, so two postings never use the same credit. What
this unit of work creates and uses is kept here and written by flush(), with the rest of the
adapter's buffered writes.

Most invoices belong to customers that hold no credit at all: which holders do is asked once
per unit of work (one statement for the whole batch), so their postings stay buffered.
"""

from __future__ import annotations

from decimal import Decimal

import psycopg

from finsync.domain.accounting import ZERO
from finsync.ports.erp import CreditHolder

# Holders with credit read at once per unit of work; with more, each posting asks for its own.
HOLDERS_AT_ONCE = 10_000


class CustomerCredits:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._held: dict[CreditHolder, Decimal] = {}  # locked: what each has, as of now
        self._holders: frozenset[CreditHolder] | None = None  # None: too many to keep
        self._asked = False
        self._added: dict[CreditHolder, Decimal] = {}  # created less used, not written yet
        self._created: set[CreditHolder] = set()  # holders given credit in this unit of work
        self._rows: list[tuple[object, ...]] = []
        self._used_on: list[tuple[Decimal, str]] = []  # (amount, invoice) off its open amount

    def held(self, holder: CreditHolder) -> Decimal:
        if holder in self._held:
            return self._held[holder]
        if holder not in self._created and not self._may_hold(holder):
            return ZERO
        row = self.conn.execute(
            "SELECT held FROM erp.customer_credit_balances WHERE account_id = %s "
            "AND legal_entity = %s AND currency = %s FOR UPDATE",
            (holder.account_id, holder.legal_entity, holder.currency),
        ).fetchone()
        held: Decimal = (row[0] if row else ZERO) + self._added.get(holder, ZERO)
        self._held[holder] = held
        return held

    def _may_hold(self, holder: CreditHolder) -> bool:
        """Whether the holder had credit when this unit of work first asked. (Credit committed
        since is used by its next invoice instead.)"""
        if not self._asked:
            rows = self.conn.execute(
                "SELECT account_id, legal_entity, currency FROM erp.customer_credit_balances "
                "WHERE held > 0 LIMIT %s",
                (HOLDERS_AT_ONCE + 1,),
            ).fetchall()
            many = len(rows) > HOLDERS_AT_ONCE
            self._holders = None if many else frozenset(CreditHolder(*r) for r in rows)
            self._asked = True
        return self._holders is None or holder in self._holders

    def create(
        self,
        holder: CreditHolder,
        amount: Decimal,
        credit_memo_id: str,
        invoice_id: str,
        entry_id: str,
    ) -> None:
        self._change(holder, amount)
        self._created.add(holder)
        self._rows.append(
            ("CREATED", credit_memo_id, *_key(holder), amount, invoice_id, credit_memo_id, entry_id)
        )

    def use(self, holder: CreditHolder, amount: Decimal, invoice_id: str, entry_id: str) -> None:
        """Call with no more than held() said: that read locked the balance."""
        self._change(holder, -amount)
        self._rows.append(("USED", invoice_id, *_key(holder), -amount, invoice_id, None, entry_id))
        self._used_on.append((amount, invoice_id))

    def refund(self, holder: CreditHolder, amount: Decimal) -> None:
        """Pay `amount` of the balance out (a refund; erp.refunds is its ledger). Call with no
        more than held() said."""
        self._change(holder, -amount)

    def _change(self, holder: CreditHolder, amount: Decimal) -> None:
        self._added[holder] = self._added.get(holder, ZERO) + amount
        if holder in self._held:
            self._held[holder] += amount

    def flush(self, cur: psycopg.Cursor) -> None:
        """After the journals, AR items and credit memos they refer to."""
        if self._used_on:
            cur.executemany(
                "UPDATE erp.ar_open_items SET open_amount = open_amount - %s WHERE invoice_id = %s",
                self._used_on,
            )
        if self._rows:
            cur.executemany(
                "INSERT INTO erp.customer_credits (kind, document_id, account_id, legal_entity, "
                "currency, amount, invoice_id, credit_memo_id, journal_entry_id) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                self._rows,
            )
        # Credit created adds to the holder's row, made if new; credit used comes off the row
        # held() locked. (Apart: a row to insert must pass the check on its own.)
        added = [(*_key(h), amount) for h, amount in self._added.items() if amount > 0]
        if added:
            cur.executemany(
                "INSERT INTO erp.customer_credit_balances AS b (account_id, legal_entity, "
                "currency, held) VALUES (%s, %s, %s, %s) ON CONFLICT (account_id, legal_entity, "
                "currency) DO UPDATE SET held = b.held + EXCLUDED.held",
                added,
            )
        used = [(amount, *_key(h)) for h, amount in self._added.items() if amount < 0]
        if used:
            cur.executemany(
                "UPDATE erp.customer_credit_balances SET held = held + %s WHERE account_id = %s "
                "AND legal_entity = %s AND currency = %s",
                used,
            )
        self._added, self._rows, self._used_on = {}, [], []


def _key(holder: CreditHolder) -> tuple[str, str, str]:
    return holder.account_id, holder.legal_entity, holder.currency

"""The reference ERP on PostgreSQL (schema `erp`): the embedded default behind the Erp port.

Idempotency keys are unique constraints, so a second post of the same document changes
nothing; the database itself refuses an unbalanced or altered journal, or one dated in a
closed period (a journal dated in one posts in the next open period: periods.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime
from decimal import Decimal

import psycopg

from finsync.contract.events import PayoutItemType
from finsync.domain.accounting import Journal
from finsync.domain.cash import HeldCash
from finsync.domain.gl_mapping import GlMapping, RevenueAccounts, TaxAccount
from finsync.domain.tax import TaxRounding
from finsync.errors import InvalidEvent
from finsync.ports.erp import (
    BookedPayment,
    CashApplication,
    CreditHolder,
    CrossRate,
    Customer,
    Dispute,
    DisputeLoss,
    EarmarkedCash,
    HeldCashApplication,
    InvoiceLineBooking,
    LineBalance,
    LineCredit,
    OpenItem,
    PaidInvoice,
    Posted,
    RefundBooking,
)
from finsync.ports.payouts import ClearingDocument, PayoutBooking
from finsync.reference.erp import booked_ar, gl_mapping, payouts
from finsync.reference.erp.cash_movements import CashMovements
from finsync.reference.erp.customer_credits import CustomerCredits
from finsync.reference.erp.fx import Converter
from finsync.reference.erp.held_cash import HeldCashStore
from finsync.reference.erp.journals import Journals
from finsync.reference.erp.schedules import Schedules
from finsync.reference.erp.settlements import Settlements
from finsync.runtime import bulk

_OPEN_ITEM_COLUMNS = (
    ("document_id", "text"),
    ("invoice_id", "text"),
    ("invoice_number", "text"),
    ("account_id", "text"),
    ("legal_entity", "text"),
    ("currency", "text"),
    ("issued_on", "date"),
    ("due_on", "date"),
    ("original_amount", "numeric"),
    ("open_amount", "numeric"),
    ("journal_entry_id", "text"),
)


class ReferenceErp:
    """Writes are buffered and sent in a few multi-row statements by flush(), which the runtime
    calls before a batch (or, after a failure, each record) commits, and which runs before
    every read, so reads see what this unit of work wrote."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._open_items: list[tuple[object, ...]] = []
        self._credits: list[tuple[object, ...]] = []
        self._settled = Settlements(conn)  # payments settled in this unit of work
        self._schedules = Schedules(conn)  # invoice lines and revenue schedules
        self._customer_credits = CustomerCredits(conn)
        self._held_cash = HeldCashStore(conn)  # earmarks, applications, unapplied cash
        self._movements = CashMovements(conn)  # refunds and disputes
        self._tax_rounding: dict[str, TaxRounding] = {}  # per legal entity, for this unit of work
        self._mapping: GlMapping | None = None  # the active GL mapping rules, for this unit of work
        self._fx = Converter(conn)  # functional currencies and FX rates, for this unit of work
        self._journals = Journals(conn, self._fx)  # dated, converted, written by flush()

    def post_invoice(
        self, item: OpenItem, journal: Journal, lines: Sequence[InvoiceLineBooking] = ()
    ) -> Posted:
        entry_id, posted_at, accounting_date = self._journals.post(journal)
        self._schedules.add(item.invoice_id, item.legal_entity, item.currency, lines)
        document_id = f"AR-{item.invoice_id}"
        self._open_items.append(
            (
                document_id,
                item.invoice_id,
                item.invoice_number,
                item.account_id,
                item.legal_entity,
                item.currency,
                item.issued_on,
                item.due_on,
                item.original_amount,
                item.open_amount,
                entry_id,
            )
        )
        return self._journals.posted(document_id, entry_id, posted_at, accounting_date)

    def post_credit_memo(
        self,
        credit_memo_id: str,
        invoice_id: str,
        amount: Decimal,
        journal: Journal,
        lines: Sequence[LineCredit] = (),
        to_credit: Decimal = Decimal(0),
    ) -> Posted:
        self.flush()
        journal = booked_ar.relieve(
            self.conn, journal, booked_ar.of_credit_memo(invoice_id, journal)
        )
        if not 0 <= to_credit <= amount:
            raise ValueError(f"credit memo {credit_memo_id} cannot hold {to_credit} as credit")
        off = amount - to_credit  # off the open amount; credit only once it is all gone
        reduced = self.conn.execute(
            "UPDATE erp.ar_open_items SET open_amount = open_amount - %(off)s "
            "WHERE invoice_id = %(invoice)s AND open_amount >= %(off)s "
            "AND (%(credit)s = 0 OR open_amount = %(off)s) "
            "RETURNING account_id, legal_entity, currency",
            {"off": off, "invoice": invoice_id, "credit": to_credit},
        ).fetchone()
        posted_before = (
            reduced is None
            and self.conn.execute(
                "SELECT 1 FROM erp.ar_credits WHERE credit_memo_id = %s", (credit_memo_id,)
            ).fetchone()
        )
        # Posted before: go on, so its unique key refuses it as "already took effect".
        if reduced is None and not posted_before:
            what = f"credit memo {credit_memo_id} would take {off.normalize():f} off invoice "
            raise InvalidEvent(
                f"{what}{invoice_id}, which has less open"
                if not to_credit
                else f"{what}{invoice_id} and hold {to_credit.normalize():f} as customer credit, "
                "but that is not what it has open: only what is above it becomes credit"
            )
        self._schedules.credit(invoice_id, lines)
        entry_id, posted_at, accounting_date = self._journals.post(journal)
        self._credits.append((credit_memo_id, invoice_id, amount, entry_id))
        if to_credit and reduced is not None:
            holder = CreditHolder(*reduced)
            self._customer_credits.create(holder, to_credit, credit_memo_id, invoice_id, entry_id)
        return self._journals.posted(f"CM-{credit_memo_id}", entry_id, posted_at, accounting_date)

    def credit_held(self, holder: CreditHolder) -> Decimal:
        return self._customer_credits.held(holder)

    def apply_credit(
        self, invoice_id: str, holder: CreditHolder, amount: Decimal, journal: Journal
    ) -> Posted:
        held = self._customer_credits.held(holder)  # and locked
        if not 0 < amount <= held:
            raise RuntimeError(f"invoice {invoice_id} cannot use {amount} of {held} credit held")
        entry_id, posted_at, accounting_date = self._journals.post(journal)
        self._customer_credits.use(holder, amount, invoice_id, entry_id)
        return self._journals.posted(f"CA-{invoice_id}", entry_id, posted_at, accounting_date)

    def _gl_mapping(self) -> GlMapping:
        if self._mapping is None:
            self._mapping = gl_mapping.active(self.conn)
        return self._mapping

    def revenue_accounts(self, legal_entity: str, sku: str) -> RevenueAccounts:
        # The reference ERP's revenue rules hold for every legal entity.
        return self._gl_mapping().revenue(sku)

    def tax_account(self, legal_entity: str, rate: Decimal | None) -> TaxAccount:
        return self._gl_mapping().tax(legal_entity, rate)

    def tax_rounding(self, legal_entity: str) -> TaxRounding:
        rounding = self._tax_rounding.get(legal_entity)
        if rounding is None:
            row = self.conn.execute(
                "SELECT tax_rounding FROM erp.legal_entities WHERE legal_entity = %s",
                (legal_entity,),
            ).fetchone()
            rounding = TaxRounding(row[0]) if row else TaxRounding.LINE
            self._tax_rounding[legal_entity] = rounding
        return rounding

    def lines_to_credit(self, invoice_id: str) -> dict[str, LineBalance]:
        self.flush()
        return self._schedules.lines_to_credit(invoice_id)

    def post_journal(self, journal: Journal) -> Posted:
        """A journal of the ERP's own, with no document behind it (a recognition run's)."""
        entry_id, posted_at, accounting_date = self._journals.post(journal)
        return self._journals.posted(entry_id, entry_id, posted_at, accounting_date)

    def open_item(self, invoice_id: str, lock: bool = False) -> OpenItem | None:
        self.flush()
        row = self.conn.execute(
            "SELECT invoice_id, invoice_number, account_id, legal_entity, currency, issued_on, "
            "due_on, original_amount, open_amount FROM erp.ar_open_items WHERE invoice_id = %s"
            + (" FOR UPDATE" if lock else ""),
            (invoice_id,),
        ).fetchone()
        return None if row is None else OpenItem(*row)

    def open_invoices(self, account_ids: Sequence[str]) -> int:
        self.flush()  # posted in this unit of work counts too
        row = self.conn.execute(
            "SELECT count(*) FROM erp.ar_open_items WHERE account_id = ANY(%s) AND open_amount > 0",
            (list(account_ids),),
        ).fetchone()
        return int(row[0]) if row else 0

    # Customers are written at once, not buffered: few, and read back by the next account.
    def create_customer(self, customer: Customer) -> str:
        customer_id = f"CUS-{uuid.uuid4().hex[:10].upper()}"
        self.conn.execute(
            "INSERT INTO erp.customers (customer_id, account_id, name, country, currency, "
            "tax_id, legal_entity, email_domain, parent_customer_id) "
            "VALUES (%(customer_id)s, %(account_id)s, %(name)s, %(country)s, %(currency)s, "
            "%(tax_id)s, %(legal_entity)s, %(email_domain)s, %(parent_customer_id)s)",
            {**asdict(customer), "customer_id": customer_id},
        )
        return customer_id

    def update_customer(self, customer_id: str, customer: Customer) -> None:
        self.conn.execute(
            "UPDATE erp.customers SET name = %(name)s, country = %(country)s, "
            "currency = %(currency)s, tax_id = %(tax_id)s, legal_entity = %(legal_entity)s, "
            "email_domain = %(email_domain)s, parent_customer_id = %(parent_customer_id)s, "
            "updated_at = now() WHERE customer_id = %(customer_id)s",
            {**asdict(customer), "customer_id": customer_id},
        )

    def _foreign(self, journal: Journal) -> bool:
        """In another currency than its entity's functional one: rates can differ."""
        functional = self._fx.entity(journal.legal_entity).functional_currency
        return functional is not None and functional != journal.currency

    def apply_payment(self, application: CashApplication, journal: Journal) -> Posted:
        if self._foreign(journal):  # AR relieved at each invoice's booked rate: realised FX
            self.flush()
            journal = booked_ar.relieve(self.conn, journal, booked_ar.of_payment(application))
        self._settled.reduce_receivables(application)
        entry_id, posted_at, accounting_date = self._journals.post(journal)
        self._held_cash.settle(application, entry_id)
        self._settled.add(application, entry_id)
        return self._journals.posted(
            f"PAY-{application.payment_id}", entry_id, posted_at, accounting_date
        )

    def cross_rate(self, legal_entity: str, from_: str, to: str, on: date) -> CrossRate | None:
        return self._fx.cross_rate(legal_entity, from_, to, on)

    # Cash held after settlement: earmarks for invoices not posted yet, unapplied cash.
    def open_item_for_earmark(self, invoice_id: str) -> OpenItem | None:
        self.flush()
        self._held_cash.lock_for_earmark()
        return self.open_item(invoice_id, lock=True)

    # Both ask first whether there can be any, so most postings stay buffered.
    def earmarked_cash(self, invoice_id: str) -> list[EarmarkedCash]:
        if not self._held_cash.may_have_earmarks(invoice_id):
            return []
        self.flush()  # the invoice may have posted in this unit of work
        return self._held_cash.earmarked(invoice_id)

    def held_cash(self, holder: CreditHolder) -> list[HeldCash]:
        if not self._held_cash.may_hold(holder):
            return []
        self.flush()
        return self._held_cash.held(holder)

    def open_items(self, holder: CreditHolder) -> list[OpenItem]:
        self.flush()
        return self._held_cash.open_items(holder)

    def applied_pairs(self, payment_ids: Sequence[str]) -> frozenset[tuple[str, str]]:
        self.flush()
        return self._held_cash.applied_pairs(payment_ids)

    def apply_held_cash(self, application: HeldCashApplication, journal: Journal) -> Posted:
        self.flush()
        if self._foreign(journal):  # AR and 2100 relieved at their booked rates: realised FX
            journal = booked_ar.relieve_held_cash(self.conn, journal, application)
        entry_id, posted_at, accounting_date = self._journals.post(journal)
        self.flush()  # the journal first: the application refers to it
        self._held_cash.apply(application, entry_id)
        a = application
        document_id = f"PA-{a.payment_id}-{a.invoice_id}"
        return self._journals.posted(document_id, entry_id, posted_at, accounting_date)

    def hold_for_review(self, payment_id: str, reason: str) -> None:
        self.flush()
        self._held_cash.hold_for_review(payment_id, reason)

    # Refunds and disputes: reads see this unit of work's postings; writes go after the journal.
    def booked_payment(self, payment_id: str) -> BookedPayment | None:
        self.flush()
        return self._movements.payment(payment_id)

    def unapplied_cash(self, holder: CreditHolder, first: str | None) -> list[tuple[str, Decimal]]:
        self.flush()
        return self._movements.unapplied(holder, first)

    def paid_invoices(self, payment_id: str) -> list[PaidInvoice]:
        self.flush()
        return self._movements.paid_invoices(payment_id)

    def book_refund(self, refund: RefundBooking, journal: Journal) -> Posted:
        holder = CreditHolder(refund.account_id, refund.legal_entity, refund.currency)
        if refund.from_credit:
            held = self._customer_credits.held(holder)  # and locked
            if refund.from_credit > held:
                raise RuntimeError(
                    f"refund {refund.refund_id} cannot use {refund.from_credit} of {held} credit"
                )
        entry_id, posted_at, accounting_date = self._journals.post(journal)
        if refund.from_credit:
            self._customer_credits.refund(holder, refund.from_credit)
        self.flush()
        self._movements.book_refund(refund, entry_id)
        return self._journals.posted(f"RF-{refund.refund_id}", entry_id, posted_at, accounting_date)

    def dispute(self, dispute_id: str) -> Dispute | None:
        self.flush()
        return self._movements.dispute(dispute_id)

    def open_dispute(self, dispute: Dispute, journal: Journal) -> Posted:
        entry_id, posted_at, accounting_date = self._journals.post(journal)
        self.flush()
        self._movements.open_dispute(dispute, entry_id)
        return self._journals.posted(
            f"DP-{dispute.dispute_id}", entry_id, posted_at, accounting_date
        )

    def close_dispute(
        self,
        dispute_id: str,
        status: str,
        closed_at: datetime,
        journal: Journal,
        loss: DisputeLoss | None = None,
    ) -> Posted:
        entry_id, posted_at, accounting_date = self._journals.post(journal)
        self.flush()
        self._movements.close_dispute(dispute_id, status, closed_at, entry_id, loss)
        return self._journals.posted(
            f"DP-{dispute_id}-{status}", entry_id, posted_at, accounting_date
        )

    def clearing_documents(
        self, references: Sequence[tuple[PayoutItemType, str]]
    ) -> list[ClearingDocument]:
        self.flush()  # payments booked in this unit of work count
        return payouts.clearing_documents(self.conn, references)

    def book_payout(self, booking: PayoutBooking, journal: Journal) -> Posted:
        entry_id, posted_at, accounting_date = self._journals.post(journal)
        self.flush()
        payouts.book(self.conn, booking, entry_id)
        return self._journals.posted(
            f"PO-{booking.payout_id}", entry_id, posted_at, accounting_date
        )

    def flush(self) -> None:
        if not self._journals.pending:
            return
        with self.conn.cursor() as cur:
            self._journals.flush(cur)  # before the documents that refer to them
            bulk.insert(cur, "erp.ar_open_items", _OPEN_ITEM_COLUMNS, self._open_items)
            self._schedules.flush(cur)
            if self._credits:
                cur.executemany(
                    "INSERT INTO erp.ar_credits (credit_memo_id, invoice_id, amount, "
                    "journal_entry_id) VALUES (%s, %s, %s, %s)",
                    self._credits,
                )
            self._customer_credits.flush(cur)
            self._settled.flush(cur)
            self._held_cash.flush(cur)  # after the payments its rows refer to
        self._open_items, self._credits = [], []

"""What finance-analytics reads when billing issues the bench's invoices: the events the services
publish for them, made by the services' own handlers.

The invoices are the ones `finsync.bench.invoice_poster` publishes (same seed, same order).
invoice-poster's `post_invoice` and `post_credit_memo` and payment-settler's `settle_payment`
turn them into `erp.invoice-posted` and `erp.payment-applied` through an ERP kept in memory;
CRM's deals come from the scenario's `opportunity`. On top: re-sends (a relay publishing again,
a CRM sending a deal again under a new event id), which count once, and a few dead letters.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, cast

from finsync.contract.events import (
    AccountUpserted,
    Event,
    InvoiceIssued,
    PaymentSettled,
)
from finsync.contract.topics import dlq_topic
from finsync.domain.accounting import MINOR_UNITS, Journal
from finsync.domain.billing_schedule import money
from finsync.domain.gl_mapping import DEFAULT_REVENUE, DEFAULT_TAX, RevenueAccounts, TaxAccount
from finsync.domain.write_off import Tolerances
from finsync.errors import UndecodableEvent
from finsync.ports.crossref import AccountLink, CrossReference
from finsync.ports.erp import (
    CashApplication,
    CreditHolder,
    Erp,
    InvoiceLineBooking,
    LineBalance,
    LineCredit,
    OpenItem,
    Posted,
)
from finsync.runtime.failures import dead_letter
from finsync.runtime.messages import Outgoing, Record
from finsync.scenario import documents
from finsync.scenario.opportunities import opportunity
from services.invoice_poster.handler import post_credit_memo, post_invoice
from services.payment_settler.handler import Systems, settle_payment

# Shares of the invoices. They are issued this month on 30-day terms, so most are not due yet:
# about a quarter is paid, in full, in part, over (the rest unapplied cash) or short within the
# write-off tolerance. Then credit memos, deals closed, payments that name no invoice.
PAID, PARTLY, OVER, SHORT = 0.20, 0.05, 0.01, 0.01
CREDIT_MEMOS = 0.02
DEALS = 0.05
NO_INVOICE = 0.005
RELAY_REPUBLISHED = 0.005  # of invoice postings: the same message again
DEALS_RESENT = 0.02  # of deals: the same deal under a new event id
LETTER_EVERY = 500  # invoices per dead letter
LETTER_SERVICES = ("invoice-poster", "payment-settler")


@dataclass(frozen=True)
class Letter:
    service: str
    message: Outgoing  # as the service's dead-letter topic holds it
    timestamp_ms: int  # produced with it, so its day is known before it is read


@dataclass
class BenchEvents:
    events: list[Event] = field(default_factory=list)  # in the order they are produced
    letters: list[Letter] = field(default_factory=list)


class _Books:
    """The ERP and cross-reference the handlers post to, in memory: open items, invoice lines
    and payers, which is all the invoice and payment rules ask of them."""

    def __init__(self) -> None:
        self.items: dict[str, OpenItem] = {}
        self.lines: dict[str, dict[str, InvoiceLineBooking]] = {}
        self.links: dict[str, AccountLink] = {}
        self.entries = 0

    def _posted(self, document_id: str, journal: Journal) -> Posted:
        self.entries += 1
        return Posted(
            document_id=document_id,
            journal_entry_id=f"JE-{self.entries:020d}",
            posted_at=datetime.now(UTC),
            accounting_date=journal.accounting_date,
        )

    # invoice-poster
    def revenue_accounts(self, legal_entity: str, sku: str) -> RevenueAccounts:
        return DEFAULT_REVENUE

    def tax_account(self, legal_entity: str, rate: Decimal | None) -> TaxAccount:
        return DEFAULT_TAX

    def post_invoice(
        self, item: OpenItem, journal: Journal, lines: Sequence[InvoiceLineBooking] = ()
    ) -> Posted:
        self.items[item.invoice_id] = item
        self.lines[item.invoice_id] = {x.line_id: x for x in lines}
        return self._posted(f"AR-{item.invoice_id}", journal)

    def earmarked_cash(self, invoice_id: str) -> list[Any]:
        return []  # the bench's payments settle after their invoices post

    def credit_held(self, holder: CreditHolder) -> Decimal:
        return Decimal(0)  # memos credit open invoices: no credit balance arises

    def held_cash(self, holder: CreditHolder) -> list[Any]:
        return []  # likewise, no unapplied cash is held before an invoice posts

    def lines_to_credit(self, invoice_id: str) -> dict[str, LineBalance]:
        return {
            x.line_id: LineBalance(
                x.line_id, x.amount, Decimal(0), x.revenue_account, x.deferred_account, x.schedule
            )
            for x in self.lines[invoice_id].values()
        }

    def post_credit_memo(
        self,
        credit_memo_id: str,
        invoice_id: str,
        amount: Decimal,
        journal: Journal,
        lines: Sequence[LineCredit] = (),
        to_credit: Decimal = Decimal(0),
    ) -> Posted:
        item = self.items[invoice_id]
        self.items[invoice_id] = replace(item, open_amount=item.open_amount - amount + to_credit)
        return self._posted(credit_memo_id, journal)

    # payment-settler
    def open_item(self, invoice_id: str, lock: bool = False) -> OpenItem | None:
        return self.items.get(invoice_id)

    def open_item_for_earmark(self, invoice_id: str) -> OpenItem | None:
        return None

    def apply_payment(self, application: CashApplication, journal: Journal) -> Posted:
        for x in application.applications:
            item = self.items[x.invoice_id]
            self.items[x.invoice_id] = replace(item, open_amount=item.open_amount - x.settles)
        return self._posted(application.payment_id, journal)

    def flush(self) -> None:
        pass

    def link(self, account_id: str, lock: bool = False) -> AccountLink | None:
        return self.links.get(account_id)

    def pays_as(self, account_id: str, legal_entity: str, currency: str) -> None:
        """The payer's account, synced in the entity and currency of what it pays now."""
        self.links[account_id] = AccountLink(
            account_id=account_id,
            erp_customer_id=f"CUS-{account_id}",
            billing_account_id=f"BA-{account_id}",
            version=1,
            name=f"Customer {account_id}",
            normalized_name=f"customer {account_id.lower()}",
            country="US",
            currency=currency,
            legal_entity=legal_entity,
        )


def _payment(
    rng: random.Random,
    payment_id: str,
    account_id: str,
    invoice_id: str | None,
    amount: Decimal,
    currency: str,
    settled_on: date,
) -> PaymentSettled:
    method = rng.choice(("CARD", "CARD", "ACH", "WIRE"))
    fee = money(amount * Decimal("0.029"), currency) if method == "CARD" else Decimal(0)
    return PaymentSettled(
        event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        occurred_at=datetime.now(UTC),
        source="payments",
        correlation_id=f"pay-{payment_id}",
        payment_id=payment_id,
        account_id=account_id,
        invoice_id=invoice_id,
        amount=amount,
        fee_amount=fee,
        currency=currency,
        settled_at=datetime.combine(settled_on, time(rng.randrange(24)), UTC),
        method=method,
        gateway_reference=f"gw_{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}",
    )


def _paid(rng: random.Random, open_amount: Decimal, currency: str) -> Decimal | None:
    """What the invoice's payer sends, if anything."""
    unit = Decimal(1).scaleb(-MINOR_UNITS[currency])
    r = rng.random()
    if r < PAID:
        return open_amount
    if r < PAID + PARTLY:
        return money(open_amount * Decimal(rng.randint(20, 90)) / 100, currency)
    if r < PAID + PARTLY + OVER:
        return open_amount + unit * rng.randint(100, 10_000)
    if r < PAID + PARTLY + OVER + SHORT:
        return open_amount - unit * 3  # within every currency's default tolerance
    return None


def _deal(rng: random.Random, k: int, invoice: InvoiceIssued) -> Event:
    buyer = AccountUpserted(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        source="crm",
        correlation_id=f"acc-{invoice.account_id}",
        account_id=invoice.account_id,
        name=f"Customer {invoice.account_id}",
        country="US",
        currency=invoice.currency,
        legal_entity=invoice.legal_entity,
        version=1,
    )
    return opportunity(rng, "BENCH", k, buyer, invoice.issued_on)


def _letter(rng: random.Random, k: int, invoice: InvoiceIssued, now_ms: int) -> Letter:
    service = LETTER_SERVICES[k % len(LETTER_SERVICES)]
    record = Record("billing.invoice-issued", 0, k, now_ms, invoice.key.encode(), b"\x00\x01")
    error = UndecodableEvent("not a Confluent-framed Avro record of billing.invoice-issued-value")
    message = dead_letter(
        record, error, service=service, stage="decode", now_ms=now_ms, trace_id=None
    )
    assert message.topic == dlq_topic(service)
    # Spread over the last week, so the letters fall on several days.
    return Letter(service, message, now_ms - rng.randrange(7 * 24 * 3600) * 1000)


def bench_events(n: int, seed: int) -> BenchEvents:
    """The events `n` invoices lead to; invoices as the invoice-poster bench makes them with
    `seed`, the rest drawn from a generator of its own."""
    invoices_rng, rng = random.Random(seed), random.Random(seed + 1)
    books = _Books()
    erp = cast(Erp, books)  # the handlers call only what _Books has
    systems = Systems(erp=erp, crossref=cast(CrossReference, books), tolerances=Tolerances())
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    out = BenchEvents()
    invoices = [documents.invoice(invoices_rng, i) for i in range(n)]
    deals: list[Event] = []
    every = min(LETTER_EVERY, n)  # at least one letter
    for k, invoice in enumerate(invoices):
        out.events += post_invoice(invoice, erp)
        if rng.random() < RELAY_REPUBLISHED:
            out.events.append(out.events[-1])
        if rng.random() < DEALS:
            deals.append(_deal(rng, k, invoice))
            if rng.random() < DEALS_RESENT:
                deals.append(deals[-1].model_copy(update={"event_id": uuid.uuid4()}))
        if k % every == every - 1:
            out.letters.append(_letter(rng, k, invoice, now_ms))
    for invoice in invoices:
        if rng.random() < CREDIT_MEMOS:
            out.events += post_credit_memo(documents.credit_memo(rng, invoice), erp)
    for k, invoice in enumerate(invoices):
        item = books.items[invoice.invoice_id]
        amount = _paid(rng, item.open_amount, item.currency) if item.open_amount > 0 else None
        if amount is None:
            continue
        books.pays_as(invoice.account_id, invoice.legal_entity, invoice.currency)
        settled_on = invoice.issued_on + timedelta(days=rng.randrange(35))
        payment = _payment(
            rng, f"PAY-B{k:07d}", invoice.account_id, invoice.invoice_id, amount,
            invoice.currency, settled_on,
        )  # fmt: skip
        out.events += settle_payment(payment, systems)
    for k in range(int(n * NO_INVOICE)):
        entity, currency, _ = rng.choice(documents.ENTITIES)
        account_id = f"ACC-U{k:05d}"
        books.pays_as(account_id, entity, currency)
        amount = money(Decimal(rng.randint(50, 5000)) * documents.FX[currency], currency)
        settled_on = date(2026, 11, 1) + timedelta(days=rng.randrange(28))
        payment = _payment(rng, f"PAY-U{k:07d}", account_id, None, amount, currency, settled_on)
        out.events += settle_payment(payment, systems)
    out.events += deals
    return out

"""A document re-sent under its business key: with the same content it is a no-op, with other
content a ConflictingResend dead letter naming the fields that differ — never a silent
duplicate. On the database through both processing paths, and on the real stack."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from finsync.contract.events import InvoiceIssued, OpportunityClosed, OpportunityLine
from finsync.contract.topics import dlq_topic
from finsync.errors import InvalidEvent
from finsync.runtime import db, dlq
from finsync.runtime.failures import RetryPolicy
from finsync.runtime.messages import Record
from finsync.runtime.processing import BatchProcessor
from finsync.runtime.serde import Serde
from finsync.scenario import documents
from finsync.service import Service
from finsync.settings import Settings
from tests.support import (
    ServiceProcess,
    crm_account,
    eventually,
    journals,
    publish,
    rolled_back,
)

pytestmark = pytest.mark.integration


def corrected(invoice: InvoiceIssued, line: int, more: Decimal) -> InvoiceIssued:
    """The invoice with one line's amount raised, totals to match: a valid, other document
    under the same invoice id and a new event id."""
    lines = list(invoice.lines)
    lines[line] = lines[line].model_copy(update={"amount": lines[line].amount + more})
    return invoice.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "lines": lines,
            "subtotal": invoice.subtotal + more,
            "total": invoice.total + more,
        }
    )


def resent(invoice: InvoiceIssued) -> InvoiceIssued:
    """The same invoice re-sent: a new envelope, the same business content."""
    return invoice.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "occurred_at": datetime.now(UTC) + timedelta(hours=1),
            "correlation_id": f"{invoice.correlation_id}-again",
            "causation_id": "re-sent by hand",
        }
    )


# --- the processing paths, on the database (each test rolls back what it wrote) -------------


class Harness:
    """A service whose handler records each effect in a temporary table and rejects invoices
    numbered BAD-…; run by the real BatchProcessor in a transaction that is rolled back."""

    def __init__(self, conn: psycopg.Connection, serde: Serde) -> None:
        self.conn, self.serde = conn, serde
        self.service = Service(
            name=f"test-resends-{uuid.uuid4().hex[:8]}",
            handlers={InvoiceIssued.TOPIC: self.handle},
            bind=lambda c: c,
        )
        self.processor = BatchProcessor(self.service, serde, RetryPolicy(1, 1, 1))
        self.offset = 0
        conn.execute("CREATE TEMP TABLE effects (event_id uuid NOT NULL) ON COMMIT DROP")

    @staticmethod
    def handle(event: InvoiceIssued, conn: psycopg.Connection) -> list[object]:
        if event.invoice_number.startswith("BAD-"):
            raise InvalidEvent("rejected by the test")
        conn.execute("INSERT INTO effects VALUES (%s)", (event.event_id,))
        return []

    def process(self, events: list[InvoiceIssued]) -> dict[str, int]:
        records = []
        for e in events:
            self.offset += 1
            value = self.serde.encode(e)
            records.append(Record(e.TOPIC, 0, self.offset, 0, e.key.encode(), value, []))
        return dict(self.processor.process(self.conn, records))

    def effects(self) -> list[uuid.UUID]:
        return [r[0] for r in self.conn.execute("SELECT event_id FROM effects")]

    def letters(self) -> list[dlq.DeadLetter]:
        rows = self.conn.execute(
            "SELECT topic, key, value, header_keys, header_values FROM finsync.outbox "
            "WHERE service = %s AND topic = %s ORDER BY id",
            (self.service.name, dlq_topic(self.service.name)),
        ).fetchall()
        return [
            dlq.DeadLetter(
                self.service.name, Record(t, 0, 0, 0, k, v, list(zip(hk, hv, strict=True)))
            )
            for t, k, v, hk, hv in rows
        ]


@pytest.fixture
def harness(settings: Settings, serde: Serde) -> Iterator[Harness]:
    with rolled_back(settings) as conn:
        yield Harness(conn, serde)


def failing(rng: random.Random) -> list[InvoiceIssued]:
    """A record that fails in its handler: the batch is then redone record by record."""
    bad = documents.invoice(rng, 9)
    return [bad.model_copy(update={"invoice_number": f"BAD-{bad.invoice_number}"})]


@pytest.mark.parametrize("path", ["whole batch", "record by record"])
def test_in_one_batch_the_first_takes_effect_and_other_content_is_a_conflicting_resend(
    harness: Harness, rng: random.Random, path: str
) -> None:
    invoice = documents.invoice(rng, 1)
    changed = corrected(invoice, 0, Decimal("10.00"))
    bad = failing(rng) if path == "record by record" else []
    counts = harness.process([*bad, invoice, resent(invoice), changed, invoice, changed])

    # Each copy of the conflicting event is a dead letter, as a copy of any failing one is.
    assert harness.effects() == [invoice.event_id]
    assert counts == {"processed": 1, "duplicate": 2, "dead-lettered": 2 + len(bad)}
    letter = harness.letters()[-1]
    assert letter.error_class == "ConflictingResend"
    assert letter.category == "permanent"
    assert letter.reason == (
        f"invoice {invoice.invoice_id} took effect (event {invoice.event_id}) with other "
        "content: subtotal, total, lines[0].amount differ"
    )


@pytest.mark.parametrize("path", ["whole batch", "record by record"])
def test_a_later_batch_compares_with_what_took_effect_and_names_the_fields(
    harness: Harness, rng: random.Random, path: str
) -> None:
    invoice = documents.invoice(rng, 2)
    while len(invoice.lines) < 2:
        invoice = documents.invoice(rng, 2)
    assert harness.process([invoice]) == {"processed": 1}
    bad = failing(rng) if path == "record by record" else []
    changed = corrected(invoice, 1, Decimal("0.01"))
    counts = harness.process([*bad, resent(invoice), invoice, changed])

    assert counts == {"duplicate": 2, "dead-lettered": 1 + len(bad)}
    assert harness.effects() == [invoice.event_id]
    letter = harness.letters()[-1]
    assert letter.error_class == "ConflictingResend"
    assert letter.record.key == invoice.invoice_id.encode()
    assert "total, lines[1].amount differ" in letter.reason
    assert str(changed.lines[1].amount) not in letter.reason  # names the fields, not the values


@pytest.mark.parametrize("together", [True, False])
def test_an_invalid_original_releases_its_document_for_a_corrected_resend(
    harness: Harness, rng: random.Random, together: bool
) -> None:
    fixed = documents.invoice(rng, 3)
    original = fixed.model_copy(
        update={"event_id": uuid.uuid4(), "invoice_number": f"BAD-{fixed.invoice_number}"}
    )
    if together:
        assert harness.process([original, fixed]) == {"dead-lettered": 1, "processed": 1}
    else:
        assert harness.process([original]) == {"dead-lettered": 1}
        assert harness.process([fixed]) == {"processed": 1}
    assert harness.effects() == [fixed.event_id]
    assert [x.error_class for x in harness.letters()] == ["InvalidEvent"]


def test_a_document_recorded_before_fingerprints_were_kept_is_taken_as_the_same(
    harness: Harness, rng: random.Random
) -> None:
    invoice = documents.invoice(rng, 4)
    harness.conn.execute(
        "INSERT INTO finsync.inbox (service, event_id, topic, document_key) "
        "VALUES (%s, %s, %s, %s)",
        (harness.service.name, uuid.uuid4(), invoice.TOPIC, invoice.document_key),
    )
    changed = corrected(invoice, 0, Decimal("1.00"))
    assert harness.process([invoice, changed]) == {"duplicate": 2}
    assert harness.letters() == []


# --- on the real stack -----------------------------------------------------------------------


def letters(settings: Settings, service: str, key: str) -> list[dlq.DeadLetter]:
    return [x for x in dlq.read(settings, service) if x.record.key_text == key]


def open_amount(settings: Settings, invoice_id: str) -> object:
    with db.connect(settings) as conn:
        row = conn.execute(
            "SELECT open_amount FROM erp.ar_open_items WHERE invoice_id = %s", (invoice_id,)
        ).fetchone()
    return None if row is None else row[0]


@pytest.fixture
def poster(tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess("invoice-poster", tmp_path)
    yield service
    if service.running():
        assert service.stop() == 0


def test_a_corrected_invoice_under_the_same_id_is_a_dead_letter_naming_what_differs(
    settings: Settings, serde: Serde, poster: ServiceProcess, rng: random.Random
) -> None:
    invoice = documents.invoice(rng, 5)
    poster.start()
    publish(settings, serde, [invoice])
    eventually(lambda: journals(settings, f"invoice:{invoice.invoice_id}") == 1, 60, "posting")
    changed = corrected(invoice, len(invoice.lines) - 1, Decimal("100.00"))
    # The same content first: a no-op, so the one dead letter for the key is the corrected one
    # that comes after it on the same partition.
    publish(settings, serde, [resent(invoice), changed])
    [letter] = eventually(lambda: letters(settings, "invoice-poster", invoice.invoice_id), 60)
    assert letter.error_class == "ConflictingResend"
    last = len(invoice.lines) - 1
    assert f"with other content: subtotal, total, lines[{last}].amount differ" in letter.reason
    assert letter.record.value == serde.encode(changed)  # the corrected bytes, for a replay
    assert journals(settings, f"invoice:{invoice.invoice_id}") == 1
    assert open_amount(settings, invoice.invoice_id) == invoice.total  # the first stands


def test_one_batch_with_a_redelivery_a_resend_and_a_correction_posts_once(
    settings: Settings, serde: Serde, poster: ServiceProcess, rng: random.Random
) -> None:
    invoice = documents.invoice(rng, 6)
    changed = corrected(invoice, 0, Decimal("1.00"))
    publish(settings, serde, [invoice, invoice, resent(invoice), changed])  # one key: one batch
    poster.start()
    [letter] = eventually(lambda: letters(settings, "invoice-poster", invoice.invoice_id), 60)
    assert letter.error_class == "ConflictingResend"
    assert "subtotal, total, lines[0].amount differ" in letter.reason
    assert journals(settings, f"invoice:{invoice.invoice_id}") == 1
    assert open_amount(settings, invoice.invoice_id) == invoice.total


def opportunity(account_id: str, seats: int) -> OpportunityClosed:
    opportunity_id = f"OPP-RESEND-{uuid.uuid4().hex[:10]}"
    start = date(2027, 3, 1)
    lines = [
        OpportunityLine(line_id="1", sku="ONBOARD", description="Onboarding",
                        quantity=Decimal(1), unit_price=Decimal("2500.00"),
                        billing_period="ONE_TIME", start_date=start, term_months=1),
        OpportunityLine(line_id="2", sku="PLAT-SEAT", description="Platform seats",
                        quantity=Decimal(seats), unit_price=Decimal("49.00"),
                        billing_period="MONTHLY", start_date=start, term_months=12),
    ]  # fmt: skip
    return OpportunityClosed(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        source="crm",
        correlation_id=f"deal-{opportunity_id}",
        opportunity_id=opportunity_id,
        account_id=account_id,
        closed_at=datetime(2027, 2, 20, 16, tzinfo=UTC),
        currency="EUR",
        legal_entity="ACME-DE",
        lines=lines,
        total_contract_value=Decimal("2500.00") + seats * Decimal("49.00") * 12,
    )


def seats(settings: Settings, opportunity_id: str) -> list[Decimal]:
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT p.quantity FROM billing.subscription_phases p "
            "JOIN billing.subscriptions s USING (subscription_id) "
            "WHERE s.opportunity_id = %s AND p.sku = 'PLAT-SEAT'",
            (opportunity_id,),
        ).fetchall()
    return [r[0] for r in rows]


def test_a_reclosed_opportunity_with_other_lines_is_a_dead_letter_not_a_silent_duplicate(
    settings: Settings, serde: Serde, tmp_path: Path
) -> None:
    account_id = f"ACC-RESEND-{uuid.uuid4().hex[:10]}"
    account = crm_account(account_id, 1, f"Resend {account_id} GmbH")
    first = opportunity(account_id, seats=10)
    reclosed = opportunity(account_id, seats=12).model_copy(
        update={"opportunity_id": first.opportunity_id}
    )
    services = [ServiceProcess(n, tmp_path) for n in ("account-sync", "subscription-activator")]
    try:
        for s in services:
            s.start()
        publish(settings, serde, [account])
        publish(settings, serde, [first])  # waits in retry until its account is synced
        eventually(lambda: seats(settings, first.opportunity_id), 120, "the subscription")
        publish(settings, serde, [reclosed])
        [letter] = eventually(
            lambda: letters(settings, "subscription-activator", first.opportunity_id), 60
        )
    finally:
        for s in services:
            if s.running():
                s.stop()
    assert letter.error_class == "ConflictingResend"
    assert letter.reason == (
        f"opportunity {first.opportunity_id} took effect (event {first.event_id}) with other "
        "content: total_contract_value, lines[1].quantity differ"
    )
    assert seats(settings, first.opportunity_id) == [Decimal(10)]

"""`finsync reconcile`: the books proven three ways — every control account against its
documents, and every document against the system it was meant to reach."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from finsync.books import (
    clearing,
    customer_credit,
    functional,
    invoice_accounts,
    ledger,
    refunds_disputes,
    threeway,
)
from finsync.books.findings import Report
from finsync.contract.events import (
    EVENT_TYPES,
    DisputeUpdated,
    Event,
    OpportunityClosed,
    PaymentSettled,
    RefundSettled,
)
from finsync.contract.topics import SERVICES
from finsync.errors import FinsyncError
from finsync.runtime import clients, db
from finsync.runtime.serde import Serde, registry_client
from finsync.settings import Settings

CHECKS = (
    *ledger.CHECKS,
    *invoice_accounts.CHECKS,
    *customer_credit.CHECKS,
    *refunds_disputes.CHECKS,
    *clearing.CHECKS,
    *threeway.CHECKS,
)

E = TypeVar("E", bound=Event)


def reconcile(
    settings: Settings,
    entity: str | None = None,
    since: datetime | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Report:
    """Every check, for one legal entity or all, over the documents posted, published or issued
    since `since` (all, if None); the trial balance always over the whole ledger."""
    report = Report(list(CHECKS))
    since_ms = int(since.timestamp() * 1000) if since else None
    serde = Serde(registry_client(settings))
    say("reading what CRM and the gateways published")
    opportunities = _published(settings, serde, OpportunityClosed, since_ms)
    payments = _published(settings, serde, PaymentSettled, since_ms)
    refunds = _published(settings, serde, RefundSettled, since_ms)
    disputes = _published(settings, serde, DisputeUpdated, since_ms)  # the last status of each
    say("reading the dead letters")
    held = _dead_letters(settings, serde, since_ms)
    if entity is not None:
        opportunities = [o for o in opportunities if o.legal_entity == entity]
        refunds = [r for r in refunds if r.legal_entity == entity]
        disputes = [d for d in disputes if d.legal_entity == entity]
    stamp = since.astimezone(UTC).isoformat() if since else None
    with db.connect(settings) as conn:
        say("checking the ledger")
        report.findings += ledger.run(conn, entity, since)
        report.findings += invoice_accounts.run(conn, entity, since)
        report.functional_totals = functional.totals(conn, entity)
        report.findings += customer_credit.run(conn, entity, since)
        report.findings += refunds_disputes.run(conn, entity, since)
        report.findings += clearing.run(conn, entity, since)
        say("checking CRM, billing and the ERP against each other")
        report.findings += threeway.opportunities(conn, opportunities, held)
        due, note = threeway.due_periods(conn, stamp)
        report.findings += due
        report.findings += threeway.postings(conn, stamp, held)
        report.findings += threeway.payments(conn, payments, held)
        report.findings += refunds_disputes.booked(conn, refunds, disputes, held)
        report.findings += threeway.under_review(conn, entity)
        report.findings += threeway.customers(conn)
    if note:
        report.notes.append(note)
    if entity is not None:
        report.notes.append(
            f"payments and customers are checked for every entity; the rest for {entity}"
        )
    return report


def _published(settings: Settings, serde: Serde, kind: type[E], since_ms: int | None) -> list[E]:
    """The documents a source published on its topic, the last version of each, leaving out
    records that are not documents at all (they are dead letters of their own)."""
    latest: dict[str, E] = {}
    try:
        records = list(clients.read(settings, kind.TOPIC, since_ms))
    except LookupError:
        return []
    for record in records:
        try:
            event = serde.decode(kind.TOPIC, record.value)
        except FinsyncError:
            continue
        except ValueError:  # not the topic's type at all
            continue
        if isinstance(event, kind):
            latest[event.key] = event
    return list(latest.values())


def _dead_letters(settings: Settings, serde: Serde, since_ms: int | None) -> threeway.Held:
    """Why documents did not take effect: the dead letters of each service (from the
    dead-letter index), by the document's own id when the record still decodes (a publisher
    may have keyed it otherwise), else by its key."""
    reasons: dict[tuple[str, str], str] = {}
    since = datetime.fromtimestamp(since_ms / 1000, UTC) if since_ms is not None else None
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT service, message_key, error_class, reason, source_topic, value "
            "FROM finsync.dead_letters WHERE service = ANY(%s) "
            "AND (%s::timestamptz IS NULL OR failed_at >= %s) ORDER BY id",
            (list(SERVICES), since, since),
        ).fetchall()
    for service, key, error_class, reason, topic, value in rows:
        why = f"{service} dead letter, {error_class}: {reason}"
        reasons[(service, key or "")] = why
        document = _document_id(serde, topic, value)
        if document:
            reasons[(service, document)] = why

    def held(service: str, key: str) -> str:
        return reasons.get((service, key), "")

    return held


def _document_id(serde: Serde, topic: str, value: bytes | None) -> str | None:
    kind = EVENT_TYPES.get(topic)
    if kind is None:
        return None
    try:
        decoded = serde.decode_record(topic, value).get(kind.KEY_FIELD)
    except Exception:  # undecodable: its key is all there is
        return None
    return str(decoded) if decoded is not None else None

"""The evidence of every hop of a lineage, read once for all of them: the events each service
took in (finsync.inbox), ERP journals, dead letters (finsync.dead_letters) and records waiting
in retry (finsync.parked, whose keys are SHA-256 digests). Then, for each document that did not
take effect, why not.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import psycopg

from finsync.ops.lineage_model import (
    Builder,
    DeadLetterRef,
    EventRef,
    Hop,
    JournalLine,
    JournalRef,
    Missing,
    Source,
    Waiting,
)
from finsync.runtime.parking import key_hash

DEAD_LETTERS_PER_DOCUMENT = 5  # the newest; the dead-letter index has them all
_REASON_IN_DETAIL = 300  # characters of a dead letter's reason in Missing.detail

Doc = tuple[str, str]  # (service, key)
# Effects made while their parent's event was processed, so in its trace.
_IN_PARENTS_TRACE = ("posting", "application")


def gather(conn: psycopg.Connection, b: Builder) -> None:
    """Fill in every hop's events, journals, dead letters, trace id and, for documents that
    did not take effect, why not."""
    events = _events(conn, b.sources)
    journals = _journals(conn, b.sources)
    letters = _dead_letters(conn, b.sources)
    waiting = _waiting(conn, b.sources)
    for hop, src in zip(b.hops, b.sources, strict=True):
        hop.events = events.get(hop.n, [])
        hop.journals = [journals[j] for j in src.journal_ids if j in journals]
        doc = (src.service, src.key) if src.service and src.key else None
        hop.dead_letters = letters.get(doc, []) if doc else []
        hop.waiting = waiting.get(doc) if doc else None
        hop.trace_id = _trace_id(hop, src)
        if hop.trace_id is None and hop.kind in _IN_PARENTS_TRACE and hop.parent is not None:
            hop.trace_id = b.hops[hop.parent].trace_id  # parents come first: theirs is set
        if hop.at is None:
            hop.at = _first_seen(hop)
        if not src.took_effect and src.service:
            hop.missing = why_missing(src.service, hop.events, hop.dead_letters, hop.waiting)


def why_missing(
    service: str,
    events: list[EventRef],
    letters: list[DeadLetterRef],
    waiting: Waiting | None,
) -> Missing:
    """Why a document has not taken effect (pure): waiting in retry comes first, as it is what
    happens now; then its newest dead letter; then an event taken in without an effect found."""
    if waiting is not None:
        queued = (
            f"; {waiting.queued} records of its key wait in order" if waiting.queued > 1 else ""
        )
        return Missing(
            "retrying",
            f"waiting in retry at {service} since {_when(waiting.since)}, "
            f"next attempt at {_when(waiting.due_at)}{queued}",
            service,
            waiting=waiting,
        )
    if letters:
        letter = letters[0]
        reason = letter.reason[:_REASON_IN_DETAIL]
        status = "" if letter.status == "open" else f" ({letter.status})"
        return Missing(
            "dead-letter",
            f"dead letter {letter.id} at {service}{status}: {letter.error_class}, "
            f"{letter.category}: {reason}",
            service,
            dead_letter=letter,
        )
    if events:
        event = events[-1]
        return Missing(
            "received",
            f"{service} took in event {event.event_id} at {_when(event.processed_at)}, but its "
            "effect is not in the reference systems",
            service,
        )
    return Missing("not-received", f"not received by {service} yet", service)


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _trace_id(hop: Hop, src: Source) -> str | None:
    traced = [e.trace_id for e in reversed(hop.events) if e.trace_id]
    if traced:
        return traced[0]
    if src.trace_hint:
        return src.trace_hint
    return next((d.trace_id for d in hop.dead_letters if d.trace_id), None)


def _first_seen(hop: Hop) -> datetime | None:
    if hop.events:
        return hop.events[0].processed_at
    if hop.journals:
        return hop.journals[0].posted_at
    if hop.dead_letters:
        return hop.dead_letters[-1].failed_at
    return None


def _events(conn: psycopg.Connection, sources: list[Source]) -> dict[int, list[EventRef]]:
    """Inbox rows per hop index, oldest first."""
    wanted: dict[Doc, list[int]] = defaultdict(list)
    for n, src in enumerate(sources):
        for key in src.document_keys if src.service else []:
            assert src.service is not None
            wanted[(src.service, key)].append(n)
    out: dict[int, list[EventRef]] = defaultdict(list)
    if wanted:
        services, keys = zip(*wanted, strict=True)
        for row in conn.execute(
            "SELECT i.service, i.document_key, i.event_id, i.topic, i.processed_at, i.trace_id "
            "FROM unnest(%s::text[], %s::text[]) AS k(service, document_key) "
            "JOIN finsync.inbox i USING (service, document_key) ORDER BY i.processed_at",
            (list(services), list(keys)),
        ):
            for n in wanted[(row[0], row[1])]:
                out[n].append(_event(row))
    for n, src in enumerate(sources):
        if src.service and src.prefix:
            # A range the (service, document_key) index can serve; LIKE keeps it exact.
            upper = src.prefix[:-1] + chr(ord(src.prefix[-1]) + 1)
            pattern = _escape_like(src.prefix) + "%"
            out[n] += [
                _event(row)
                for row in conn.execute(
                    "SELECT service, document_key, event_id, topic, processed_at, trace_id "
                    "FROM finsync.inbox WHERE service = %s AND document_key >= %s "
                    "AND document_key < %s AND document_key LIKE %s ORDER BY processed_at",
                    (src.service, src.prefix, upper, pattern),
                )
            ]
    return out


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _event(row: tuple[object, ...]) -> EventRef:
    service, key, event_id, topic, at, trace_id = row
    assert isinstance(at, datetime)
    return EventRef(str(service), str(event_id), str(topic), str(key), at, _opt(trace_id))


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _journals(conn: psycopg.Connection, sources: list[Source]) -> dict[str, JournalRef]:
    ids = sorted({j for src in sources for j in src.journal_ids})
    if not ids:
        return {}
    heads: dict[str, tuple[datetime, str, str, str]] = {}
    lines: dict[str, list[JournalLine]] = defaultdict(list)
    for entry, posted, entity, currency, description, account, debit, credit in conn.execute(
        "SELECT e.entry_id, e.posted_at, e.legal_entity, e.currency, e.description, "
        "l.account_code, l.debit, l.credit FROM erp.journal_entries e "
        "JOIN erp.journal_lines l USING (entry_id) WHERE e.entry_id = ANY(%s) "
        "ORDER BY e.entry_id, l.line_no",
        (ids,),
    ):
        heads[entry] = (posted, entity, currency, description)
        lines[entry].append(JournalLine(account, debit, credit))
    out = {}
    for entry, (posted, entity, currency, description) in heads.items():
        amount = sum((x.debit for x in lines[entry]), Decimal(0))
        out[entry] = JournalRef(
            entry, posted, entity, currency, amount, description, tuple(lines[entry])
        )
    return out


def _documents(sources: list[Source]) -> list[Doc]:
    return sorted({(s.service, s.key) for s in sources if s.service and s.key})


def _dead_letters(
    conn: psycopg.Connection, sources: list[Source]
) -> dict[Doc, list[DeadLetterRef]]:
    docs = _documents(sources)
    out: dict[Doc, list[DeadLetterRef]] = defaultdict(list)
    if not docs:
        return out
    services, keys = zip(*docs, strict=True)
    for row in conn.execute(
        "SELECT d.id, d.service, d.message_key, d.error_class, d.category, d.reason, d.status, "
        "d.failed_at, d.trace_id FROM unnest(%s::text[], %s::text[]) AS k(service, key) "
        "CROSS JOIN LATERAL (SELECT * FROM finsync.dead_letters x "
        "WHERE md5(x.message_key) = md5(k.key) AND x.message_key = k.key "
        "AND x.service = k.service ORDER BY x.id DESC LIMIT %s) d ORDER BY d.id DESC",
        (list(services), list(keys), DEAD_LETTERS_PER_DOCUMENT),
    ):
        id_, service, key, error_class, category, reason, status, failed_at, trace_id = row
        out[(service, key)].append(
            DeadLetterRef(id_, service, error_class, category, reason, status, failed_at, trace_id)
        )
    return out


def _waiting(conn: psycopg.Connection, sources: list[Source]) -> dict[Doc, Waiting]:
    docs = _documents(sources)
    if not docs:
        return {}
    by_hash = {(service, key_hash(key.encode())): (service, key) for service, key in docs}
    rows: dict[Doc, list[tuple[int, datetime]]] = defaultdict(list)
    for service, digest, due_ms, parked_at in conn.execute(
        "SELECT service, key_hash, due_ms, parked_at FROM finsync.parked "
        "WHERE service = ANY(%s) AND key_hash = ANY(%s) ORDER BY seq",
        (sorted({s for s, _ in docs}), sorted({h for _, h in by_hash})),
    ):
        doc = by_hash.get((service, bytes(digest)))
        if doc is not None:
            rows[doc].append((due_ms, parked_at))
    return {
        doc: Waiting(
            doc[0],
            since=min(at for _, at in queued),
            due_at=datetime.fromtimestamp(queued[0][0] / 1000, UTC),
            queued=len(queued),
        )
        for doc, queued in rows.items()
    }

"""Seeded hostile inputs for the fuzz suite, and the valid documents they are interleaved with.

Every hostile input rides on the Kafka key of a valid document, right before or right after it,
so it shares that document's partition. It is hostile by construction: it cannot be decoded,
or it breaks an input limit of the contract, or it breaks a rule its service checks before it
waits for anything. Some valid documents come with headers under finsync's own names, copied
by their publisher from a retry topic. The same seed gives the same inputs: the same kinds, on
the same documents, mutated the same way; only the run's tag in ids and the timestamps differ.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from functools import cache
from random import Random
from typing import Any

import fastavro

from finsync.contract import limits
from finsync.contract.events import (
    AccountUpserted,
    CreditMemoIssued,
    InvoiceIssued,
    OpportunityClosed,
    PaymentSettled,
)
from finsync.domain.billing_schedule import money
from finsync.runtime import headers as h
from finsync.runtime.messages import Headers
from finsync.runtime.serde import schema_text
from finsync.scenario import documents
from finsync.scenario.crm import LEGAL_FORMS, REGIONS
from finsync.scenario.opportunities import opportunity
from finsync.scenario.plan import envelope

HEADER = "fuzz.case"  # publisher header naming each input: `<tag>/<n>` or `<tag>/valid`

# Which service consumes which topic, so which dead-letter topic a hostile input must reach.
SERVICE_OF = {
    AccountUpserted.TOPIC: "account-sync",
    OpportunityClosed.TOPIC: "subscription-activator",
    InvoiceIssued.TOPIC: "invoice-poster",
    CreditMemoIssued.TOPIC: "invoice-poster",
    PaymentSettled.TOPIC: "payment-settler",
}
TOPICS = tuple(SERVICE_OF)
WITH_LINES = (OpportunityClosed.TOPIC, InvoiceIssued.TOPIC, CreditMemoIssued.TOPIC)
WITH_AMOUNTS = (*WITH_LINES, PaymentSettled.TOPIC)

# Control characters an id may not hold; free text may hold only tab and line breaks.
CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))]
TEXT_CONTROLS = [c for c in CONTROLS if c not in "\t\n\r"]
EDGE_DAYS = (date(1, 1, 1), date(1899, 12, 31), date(3000, 1, 1), date(9999, 12, 31))
LONG_TEXT = "Zürich Überweisung 東京 lorem ipsum "  # multi-byte UTF-8 too


# ---------------------------------------------------------------- valid documents


@dataclass
class Books:
    """The valid documents of one run. Accounts and invoices depend on nothing; the rest
    depend only on those, so publishing in two phases leaves nothing waiting for long."""

    tag: str
    accounts: list[AccountUpserted] = field(default_factory=list)
    invoices: list[InvoiceIssued] = field(default_factory=list)
    opportunities: list[OpportunityClosed] = field(default_factory=list)
    credit_memos: list[CreditMemoIssued] = field(default_factory=list)
    payments: list[PaymentSettled] = field(default_factory=list)
    copied: dict[str, Headers] = field(default_factory=dict)  # document key -> retry headers

    def of(self, topic: str) -> list[Any]:
        return {
            AccountUpserted.TOPIC: self.accounts,
            InvoiceIssued.TOPIC: self.invoices,
            OpportunityClosed.TOPIC: self.opportunities,
            CreditMemoIssued.TOPIC: self.credit_memos,
            PaymentSettled.TOPIC: self.payments,
        }[topic]

    def like(self) -> str:
        """SQL LIKE pattern for every id of the run (hostile ids included)."""
        return f"%-{self.tag}-%"


def _fresh() -> dict[str, object]:
    """Each publication is a new event: a random event id, whatever the seed."""
    return {"event_id": uuid.uuid4(), "occurred_at": datetime.now(UTC)}


def books(rng: Random, tag: str, chains: int) -> Books:
    """`chains` customers, each with an account, a deal, an invoice and either a credit memo
    or payments (never both on one invoice, whose order across services is not fixed: a
    payment of the whole total would leave a later credit memo nothing to credit)."""
    b = Books(tag)
    countries: dict[str, list[str]] = {}
    for entity, _, c in REGIONS:
        countries.setdefault(entity, c)  # the entity's home currency's countries
    for i in range(1, chains + 1):
        inv = documents.invoice(rng, i)
        account_id = f"ACC-{tag}-{i:05d}"
        inv = inv.model_copy(
            update={
                **_fresh(),
                "invoice_id": f"INV-{tag}-{i:05d}",
                "account_id": account_id,
                "subscription_id": None,
            }
        )
        country = rng.choice(countries[inv.legal_entity])
        account = AccountUpserted.model_validate(
            {
                **envelope("crm", f"fuzz-{account_id}"),
                "account_id": account_id,
                # Names and tax ids of their own, so no account is a duplicate of another.
                "name": f"Fuzz {tag} Customer {i} {LEGAL_FORMS[country]}",
                "country": country,
                "currency": inv.currency,
                "tax_id": f"{country}-{tag}-{i}" if rng.random() < 0.5 else None,
                "email_domain": f"c{i}.{tag}.example",
                "legal_entity": inv.legal_entity,
                "version": 1,
            }
        )
        b.accounts.append(account)
        b.invoices.append(inv)
        b.opportunities.append(opportunity(rng, tag, i, account, date.today()))
        if i % 3 == 0:
            memo = documents.credit_memo(rng, inv)
            b.credit_memos.append(memo.model_copy(update=_fresh()))
            continue
        amount = inv.total if i % 3 == 1 else money(inv.total / 2, inv.currency)
        b.payments.append(_payment(rng, f"PAY-{tag}-{i:05d}", inv, amount, inv.invoice_id))
        if i % 6 == 2:  # and one on account, without invoice: unapplied cash
            b.payments.append(_payment(rng, f"PAY-{tag}-{i:05d}A", inv, amount, None))
    for topic in TOPICS:  # some publishers copy every header of what they forward
        for e in b.of(topic):
            if rng.random() < 0.125:
                b.copied[e.key] = _retry_ticket(rng)
    return b


def _payment(
    rng: Random, payment_id: str, inv: InvoiceIssued, amount: Decimal, invoice_id: str | None
) -> PaymentSettled:
    return PaymentSettled.model_validate(
        {
            **envelope("payments", inv.correlation_id),
            "payment_id": payment_id,
            "account_id": inv.account_id,
            "invoice_id": invoice_id,
            "amount": amount,
            "fee_amount": money(amount * Decimal("0.029"), inv.currency),
            "currency": inv.currency,
            "settled_at": datetime.now(UTC),
            "method": rng.choice(["CARD", "WIRE", "SEPA_DEBIT"]),
            "gateway_reference": f"gw_{rng.getrandbits(64):016x}",
        }
    )


# ---------------------------------------------------------------- hostile inputs


@dataclass(frozen=True)
class Hostile:
    """One hostile input, on the key of a valid document."""

    n: int
    kind: str
    topic: str
    key: bytes  # the valid document's key
    value: bytes | None
    before: bool  # published right before the valid document, else right after
    headers: Headers = field(default_factory=list)

    @property
    def service(self) -> str:
        return SERVICE_OF[self.topic]


# The Confluent framing of each topic's registered schema: topic -> magic byte and schema id.
Frames = dict[str, bytes]
Doc = dict[str, Any]  # a document's fields, as Avro takes them


@cache
def _writer(topic: str) -> Any:
    """The topic's schema with room for any number of digits: the wire format of a decimal
    does not limit them, so a publisher can send more than decimal(18,4) holds."""

    def widen(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("logicalType") == "decimal":
                return {**node, "precision": 200}
            return {k: widen(v) for k, v in node.items()}
        if isinstance(node, list):
            return [widen(x) for x in node]
        return node

    return fastavro.parse_schema(widen(json.loads(schema_text(topic))))


def avro(frames: Frames, topic: str, record: Doc) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, _writer(topic), record)
    return frames[topic] + body.getvalue()


# Each kind: (rng, topic, the valid document's fields as a dict, frames) -> the value to send.
Kind = Callable[[Random, str, Doc, Frames], bytes | None]


def _random_bytes(rng: Random, topic: str, doc: Doc, frames: Frames) -> bytes:
    return rng.randbytes(rng.randint(1, 600))


def _truncated_avro(rng: Random, topic: str, doc: Doc, frames: Frames) -> bytes:
    data = avro(frames, topic, doc)
    return data[: rng.randint(1, len(data) - 1)]


def _unknown_schema_id(rng: Random, topic: str, doc: Doc, frames: Frames) -> bytes:
    schema_id = rng.choice(
        [0, rng.randint(10**6, 2**31 - 1), rng.randint(2**31, 2**32 - 1)]  # never registered
    )  # the last ones read as negative where ids are signed 32-bit
    return b"\x00" + schema_id.to_bytes(4, "big") + avro(frames, topic, doc)[5:]


def _foreign_schema_id(rng: Random, topic: str, doc: Doc, frames: Frames) -> bytes:
    """A registered id, but of another topic's schema."""
    other = rng.choice([t for t in TOPICS if frames[t] != frames[topic]])
    return frames[other] + avro(frames, topic, doc)[5:]


def _schema_guid(rng: Random, topic: str, doc: Doc, frames: Frames) -> bytes:
    """Confluent's newer framing: magic byte 1 and a schema GUID the registry does not know."""
    return b"\x01" + rng.randbytes(16) + avro(frames, topic, doc)[5:]


def _empty(rng: Random, topic: str, doc: Doc, frames: Frames) -> bytes | None:
    return rng.choice([b"", None])  # an empty value, or a tombstone


def _json(rng: Random, topic: str, doc: Doc, frames: Frames) -> bytes:
    return json.dumps(doc, default=str).encode()  # a publisher that forgot the serializer


def _slots(doc: Doc, kind: type) -> list[tuple[Doc, str]]:
    """(container, field) of every value of a type, in the document and in its lines."""
    found = []
    for name, value in doc.items():
        if isinstance(value, kind) and not isinstance(value, Enum | bool):
            found.append((doc, name))
        elif isinstance(value, list):
            for line in value:
                found += _slots(line, kind)
    return found


def _control_chars(rng: Random, topic: str, doc: Doc, frames: Frames) -> bytes:
    holder, name = rng.choice(_slots(doc, str))
    text = holder[name]
    allowed = TEXT_CONTROLS if name in limits.TEXT_FIELDS else CONTROLS
    at = rng.randint(0, len(text))
    holder[name] = text[:at] + "".join(rng.choices(allowed, k=rng.randint(1, 3))) + text[at:]
    return avro(frames, topic, doc)


def _long_string(rng: Random, topic: str, doc: Doc, frames: Frames) -> bytes:
    holder, name = rng.choice(_slots(doc, str))
    limit = limits.MAX_TEXT if name in limits.TEXT_FIELDS else limits.MAX_ID
    size = rng.randint(limit + 1, 16_384)  # up to 16 k characters, ~20 kB of UTF-8
    holder[name] = (holder[name] + LONG_TEXT * (size // len(LONG_TEXT) + 1))[:size]
    return avro(frames, topic, doc)


def _extreme_decimal(rng: Random, topic: str, doc: Doc, frames: Frames) -> bytes:
    holder, name = rng.choice(_slots(doc, Decimal))
    whole = rng.randint(limits.MAX_DIGITS - limits.MAX_SCALE, 40)  # 10^14 is one digit over
    value = Decimal(10) ** whole + Decimal(rng.randrange(10**4)).scaleb(-4)
    holder[name] = value if rng.random() < 0.5 else -value
    return avro(frames, topic, doc)


def _negative_or_zero(rng: Random, topic: str, doc: Doc, frames: Frames) -> bytes:
    """What the contract's types allow but the service's rules refuse before they wait for
    anything: a version below 1, a quantity or price below zero, a document or payment that
    is not positive."""
    sign = rng.choice([0, -1])
    if topic == AccountUpserted.TOPIC:
        doc["version"] = rng.choice([0, -1, -(2**31)])
    elif topic == OpportunityClosed.TOPIC:
        line = rng.choice(doc["lines"])
        if rng.random() < 0.7:
            line["quantity"] = Decimal(rng.choice([0, -1, -40]))
        else:
            line["unit_price"] = -line["unit_price"] - 1
    elif topic == PaymentSettled.TOPIC:
        if rng.random() < 0.7:
            doc["amount"] = doc["amount"] * sign
            doc["fee_amount"] = Decimal(0)
        else:
            doc["fee_amount"] = -doc["fee_amount"] - 1
    else:  # an invoice or credit memo that adds up, to zero or below
        for line in doc["lines"]:
            line["amount"] *= sign
            line["tax_amount"] *= sign
        for name in ("subtotal", "tax_total", "total"):
            doc[name] *= sign
    return avro(frames, topic, doc)


def _edge_date(rng: Random, topic: str, doc: Doc, frames: Frames) -> bytes:
    holder, name = rng.choice(_slots(doc, date))  # datetimes are dates too
    day = rng.choice(EDGE_DAYS)
    if isinstance(holder[name], datetime):
        holder[name] = datetime.combine(day, datetime.min.time(), UTC) + timedelta(
            seconds=rng.randrange(86_400)
        )
    else:
        holder[name] = day
    return avro(frames, topic, doc)


def _retry_ticket(rng: Random) -> Headers:
    """Headers of a record waiting in a retry topic: its ticket in its key's queue."""
    return [
        (h.RETRY_SEQ, str(rng.randint(1, 10**6)).encode()),
        (h.RETRY_GENERATION, str(rng.randint(0, 3)).encode()),
        (h.RETRY_ATTEMPTS, str(rng.randint(1, 9)).encode()),
    ]


def forged_headers(rng: Random) -> Headers:
    """Headers under finsync's own names, copied from a retry or dead-letter topic or made up:
    they must not make an input pass for a retry, nor break how a failed one is routed."""
    pool = [
        *_retry_ticket(rng),
        (h.RETRY_ATTEMPTS, rng.choice([b"x", b"", b"-1", b"99999999999999999999"])),
        (h.RETRY_FIRST_FAILURE, rng.choice([b"0", b"yesterday"])),
        (h.RETRY_NOT_BEFORE, b"99999999999999"),
        (h.RETRY_TOPIC, rng.choice(TOPICS).encode()),
        (h.RETRY_OFFSET, b"-7"),
        (h.ERR_EXCEPTION_MESSAGE, b""),
    ]
    return rng.sample(pool, rng.randint(1, len(pool)))


def _forged_headers(rng: Random, topic: str, doc: Doc, frames: Frames) -> bytes:
    """Undecodable, and under headers of finsync's own (see `forged_headers`)."""
    return _json(rng, topic, doc, frames)


def _too_many_lines(rng: Random, topic: str, doc: Doc, frames: Frames) -> bytes:
    template = doc["lines"][0]
    count = rng.randint(limits.MAX_LINES + 1, limits.MAX_LINES + 50)
    doc["lines"] = [{**template, "line_id": str(k)} for k in range(1, count + 1)]
    return avro(frames, topic, doc)


# The kinds, and the topics each applies to (a CRM account has no amounts and no lines).
KINDS: dict[str, tuple[Kind, tuple[str, ...]]] = {
    "random-bytes": (_random_bytes, TOPICS),
    "truncated-avro": (_truncated_avro, TOPICS),
    "unknown-schema-id": (_unknown_schema_id, TOPICS),
    "foreign-schema-id": (_foreign_schema_id, TOPICS),
    "schema-guid": (_schema_guid, TOPICS),
    "empty-value": (_empty, TOPICS),
    "json": (_json, TOPICS),
    "control-chars": (_control_chars, TOPICS),
    "long-string": (_long_string, TOPICS),
    "extreme-decimal": (_extreme_decimal, WITH_AMOUNTS),
    "negative-or-zero": (_negative_or_zero, TOPICS),
    "edge-date": (_edge_date, TOPICS),
    "too-many-lines": (_too_many_lines, WITH_LINES),
    "forged-headers": (_forged_headers, TOPICS),
}


def hostile(rng: Random, b: Books, frames: Frames, count: int) -> list[Hostile]:
    """`count` hostile inputs, the kinds taken in turn, each on a random valid document of a
    topic the kind applies to."""
    out = []
    for n in range(count):
        kind = list(KINDS)[n % len(KINDS)]
        make, topics = KINDS[kind]
        topic = rng.choice(topics)
        valid = rng.choice(b.of(topic))
        before = rng.random() < 0.5
        doc = valid.model_dump()
        doc["event_id"] = uuid.UUID(int=rng.getrandbits(128), version=4)
        if not before:
            # After the valid document, under an id of its own: the same id would be a re-send
            # of a document that took effect, which the inbox skips as a duplicate by design.
            doc[valid.KEY_FIELD] = f"{valid.key}-H{n}"
        value = make(rng, topic, doc, frames)
        forged = forged_headers(rng) if make is _forged_headers else []
        out.append(Hostile(n, kind, topic, valid.key.encode(), value, before, forged))
    return out


def interleaved(b: Books, inputs: list[Hostile], topics: tuple[str, ...]) -> Iterator[Any]:
    """Per valid document of `topics`: its hostile inputs of `before`, it, those of after."""
    on: dict[tuple[str, bytes], list[Hostile]] = {}
    for x in inputs:
        on.setdefault((x.topic, x.key), []).append(x)
    for topic in topics:
        for valid in b.of(topic):
            mine = on.get((topic, valid.key.encode()), [])
            yield from (x for x in mine if x.before)
            yield valid
            yield from (x for x in mine if not x.before)

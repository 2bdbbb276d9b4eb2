"""The reference ERP's FX: each legal entity's functional currency, the rates table
(erp.fx_rates) and its loader, and the rate a journal is converted at.

A rate a posted journal used never changes. A posting locks the rate row it uses (FOR SHARE)
until it commits, and takes the rate from that locked read; the loader locks the rows it
would change (FOR UPDATE) before it looks for journals that used them. So either the loader
sees the posting's journal and refuses, or the posting waits and converts at the new rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import psycopg

from finsync.contract.events import JournalLine
from finsync.domain import fx
from finsync.domain.accounting import MINOR_UNITS, Journal
from finsync.domain.fx import Quote, Rate
from finsync.errors import DependencyNotReady, InvalidEvent
from finsync.ports.erp import CrossRate


@dataclass(frozen=True)
class Entity:
    legal_entity: str
    functional_currency: str | None  # None: not listed, books in each journal's own currency
    cross_rate_application: bool = False


def entity(conn: psycopg.Connection, legal_entity: str) -> Entity:
    row = conn.execute(
        "SELECT functional_currency, cross_rate_application FROM erp.legal_entities "
        "WHERE legal_entity = %s",
        (legal_entity,),
    ).fetchone()
    return Entity(legal_entity, None) if row is None else Entity(legal_entity, row[0], row[1])


def pair_rates(conn: psycopg.Connection, a: str, b: str) -> list[Rate]:
    """Every loaded rate between the two currencies, both directions."""
    rows = conn.execute(
        "SELECT rate_date, from_currency, to_currency, rate FROM erp.fx_rates "
        "WHERE (from_currency, to_currency) IN ((%s, %s), (%s, %s))",
        (a, b, b, a),
    ).fetchall()
    return [Rate(*r) for r in rows]


def lock(conn: psycopg.Connection, quote: Quote, from_currency: str) -> Quote:
    """The quote (of a rate from `from_currency`) with its rate row locked to the end of the
    transaction, re-read: a load that committed while this waited changed it, and its new
    value is the one to use."""
    source = quote.source
    if source is None:
        return quote
    row = conn.execute(
        "SELECT rate FROM erp.fx_rates WHERE from_currency = %s AND to_currency = %s "
        "AND rate_date = %s FOR SHARE",
        (source.from_currency, source.to_currency, source.rate_date),
    ).fetchone()
    if row is None or row[0] == source.rate:
        return quote
    fresh = Rate(source.rate_date, source.from_currency, source.to_currency, row[0])
    inverted = source.from_currency != from_currency
    return Quote(fx.inverse(row[0]) if inverted else row[0], fresh)


@dataclass
class Plan:
    added: list[Rate] = field(default_factory=list)
    changed: list[tuple[Rate, Rate]] = field(default_factory=list)  # (before, after)
    unchanged: list[Rate] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # used rates the file would change


def load(conn: psycopg.Connection, rates: list[Rate]) -> Plan:
    """Add the file's rates and change those that differ, in the caller's transaction; a rate
    a posted journal used is refused (Plan.refused; the caller rolls back)."""
    keys = [(r.from_currency, r.to_currency, r.rate_date) for r in rates]
    existing = {
        (f, t, d): Rate(d, f, t, rate)
        for f, t, d, rate in conn.execute(
            "SELECT r.from_currency, r.to_currency, r.rate_date, r.rate FROM erp.fx_rates r "
            "JOIN unnest(%s::text[], %s::text[], %s::date[]) AS k(f, t, d) "
            "ON (r.from_currency, r.to_currency, r.rate_date) = (k.f, k.t, k.d) "
            "ORDER BY 1, 2, 3 FOR UPDATE OF r",
            ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
        ).fetchall()
    }
    plan = Plan()
    for rate, key in zip(rates, keys, strict=True):
        before = existing.get(key)
        if before is None:
            plan.added.append(rate)
        elif before.rate == rate.rate:
            plan.unchanged.append(rate)
        else:
            plan.changed.append((before, rate))
    for before, after in plan.changed:
        used = conn.execute(
            "SELECT count(*), min(idempotency_key) FROM erp.journal_entries "
            "WHERE rate_from = %s AND rate_to = %s AND rate_date = %s",
            (before.from_currency, before.to_currency, before.rate_date),
        ).fetchone()
        if used and used[0]:
            plan.refused.append(
                f"{before.from_currency}->{before.to_currency} on {before.rate_date} is "
                f"{before.rate.normalize():f}, which {used[0]} posted journal(s) used (e.g. "
                f"{used[1]}): it cannot become {after.rate.normalize():f}"
            )
    if plan.refused:
        return plan
    write = plan.added + [after for _, after in plan.changed]
    if write:
        conn.execute(
            "INSERT INTO erp.fx_rates (rate_date, from_currency, to_currency, rate) "
            "SELECT * FROM unnest(%s::date[], %s::text[], %s::text[], %s::numeric[]) "
            "ON CONFLICT (from_currency, to_currency, rate_date) DO UPDATE "
            "SET rate = excluded.rate, loaded_at = now()",
            (
                [r.rate_date for r in write],
                [r.from_currency for r in write],
                [r.to_currency for r in write],
                [r.rate for r in write],
            ),
        )
    return plan


@dataclass(frozen=True)
class Listed:
    rate: Rate
    loaded_at: datetime | None  # None: derived (an inverse), not loaded
    used: int  # posted journals that used it


def listing(
    conn: psycopg.Connection, from_: str | None, to: str | None, on: date | None
) -> list[Listed]:
    """The loaded rates, filtered; with `on`, only each pair's rate in force that day."""
    rows = conn.execute(
        "SELECT r.rate_date, r.from_currency, r.to_currency, r.rate, r.loaded_at, "
        "  (SELECT count(*) FROM erp.journal_entries e WHERE e.rate_from = r.from_currency "
        "   AND e.rate_to = r.to_currency AND e.rate_date = r.rate_date) "
        "FROM erp.fx_rates r "
        "WHERE (%(f)s::text IS NULL OR r.from_currency = %(f)s) "
        "AND (%(t)s::text IS NULL OR r.to_currency = %(t)s) "
        "AND (%(on)s::date IS NULL OR r.rate_date <= %(on)s) "
        "ORDER BY r.from_currency, r.to_currency, r.rate_date",
        {"f": from_, "t": to, "on": on},
    ).fetchall()
    listed = [Listed(Rate(d, f, t, rate), at, used) for d, f, t, rate, at, used in rows]
    if on is None:
        return listed
    latest: dict[tuple[str, str], Listed] = {}
    for x in listed:  # in date order: the last one wins
        latest[(x.rate.from_currency, x.rate.to_currency)] = x
    if not latest and from_ and to:  # only the other direction: its inverse
        quote = fx.find(pair_rates(conn, from_, to), from_, to, on)
        if quote is not None and quote.source is not None:
            return [Listed(Rate(quote.source.rate_date, from_, to, quote.rate), None, 0)]
    return list(latest.values())


@dataclass(frozen=True)
class Booking:
    """A journal's lines as booked: with functional amounts, and the loaded rate used."""

    functional_currency: str
    lines: tuple[JournalLine, ...]
    source: Rate | None  # None: the journal is in its functional currency


class Converter:
    """Journals into functional currency, for one unit of work: each entity's functional
    currency and each pair's rates are read once, and each rate row used is locked once."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._entities: dict[str, Entity] = {}
        self._rates: dict[frozenset[str], list[Rate]] = {}
        self._quotes: dict[tuple[str, str, date], Quote] = {}

    def entity(self, legal_entity: str) -> Entity:
        if legal_entity not in self._entities:
            self._entities[legal_entity] = entity(self.conn, legal_entity)
        return self._entities[legal_entity]

    def quote(self, from_: str, to: str, on: date) -> Quote:
        """The rate from -> to on the day; DependencyNotReady (with the rate to load) if none."""
        if from_ == to:
            return Quote(fx.ONE)  # no rate to read or lock
        key = (from_, to, on)
        if key not in self._quotes:
            pair = frozenset((from_, to))
            if pair not in self._rates:
                self._rates[pair] = pair_rates(self.conn, from_, to)
            quote = fx.find(self._rates[pair], from_, to, on)
            if quote is None:
                raise DependencyNotReady(fx.missing_rate(from_, to, on))
            self._quotes[key] = lock(self.conn, quote, from_)
        return self._quotes[key]

    def cross_rate(self, legal_entity: str, from_: str, to: str, on: date) -> CrossRate | None:
        """None: the entity does not apply a payment to invoices in another currency."""
        found = self.entity(legal_entity)
        if not found.cross_rate_application:
            return None
        return CrossRate(self.quote(from_, to, on).rate, found.functional_currency or to)

    def book(self, journal: Journal, on: date) -> Booking:
        functional = self.entity(journal.legal_entity).functional_currency or journal.currency
        if functional not in MINOR_UNITS:
            raise InvalidEvent(f"legal entity {journal.legal_entity} books in {functional!r}")
        quote = self.quote(journal.currency, functional, on)
        lines = fx.convert(journal.lines, functional, quote.rate)
        return Booking(functional, lines, quote.source)


# The sample rates (month starts 2025-01..2027-12, USD, EUR, GBP, JPY) the demo loads.
SAMPLE = Path(__file__).resolve().parents[4] / "deploy" / "fx-rates.sample.csv"


def load_sample(conn: psycopg.Connection) -> Plan | None:
    """Load deploy/fx-rates.sample.csv in the caller's transaction, if the file is there (a
    source checkout); rates a journal used and the sample would change are left as they are."""
    from finsync.domain.fx_rates_file import parse

    if not SAMPLE.exists():
        return None
    return load(conn, parse(SAMPLE.read_text(encoding="utf-8")))  # refused: caller rolls back

"""The faust-streaming app: reads the streams, counts each event once into a changelogged
table, and serves and publishes the figures.

Counting once: the table `counted` holds, under each event's count key, the facts it added. An
event counts only if its key is not there yet, and that one table write is the whole of its
effect, so a crash leaves an event counted or not, never half. Faust flushes the changelog
before it commits the offsets; an event delivered again after a restart finds its key
recovered from the changelog and is skipped. The in-memory Ledger is rebuilt from the table
whenever the table is recovered.

One instance reads every partition: the figures are totals over all of them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import faust
from faust.web import Request, Response, View

from finsync.contract.topics import ANALYTICS, dlq_topic
from finsync.errors import Outage
from finsync.runtime.failures import dead_letter
from finsync.runtime.messages import Headers, Record
from finsync.runtime.serde import Serde, registry_client
from finsync.settings import Settings

from .facts import Fact, of_dead_letter
from .ledger import Ledger
from .publishing import Publisher
from .reader import Streams, count_key, dead_letter_key, facts_of
from .views import as_json

log = logging.getLogger("finsync.finance-analytics")
OUTAGE_WAIT = (1.0, 30.0)  # first and longest wait while the registry is out


def _credentials(s: Settings) -> Any:
    context = None
    if "SSL" in s.kafka_security_protocol:
        context = ssl.create_default_context(cafile=s.kafka_ssl_ca_location or None)
    if s.kafka_sasl_mechanism:
        return faust.SASLCredentials(
            username=s.kafka_sasl_username,
            password=s.kafka_sasl_password,
            mechanism=s.kafka_sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context) if context else None


def _record(event: faust.EventT[bytes]) -> Record:
    m = event.message
    raw: Any = m.headers.items() if isinstance(m.headers, Mapping) else (m.headers or [])
    headers: Headers = [(str(k), v) for k, v in raw]
    return Record(m.topic, m.partition, m.offset, int(m.timestamp * 1000), m.key, m.value, headers)


class Analytics:
    def __init__(self, settings: Settings, streams: Streams | None = None) -> None:
        self.settings = settings
        self.streams = streams = streams or Streams()
        self.serde = Serde(registry_client(settings))
        self.ledger = Ledger()
        self.publisher = Publisher()
        self.ready = False
        self._published: tuple[int, date] | None = None  # ledger version and day last sent
        tables = settings.home / "analytics" / streams.group
        tables.parent.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
        self.app = app = faust.App(
            streams.group,  # also the consumer group
            broker=f"kafka://{settings.kafka_bootstrap}",
            broker_credentials=_credentials(settings),
            # On disk: memory stays flat however many events it has counted; the changelog
            # restores it on another machine.
            store="rocksdb://",
            # RocksDB's defaults cache up to 2.5 GiB; the table is read back only to recover.
            rocksdb_options={
                "block_cache_size": 64 * 2**20,
                "block_cache_compressed_size": 16 * 2**20,
                "write_buffer_size": 16 * 2**20,
            },
            datadir=str(tables),  # its tables, on disk
            topic_partitions=settings.topic_partitions,
            topic_replication_factor=1,
            topic_allow_declare=True,  # its own changelog topics; the streams must exist
            consumer_auto_offset_reset="earliest",
            key_serializer="raw",
            value_serializer="raw",
            web_host=settings.analytics_host,
            web_port=settings.analytics_port,
            web_bind=settings.analytics_host,
            producer_acks=-1,
            # A member killed without leaving holds its partitions this long: finsync's setting,
            # not faust's minute.
            broker_session_timeout=settings.session_timeout_seconds,
            broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        )
        self.counted = app.Table("counted", partitions=settings.topic_partitions)
        # Dead-letter topics have one partition; a table is partitioned like its stream.
        self.counted_letters = app.Table("counted-dead-letters", partitions=1)
        for table in (self.counted, self.counted_letters):
            table.on_recover(self._rebuild)
        app.agent(app.topic(*streams.events), name="count-events")(self._count_events)
        app.agent(app.topic(*streams.dead_letters), name="count-dead-letters")(
            self._count_dead_letters
        )
        if streams.publish:
            app.timer(settings.analytics_publish_seconds, name="publish-kpis")(self._publish)
        analytics = self

        @app.page("/kpis")
        class Kpis(View):
            async def get(self, request: Request) -> Response:
                try:
                    days = min(max(int(request.query.get("days", "90")), 1), 400)
                except ValueError:
                    return self.json({"error": "days must be a whole number"}, status=400)
                today = datetime.now(UTC).date()
                return self.json(as_json(analytics.ledger, analytics.ready, days, today))

    async def _rebuild(self) -> None:
        ledger = Ledger()
        for table in (self.counted, self.counted_letters):
            for value in table.values():
                ledger.add(Fact.from_json(v) for v in value)
        self.ledger = ledger
        if not self.ready:
            log.info("%s started: %d events counted so far", self.streams.group, ledger.counted)
        self.ready = True

    async def _count_events(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            m = event.message
            try:
                decoded = await self._decode(self.streams.events[m.topic], m.value)
                key = count_key(decoded)
                found = None if key in self.counted else facts_of(decoded)
            except Exception as exc:  # bad bytes, unknown schema, over the limits
                await self._dead_letter(event, exc)
                continue
            if found is not None:
                self.counted[key] = [f.as_json() for f in found]
                self.ledger.add(found)

    async def _count_dead_letters(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            m = event.message
            key = dead_letter_key(m.topic, m.partition, m.offset)
            if key not in self.counted_letters:
                found = of_dead_letter(self.streams.dead_letters[m.topic], int(m.timestamp * 1000))
                self.counted_letters[key] = [f.as_json() for f in found]
                self.ledger.add(found)

    async def _decode(self, topic: str, value: bytes | None) -> Any:
        """The typed event; a registry outage is waited out, never blamed on the event."""
        wait = OUTAGE_WAIT[0]
        while True:
            try:
                return self.serde.decode(topic, value)
            except Outage as exc:
                log.warning("schema registry out (%s); trying again in %.0fs", exc, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, OUTAGE_WAIT[1])

    async def _dead_letter(self, event: faust.EventT[bytes], exc: Exception) -> None:
        record = _record(event)
        letter = dead_letter(
            record,
            exc,
            service=ANALYTICS,
            stage="decode",
            now_ms=int(time.time() * 1000),
            trace_id=None,
        )
        headers = [(k, v if v is not None else b"") for k, v in letter.headers]
        await self.app.producer.send_and_wait(
            dlq_topic(ANALYTICS), letter.key, letter.value, None, None, headers
        )
        log.warning(
            "dead letter: %s[%d]@%d, %s",
            record.topic,
            record.partition,
            record.offset,
            type(exc).__name__,
        )

    async def _publish(self) -> None:
        """Changed days' figures, at most once per interval: a burst of events is one update.
        A failed send is tried again at the next tick (those days are not marked sent)."""
        now = datetime.now(UTC)
        news = (self.ledger.version, now.date())
        if not self.ready or news == self._published:
            return
        try:
            for kpis in self.publisher.changed(self.ledger, now):
                out = self.serde.outgoing(kpis)
                await self.app.producer.send_and_wait(
                    out.topic, out.key, out.value, None, None, None
                )
                self.publisher.mark_sent(kpis)
        except Exception as exc:  # stopping, Kafka or the registry out: never the app's end
            log.warning("figures not published (%s); trying again", type(exc).__name__)
            return
        self._published = news

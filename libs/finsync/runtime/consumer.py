"""The consumer loop: the one place a service reads Kafka.

consume a batch -> process it in one database transaction -> commit offsets. Offsets are
committed only after the transaction, so a crash in between redelivers, and the inbox makes
the redelivery a no-op. Retry records that are not due yet pause their partition, and only
that partition, until they are.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

import psycopg
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from finsync.contract.topics import retry_topic
from finsync.runtime import clients, db, faults, heartbeat, metrics
from finsync.runtime.failures import not_before_ms
from finsync.runtime.messages import Record
from finsync.runtime.processing import BatchProcessor
from finsync.settings import Settings

log = logging.getLogger("finsync.consumer")

BATCH_WAIT = 0.05  # seconds a poll waits for the first record of a batch
PROGRESS_EVERY = 30.0  # seconds between progress lines in the log


def _not_committed(err: KafkaError) -> None:
    log.warning(
        "offsets not committed (%s); the records will be redelivered and skipped as duplicates",
        err,
    )


def _committed(err: KafkaError | None, _: list[TopicPartition]) -> None:
    """Kafka's answer to an offset commit, served by the loop's next poll."""
    if err is not None and err.code() != KafkaError._NO_OFFSET:
        _not_committed(err)


class ConsumerLoop:
    def __init__(self, processor: BatchProcessor, settings: Settings) -> None:
        self.processor = processor
        self.settings = settings
        self.name = processor.service.name
        self.stats: Counter[str] = Counter()  # since the last progress line
        self.totals: Counter[str] = Counter()
        self.meters = metrics.ConsumerMeters(self.name, metrics.OutboxBacklog(settings, self.name))
        self._next_progress = time.monotonic() + PROGRESS_EVERY
        self._paused: dict[tuple[str, int], int] = {}  # partition -> due epoch ms
        self._conn: psycopg.Connection | None = None
        self.consumer = clients.consumer(settings, self.name, on_commit=_committed)
        self.heartbeat = heartbeat.Heartbeat(settings, self.name, "consumer")
        self._next_beat = 0.0
        self._positions = heartbeat.Positions()
        self._rebalances = 0  # partitions revoked so far

    def run(self, stop: threading.Event) -> None:
        topics = [*self.processor.service.handlers, retry_topic(self.name)]
        self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info("consuming %s as group %s", ", ".join(topics), self.name)
        self.heartbeat.start()
        outage_wait = 1.0
        try:
            while not stop.is_set():
                self._resume_due()
                self._log_progress()
                self.meters.sample_lag(self.consumer)
                self._beat()
                messages = self._next_batch()
                records = [clients.to_record(m) for m in messages if not self._skip(m)]
                if not records:
                    continue
                try:
                    self._process(records)
                    outage_wait = 1.0
                except Exception as exc:
                    if not db.is_outage(exc):
                        raise
                    log.error("%s; the batch will be retried in %.0fs", exc, outage_wait)
                    self._close_db()
                    self._rewind(records)
                    stop.wait(outage_wait)
                    outage_wait = min(outage_wait * 2, 30.0)
        finally:
            self._close_db()
            self.consumer.close()  # leaves the group at once, so partitions move on quickly
            # Its row goes on a stop asked for; after a crash it stays, and shows as gone.
            self.heartbeat.stop(remove=stop.is_set())
            log.info("consumer stopped", extra={"counts": dict(self.totals)})

    def _next_batch(self) -> list[Message]:
        """What has arrived, up to a batch, waiting only while nothing has. A batch never waits
        to fill: under load, what came in while the last batch was processed makes the next one
        large, and a lone record goes at once. A record's redelivery may so come in a later
        batch than its retry copy: parking.Queues tells it apart in any batch."""
        rebalances = self._rebalances
        first = self.consumer.poll(BATCH_WAIT)
        if first is None:
            return []
        batch = [first, *self.consumer.consume(self.settings.batch_size - 1, timeout=0)]
        if self._rebalances != rebalances:
            # `first` came before a rebalance: keep only records of partitions still ours (a
            # partition taken away is read again, from its committed offset, by its new owner).
            ours = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
            batch = [m for m in batch if (m.topic(), m.partition()) in ours]
        return batch

    def _skip(self, msg: Message) -> bool:
        err = msg.error()
        if err is None:
            return False
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error: %s", err)
        return True

    def _process(self, records: list[Record]) -> None:
        self.meters.polled(records)
        ready = self._hold_back_not_due(records)
        if not ready:
            return
        if self._conn is None or self._conn.closed:
            self._conn = db.connect(self.settings)
        started = time.monotonic()
        counts = self.processor.process(self._conn, ready)
        faults.pause_at(faults.BEFORE_OFFSET_COMMIT)
        last: dict[tuple[str, int], int] = {}
        for r in ready:
            last[(r.topic, r.partition)] = r.offset
        try:
            # Not waited for: the database has committed, so an offset commit that fails or is
            # lost (a crash, a rebalance) only redelivers records the inbox skips. Waiting cost
            # a broker round trip a batch, which at 1,000 events/s is a batch's 2 ms in 35.
            self.consumer.commit(
                offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()],
                asynchronous=True,
            )
        except KafkaException as exc:
            _not_committed(exc.args[0])
        self.stats.update(counts)
        self.totals.update(counts)
        self.meters.committed(ready, counts, time.monotonic() - started)

    def lag(self) -> int:
        """Records on the assigned partitions not consumed yet (from cached watermarks)."""
        return sum(p.lag or 0 for p in self.partitions())

    def partitions(self) -> list[heartbeat.PartitionState]:
        """Each assigned partition with its lag (None until an offset and watermark are
        known) and whether it is paused for a retry that is not due."""
        return self._positions.states(self.consumer, self._paused)

    def _beat(self) -> None:
        """Hand the heartbeat this instance's partitions and counts every few seconds; it
        writes them from its own thread, so the loop never waits for the database here."""
        if time.monotonic() < self._next_beat:
            return
        urgent = self._next_beat == 0.0  # the assignment changed
        self._next_beat = time.monotonic() + heartbeat.EVERY_SECONDS
        counts = dict.fromkeys(heartbeat.OUTCOMES, 0) | dict(self.totals)
        self.heartbeat.report(heartbeat.Beat(counts, self.partitions()), urgent)

    def _log_progress(self) -> None:
        if time.monotonic() < self._next_progress:
            return
        self._next_progress = time.monotonic() + PROGRESS_EVERY
        if self.stats:
            log.info(
                "progress",
                extra={
                    "counts": dict(self.stats),
                    "lag": self.lag(),
                    "paused_partitions": len(self._paused),
                },
            )
            self.stats.clear()

    def _hold_back_not_due(self, records: list[Record]) -> list[Record]:
        """Keep retry records that are not due (and what follows them) for later."""
        now = int(time.time() * 1000)
        retry = retry_topic(self.name)
        held: set[tuple[str, int]] = set()
        ready = []
        for r in records:
            tp = (r.topic, r.partition)
            if tp in held:
                continue
            due = not_before_ms(r) if r.topic == retry else 0
            if due > now:
                held.add(tp)
                self._paused[tp] = due
                part = TopicPartition(r.topic, r.partition, r.offset)
                self.consumer.pause([part])
                self.consumer.seek(part)
                continue
            ready.append(r)
        return ready

    def _resume_due(self) -> None:
        now = int(time.time() * 1000)
        due = [tp for tp, at in self._paused.items() if at <= now]
        if due:
            self.consumer.resume([TopicPartition(t, p) for t, p in due])
            for tp in due:
                del self._paused[tp]

    def _rewind(self, records: list[Record]) -> None:
        """Seek each partition back to the first record of the failed batch."""
        first: dict[tuple[str, int], int] = {}
        for r in records:
            first.setdefault((r.topic, r.partition), r.offset)
        for (t, p), o in first.items():
            self.consumer.seek(TopicPartition(t, p, o))

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # librdkafka keeps a partition's pause flag when the partition is assigned again, but
        # our note of why it was paused went with the revoke: start every assigned partition
        # flowing; a record that is still not due pauses it again.
        consumer.resume(partitions)
        self._positions.forget()
        self._next_beat = 0.0  # the new assignment shows in the next heartbeat

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._rebalances += 1
        for tp in partitions:
            self._paused.pop((tp.topic, tp.partition), None)
        self._next_beat = 0.0

    def _close_db(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

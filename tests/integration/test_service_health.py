"""Service health on the real stack: a running service's consumer and relay report themselves
in finsync.service_instances and show in the overview with their partitions and rates; a clean
stop removes them; an instance that stops beating shows as gone; a heartbeat never makes its
service wait for the database; a relay standing by is not the one that publishes."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import pytest

from finsync.ops import health
from finsync.runtime import clients, db
from finsync.runtime.heartbeat import Beat, Heartbeat
from finsync.runtime.relay import Relay
from finsync.settings import Settings
from tests.support import Forwarder, ServiceProcess, eventually, publish_raw

pytestmark = pytest.mark.integration

SERVICE = "invoice-poster"
TOPICS = ("billing.credit-memo-issued", "billing.invoice-issued", "invoice-poster.retry")


def _children(pid: int) -> set[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(c) for c in children}


def _partitions(settings: Settings) -> set[tuple[str, int]]:
    metadata = clients.admin(settings).list_topics(timeout=10).topics
    return {(t, p) for t in TOPICS for p in metadata[t].partitions}


def _service(settings: Settings) -> health.ServiceHealth:
    with db.connect(settings) as conn:
        return {h.service: h for h in health.overview(conn)}[SERVICE]


def test_a_running_service_shows_its_instance_partitions_relay_and_rates_until_it_stops(
    settings: Settings, tmp_path: Path
) -> None:
    service = ServiceProcess(SERVICE, tmp_path).start()
    assert service.proc is not None
    pid, host = service.proc.pid, socket.gethostname()
    every = _partitions(settings)
    relay_pids: list[int] = []
    try:

        def assigned() -> health.ServiceHealth | None:
            h = _service(settings)
            mine = [i for i in h.instances if i.pid == pid and i.role == "consumer"]
            covered = {(p.topic, p.partition) for p in h.partitions} == every
            # What earlier runs left on the source topics is done. Not on the retry topic: a
            # record whose dependency never comes keeps it paused, with lag, for its budget.
            caught_up = all(p.lag == 0 for p in h.partitions if not p.topic.endswith(".retry"))
            ready = mine and mine[0].partitions and covered and caught_up and h.relay_alive
            seen.append(h)
            return h if ready else None

        seen: list[health.ServiceHealth] = []
        try:
            h = eventually(assigned, 60, "the instance with its partitions and a live relay")
        except AssertionError:
            last = seen[-1]
            print("instances:", [(i.role, i.pid, i.gone, i.active) for i in last.instances])
            print("partitions:", [(p.topic, p.partition, p.lag, p.paused) for p in last.partitions])
            raise
        assert h.state == "up"
        [mine] = [i for i in h.instances if i.pid == pid and i.role == "consumer"]
        assert mine.host == host and not mine.gone and mine.started_at <= mine.seen_at
        assert {(p.topic, p.partition) for p in mine.partitions} <= every
        assert all(p.instance == mine.instance_id and not p.paused for p in mine.partitions)
        relays = [i for i in h.instances if i.role == "relay" and i.pid in _children(pid)]
        assert [(r.active, r.gone) for r in relays] == [(True, False)]
        relay_pids = [r.pid for r in relays]

        # A record it cannot decode: counted, and its rate shows for the last minute.
        before = mine.counts["dead-lettered"]
        publish_raw(settings, "billing.invoice-issued", f"HEALTH-{uuid.uuid4().hex}".encode(), b"x")

        def counted() -> health.Instance | None:
            found = [i for i in _service(settings).instances if i.instance_id == mine.instance_id]
            return found[0] if found and found[0].counts["dead-lettered"] > before else None

        later = eventually(counted, 30, "the dead letter counted in the heartbeat")
        assert later.counts["dead-lettered"] >= before + 1  # and any retries that ran out
        assert later.rates["dead-lettered"] > 0
    finally:
        assert service.stop() == 0
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT role FROM finsync.service_instances WHERE host = %s AND pid = ANY(%s)",
            (host, [pid, *relay_pids]),
        ).fetchall()
    assert rows == []  # a clean stop removes its rows: not gone, stopped
    assert all(i.pid != pid for i in _service(settings).instances)


def test_an_instance_that_stops_beating_is_gone_and_a_heartbeat_never_waits_for_the_database(
    settings: Settings,
) -> None:
    url = urlparse(settings.database_url)
    database = Forwarder(url.port or 5432)  # not listening yet: the database is "down"
    down = url._replace(netloc=f"{url.username}:{url.password}@127.0.0.1:{database.port}")
    name = f"test-health-{uuid.uuid4().hex[:8]}"
    beat = Heartbeat(replace(settings, database_url=down.geturl()), name, "consumer", 0.2)
    beat.start()
    try:
        started = time.monotonic()
        beat.report(Beat({"processed": 3}), urgent=True)
        assert time.monotonic() - started < 0.05  # it only hands the numbers over
        time.sleep(1.5)  # beats fail meanwhile, quietly
        database.start()

        def row() -> tuple[object, ...] | None:
            with db.connect(settings) as conn:
                return conn.execute(
                    "SELECT pid, counts FROM finsync.service_instances WHERE service = %s",
                    (name,),
                ).fetchone()

        assert eventually(row, 15, "the heartbeat once the database is back") == (
            os.getpid(),
            {"processed": 3},
        )
        stopping = time.monotonic()
        beat.stop(remove=False)  # as after a crash: the row stays and goes stale
        assert time.monotonic() - stopping < 3
        with db.connect(settings) as conn:
            [mine] = [i for i in health.instances(conn, gone_after_seconds=60) if i.service == name]
            assert not mine.gone
        time.sleep(1.2)
        with db.connect(settings) as conn:
            [mine] = [i for i in health.instances(conn, gone_after_seconds=1) if i.service == name]
            assert mine.gone
    finally:
        beat.stop()
        database.stop()
        with db.connect(settings) as conn:
            conn.execute("DELETE FROM finsync.service_instances WHERE service = %s", (name,))


def test_a_relay_standing_by_is_alive_but_not_active_until_it_takes_over(
    settings: Settings,
) -> None:
    service = f"test-health-{uuid.uuid4().hex[:8]}"
    first, second = Relay(service, settings), Relay(service, settings)
    stops = [threading.Event(), threading.Event()]
    threads = [threading.Thread(target=first.run, args=(stops[0],)),
               threading.Thread(target=second.run, args=(stops[1],))]  # fmt: skip

    def relays() -> list[tuple[bool, bool]]:
        with db.connect(settings) as conn:
            found = [i for i in health.instances(conn) if i.service == service]
        return sorted((i.active, i.gone) for i in found)

    try:
        threads[0].start()
        eventually(lambda: relays() == [(True, False)], 15, "the first relay active")
        threads[1].start()
        eventually(lambda: relays() == [(False, False), (True, False)], 15, "one standing by")
        stops[0].set()
        threads[0].join(30)
        eventually(lambda: relays() == [(True, False)], 20, "the standby to take over")
    finally:
        for stop in stops:
            stop.set()
        for t in threads:
            t.join(30)
    assert relays() == []  # stopped cleanly, both rows removed

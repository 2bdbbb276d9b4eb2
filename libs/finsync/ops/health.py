"""How each service is doing, from its instances' heartbeats (finsync.service_instances), its
outbox and its dead-letter index: what the console's overview shows.

An instance whose heartbeat is older than GONE_AFTER_SECONDS is gone (killed, hung, or cut off
from the database); it is listed as such, and its partitions and rates no longer count. A
service with no live consumer instance is down. Dead letters by error class over time come from
finsync.ops.dead_letters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from finsync.contract.topics import SERVICES
from finsync.runtime import outbox
from finsync.runtime.heartbeat import GONE_AFTER_SECONDS, OUTCOMES


@dataclass(frozen=True)
class PartitionHealth:
    topic: str
    partition: int
    lag: int | None  # records not consumed yet; None: not known yet (just assigned)
    paused: bool  # held for a retry that is not due yet
    instance: str  # the instance it is assigned to


@dataclass(frozen=True)
class Instance:
    instance_id: str
    service: str
    role: str  # consumer | relay
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    gone: bool  # no heartbeat for GONE_AFTER_SECONDS
    active: bool  # a relay holding its service's lock (a consumer: always)
    counts: dict[str, int]  # cumulative, by outcome
    rates: dict[str, float]  # per second over the last minute, by outcome
    partitions: list[PartitionHealth] = field(default_factory=list)


@dataclass(frozen=True)
class ServiceHealth:
    service: str
    instances: list[Instance]  # live ones first, then the gone
    partitions: list[PartitionHealth]  # of live consumers, by topic and partition
    outbox_backlog: int  # messages waiting to be published
    outbox_failed: int  # messages Kafka refused for good
    relay_alive: bool  # a live relay holds the service's relay lock
    rates: dict[str, float]  # per second over the last minute, summed over live consumers
    open_dead_letters: int

    @property
    def up(self) -> bool:
        return any(i.role == "consumer" and not i.gone for i in self.instances)

    @property
    def state(self) -> str:
        """down: no live consumer; degraded: no live relay publishes its outbox; else up."""
        if not self.up:
            return "down"
        return "up" if self.relay_alive else "degraded"

    @property
    def lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)

    @property
    def paused(self) -> list[PartitionHealth]:
        return [p for p in self.partitions if p.paused]


_INSTANCES = """
SELECT instance_id, service, role, host, pid, started_at, seen_at,
       seen_at < now() - make_interval(secs => %s) AS gone, active, partitions, counts, rates
  FROM finsync.service_instances
 ORDER BY service, role, started_at, instance_id
"""


def instances(
    conn: psycopg.Connection, gone_after_seconds: float = GONE_AFTER_SECONDS
) -> list[Instance]:
    """Every instance with a heartbeat row, live or gone (not seen for `gone_after_seconds`)."""
    return [_instance(row) for row in conn.execute(_INSTANCES, (gone_after_seconds,))]


def _instance(row: tuple[Any, ...]) -> Instance:
    instance_id, service, role, host, pid, started, seen, gone, active, parts, counts, rates = row
    return Instance(
        instance_id=instance_id,
        service=service,
        role=role,
        host=host,
        pid=pid,
        started_at=started,
        seen_at=seen,
        gone=gone,
        active=active,
        counts={str(k): int(v) for k, v in counts.items()},
        rates={str(k): float(v) for k, v in rates.items()},
        partitions=[
            PartitionHealth(
                p["topic"], int(p["partition"]), p["lag"], bool(p["paused"]), instance_id
            )
            for p in parts
        ],
    )


def open_dead_letters(conn: psycopg.Connection) -> dict[str, int]:
    """Dead letters per service that nobody has replayed or resolved yet."""
    rows = conn.execute(
        "SELECT service, count(*) FROM finsync.dead_letters "
        "WHERE NOT resolved AND status = 'open' GROUP BY service"
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def summarize(
    service: str,
    found: list[Instance],
    backlog: int = 0,
    failed: int = 0,
    dead_letters: int = 0,
) -> ServiceHealth:
    """One service's health from its instances (pure: the overview's arithmetic)."""
    mine = sorted(
        (i for i in found if i.service == service), key=lambda i: (i.gone, i.role, i.started_at)
    )
    live = [i for i in mine if not i.gone and i.role == "consumer"]
    partitions = sorted(
        (p for i in live for p in i.partitions), key=lambda p: (p.topic, p.partition)
    )
    rates = dict.fromkeys(OUTCOMES, 0.0)
    for i in live:
        for outcome, rate in i.rates.items():
            rates[outcome] = rates.get(outcome, 0.0) + rate
    return ServiceHealth(
        service=service,
        instances=mine,
        partitions=partitions,
        outbox_backlog=backlog,
        outbox_failed=failed,
        relay_alive=any(i.role == "relay" and not i.gone and i.active for i in mine),
        rates=rates,
        open_dead_letters=dead_letters,
    )


def overview(
    conn: psycopg.Connection, gone_after_seconds: float = GONE_AFTER_SECONDS
) -> list[ServiceHealth]:
    """Every service of the platform, in the order of SERVICES; one with no instance is down."""
    found = instances(conn, gone_after_seconds)
    backlog, failed = outbox.backlog(conn), outbox.failed(conn)
    dead = open_dead_letters(conn)
    return [
        summarize(s, found, backlog.get(s, 0), failed.get(s, 0), dead.get(s, 0)) for s in SERVICES
    ]

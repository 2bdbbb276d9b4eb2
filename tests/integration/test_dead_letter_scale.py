"""The dead-letter index with a million letters: every filter the console and `finsync dlq`
offer is answered through an index, never a scan of the table, and well under a second.

The letters go into a copy of finsync.dead_letters with the same indexes (built from the
migration's own definitions) in a schema of their own, inside a transaction that is rolled
back: the shared database keeps none of them, and nobody else's letters skew the counts.
The ops functions run unchanged; only the table they name is pointed at the copy."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from finsync.ops import dead_letters as dl
from finsync.runtime import db
from finsync.settings import Settings

pytestmark = pytest.mark.integration

N = 1_000_000
FAST = 0.5  # seconds: what "well under a second" means here

_LOAD = """
INSERT INTO {table} (id, service, dlq_topic, dlq_partition, dlq_offset, message_key,
    source_topic, source_partition, source_offset, stage, error_class, category, reason,
    attempts, failed_at, status)
SELECT i, (ARRAY['account-sync', 'subscription-activator', 'invoice-poster',
                 'payment-settler'])[1 + i %% 4],
       %(topic)s, 0, i, %(prefix)s || (i %% 200000), 'billing.invoice-issued', 0, i, 'TASK_PUT',
       (ARRAY['InvalidEvent', 'UndecodableEvent', 'UnknownSchema', 'DependencyNotReady',
              'ConflictingResend'])[1 + i %% 5],
       CASE WHEN i %% 5 = 3 THEN 'retries-exhausted' ELSE 'permanent' END,
       'reason ' || i, 1 + i %% 3,
       %(now)s - make_interval(secs => (%(n)s - i) * 2.5),
       (ARRAY['open', 'open', 'replayed', 'resolved'])[1 + (i / 7) %% 4]
FROM generate_series(1, %(n)s) AS i
"""


class Explaining:
    """The connection the ops functions get: each statement is explained, then run and timed."""

    def __init__(self, conn: psycopg.Connection, table: str) -> None:
        self.conn = conn
        self.table = table
        self.plans: list[dict[str, Any]] = []
        self.seconds: list[float] = []

    def execute(self, sql: str, params: Any = None) -> psycopg.Cursor[Any]:
        sql = sql.replace("finsync.dead_letters", self.table)
        row = self.conn.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()
        assert row is not None
        self.plans.append(row[0][0]["Plan"])
        started = time.perf_counter()
        cursor = self.conn.execute(sql, params)
        cursor.fetchall()  # the time includes fetching every row
        self.seconds.append(time.perf_counter() - started)
        return self.conn.execute(sql, params)


def scans(plan: dict[str, Any]) -> Iterator[tuple[str, str]]:
    yield plan["Node Type"], plan.get("Relation Name", "")
    for child in plan.get("Plans", []):
        yield from scans(child)


@pytest.fixture(scope="module")
def loaded(settings: Settings) -> Iterator[tuple[Explaining, str, datetime]]:
    prefix = f"SCALE-{uuid.uuid4().hex[:8]}-"
    schema = f"dead_letter_scale_{uuid.uuid4().hex[:8]}"
    table = f"{schema}.dead_letters"
    now = datetime.now(UTC)
    with db.connect(settings) as conn, conn.transaction():
        conn.execute("SET LOCAL statement_timeout = '120s'")
        conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        conn.execute(f"CREATE SCHEMA {schema}")
        # Unlogged and indexed after the load: a bulk build is several times faster than a
        # million index insertions, and none of it needs to survive a crash.
        conn.execute(
            f"CREATE UNLOGGED TABLE {table} "
            "(LIKE finsync.dead_letters INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        conn.execute(
            _LOAD.format(table=table),
            {"topic": f"{prefix}.dlq", "prefix": prefix, "now": now, "n": N},
        )
        indexes = conn.execute(
            "SELECT indexdef FROM pg_indexes "
            "WHERE schemaname = 'finsync' AND tablename = 'dead_letters'"
        ).fetchall()
        assert len(indexes) >= 8
        for (definition,) in indexes:
            conn.execute(definition.replace(" ON finsync.dead_letters ", f" ON {table} "))
        conn.execute(f"ANALYZE {table}")
        yield Explaining(conn, table), prefix, now
        raise psycopg.Rollback


def filters(prefix: str, now: datetime) -> dict[str, dl.Query]:
    """One of each filter the console and the CLI offer."""
    return {
        "everything": dl.Query(),
        "service": dl.Query(service="payment-settler"),
        "error class": dl.Query(error="unknownschema"),
        "category": dl.Query(error="retries-exhausted"),
        "key": dl.Query(key=f"{prefix}4242"),
        "status": dl.Query(status="resolved"),
        "last hour": dl.Query(since=now - timedelta(hours=1)),
        "a day ten days ago": dl.Query(
            since=now - timedelta(days=11), until=now - timedelta(days=10)
        ),
        "before three weeks ago": dl.Query(until=now - timedelta(days=21)),
        "service since a week ago": dl.Query(service="account-sync", since=now - timedelta(days=7)),
    }


def combined(prefix: str) -> dict[str, dl.Query]:
    """Filters together: the planner picks the most selective index, or a scan where that is
    cheaper (say, three filters that each match a third of the table); fast either way."""
    return {
        "service, class, status": dl.Query(
            service="invoice-poster", error="InvalidEvent", status="open"
        ),
        "service and key": dl.Query(service="invoice-poster", key=f"{prefix}4242"),
    }


def assert_fast(conn: Explaining, what: str) -> None:
    assert conn.seconds[-1] < FAST, f"{what}: {conn.seconds[-1]:.3f}s"


def assert_indexed(conn: Explaining, what: str) -> None:
    plan = conn.plans[-1]
    seq = [(node, rel) for node, rel in scans(plan) if node == "Seq Scan"]
    assert not [s for s in seq if s[1] == "dead_letters"], f"{what}: a table scan: {plan}"
    assert_fast(conn, what)


def newest_first(letters: list[dl.Letter]) -> bool:
    order = [(x.failed_at, x.id) for x in letters]
    return order == sorted(order, reverse=True)


def test_every_filter_searches_counts_and_groups_through_an_index(
    loaded: tuple[Explaining, str, datetime],
) -> None:
    conn, prefix, now = loaded
    index: Any = conn  # the ops functions take a connection; this one explains as it goes
    for check, queries in ((assert_indexed, filters(prefix, now)), (assert_fast, combined(prefix))):
        for name, q in queries.items():
            page = dl.search(index, q, limit=50)
            check(conn, f"search {name}")
            assert page and newest_first(page), name
            after = dl.search(index, q, limit=50, before_id=page[-1].id)
            check(conn, f"next page {name}")
            assert newest_first(page + after), name
            dl.count(index, q)
            check(conn, f"count {name}")
            dl.groups(index, q)
            check(conn, f"groups {name}")
    total, capped = dl.count(index, dl.Query(key=f"{prefix}4242"))
    assert (total, capped) == (5, False)  # one key in 200,000: five letters
    assert dl.count(index, dl.Query(service="invoice-poster")) == (10000, True)
    [group] = dl.groups(index, dl.Query(key=f"{prefix}4242"))
    assert (group.total, group.key, len(group.error_classes)) == (5, f"{prefix}4242", 1)


def test_the_trend_by_class_reads_only_the_day_asked_for(
    loaded: tuple[Explaining, str, datetime],
) -> None:
    conn, _, now = loaded
    index: Any = conn
    rows = dl.by_class_over_time(index, now - timedelta(days=1), bucket="hour")
    assert_indexed(conn, "by class over time")
    counted = sum(n for _, _, _, n in rows)
    assert abs(counted - 24 * 3600 / 2.5) <= 1  # a letter every 2.5 seconds
    assert {b.minute for b, _, _, _ in rows} == {0}

"""`make bench`, the dead-letter index: each query `finsync dlq` and the console make, over a
million dead letters, read through the indexes of finsync.dead_letters and, as the baseline measured
in the same run, the same statement with index reads disabled — what it costs without them (a
scan of the table).

The letters go into an unlogged copy of finsync.dead_letters in a schema of its own in the
database `finsync_bench`, indexed with the migration's own index definitions; the schema is
dropped at the end. The functions of finsync.ops.dead_letters run unchanged; only the table
their statements name is pointed at the copy.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from finsync.bench.invoice_poster import bench_settings
from finsync.ops import dead_letters as dl
from finsync.runtime import db
from finsync.settings import Settings

console = Console() if sys.stdout.isatty() else Console(width=100)  # a log: the table unwrapped
N = 1_000_000
CHUNK = 200_000  # letters per insert: a progress line each
RUNS = 5  # timed runs per query; the median is shown
BASELINE_RUNS = 3  # fewer: a scan of a million letters is slow; one when a run takes > SLOW
SLOW = 3.0  # seconds
BASELINE_TIMEOUT = "30s"  # a baseline slower than this is shown as "> 30s"
KEY_PREFIX = "BENCH-"

# Four services, five error classes (one in five retries exhausted), a key every 200,000 letters
# (five letters a key), a letter every 2.5 s up to now (about 29 days), a quarter resolved.
_LOAD = """
INSERT INTO {table} (id, service, dlq_topic, dlq_partition, dlq_offset, message_key,
    source_topic, source_partition, source_offset, stage, error_class, category, reason,
    attempts, failed_at, status)
SELECT i, (ARRAY['account-sync', 'subscription-activator', 'invoice-poster',
                 'payment-settler'])[1 + i %% 4],
       'billing.invoice-issued.dlq', 0, i, %(prefix)s || (i %% 200000), 'billing.invoice-issued',
       0, i, 'TASK_PUT',
       (ARRAY['InvalidEvent', 'UndecodableEvent', 'UnknownSchema', 'DependencyNotReady',
              'ConflictingResend'])[1 + i %% 5],
       CASE WHEN i %% 5 = 3 THEN 'retries-exhausted' ELSE 'permanent' END,
       'reason ' || i, 1 + i %% 3,
       %(now)s - make_interval(secs => (%(n)s - i) * 2.5),
       (ARRAY['open', 'open', 'replayed', 'resolved'])[1 + (i / 7) %% 4]
FROM generate_series(%(first)s, %(last)s) AS i
"""


def index_definitions(conn: psycopg.Connection) -> list[str]:
    """The CREATE INDEX statements of finsync.dead_letters as the migrations left it, less its
    primary key."""
    rows = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'finsync' "
        "AND tablename = 'dead_letters' AND indexname <> 'dead_letters_pkey' ORDER BY indexname"
    ).fetchall()
    if not rows:
        raise SystemExit("no index of finsync.dead_letters found: is the database migrated?")
    return [str(r[0]) for r in rows]


class Pointed:
    """The connection the ops functions get: their statements read the copy. With `read`,
    each is explained first and the indexes its plan reads (or `table scan`) added to it."""

    def __init__(self, conn: psycopg.Connection, table: str, read: set[str] | None = None):
        self.conn = conn
        self.table = table
        self.read = read

    def execute(self, sql: str, params: Any = None) -> psycopg.Cursor[Any]:
        sql = sql.replace("finsync.dead_letters", self.table)
        if self.read is not None:
            row = self.conn.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()
            assert row is not None
            nodes = [row[0][0]["Plan"]]
            while nodes:
                node = nodes.pop()
                nodes += node.get("Plans", [])
                if node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "dead_letters":
                    self.read.add("table scan")
                if "Index Name" in node:
                    self.read.add(node["Index Name"].removeprefix("dead_letters_"))
        return self.conn.execute(sql, params)


def indexes_read(conn: psycopg.Connection, table: str, query: Callable[[Any], object]) -> str:
    read: set[str] = set()
    query(Pointed(conn, table, read))
    return ", ".join(sorted(read))


def load(conn: psycopg.Connection, table: str, n: int, now: datetime) -> None:
    conn.execute(
        f"CREATE UNLOGGED TABLE {table} "
        "(LIKE finsync.dead_letters INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        "INCLUDING GENERATED)"
    )
    started = time.perf_counter()
    # Indexed after the load: a bulk build is several times faster than n index insertions.
    for first in range(1, n + 1, CHUNK):
        last = min(first + CHUNK - 1, n)
        conn.execute(
            _LOAD.format(table=table),
            {"prefix": KEY_PREFIX, "now": now, "n": n, "first": first, "last": last},
        )
        console.print(
            f"  loaded {last:>9,} / {N:,} letters  {time.perf_counter() - started:5.1f} s"
        )
    conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")  # the migration's `id PRIMARY KEY`
    for definition in index_definitions(conn):
        conn.execute(definition.replace(" ON finsync.dead_letters ", f" ON {table} "))
        name = definition.split()[3 if definition.startswith("CREATE UNIQUE") else 2]
        console.print(f"  indexed {name:<24}  {time.perf_counter() - started:5.1f} s")
    conn.execute(f"VACUUM ANALYZE {table}")
    row = conn.execute(
        "SELECT pg_size_pretty(pg_table_size(%s::regclass)), "
        "pg_size_pretty(pg_indexes_size(%s::regclass))",
        (table, table),
    ).fetchone()
    assert row is not None
    console.print(f"  {N:,} letters: table {row[0]}, indexes {row[1]}")


def timed(call: Callable[[], object], runs: int) -> float:
    """Median milliseconds of `runs` calls (one when a call takes more than SLOW)."""
    took: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        took.append((time.perf_counter() - started) * 1000)
        if took[-1] > SLOW * 1000:
            break
    return statistics.median(took)


def baseline(conn: psycopg.Connection, call: Callable[[], object]) -> float | None:
    """The same statement with index reads disabled; None past BASELINE_TIMEOUT."""
    with conn.transaction():
        for kind in ("indexscan", "indexonlyscan", "bitmapscan"):
            conn.execute(f"SET LOCAL enable_{kind} = off")
        conn.execute(f"SET LOCAL statement_timeout = '{BASELINE_TIMEOUT}'")
        try:
            return timed(call, BASELINE_RUNS)
        except psycopg.errors.QueryCanceled:
            return None


def queries(now: datetime) -> dict[str, Callable[[Any], object]]:
    """What `finsync dlq` and the console ask, by what they ask it with."""
    key = f"{KEY_PREFIX}4242"
    return {
        "list": lambda c: dl.search(c, dl.Query()),
        "list --service": lambda c: dl.search(c, dl.Query(service="payment-settler")),
        "list --error CLASS": lambda c: dl.search(c, dl.Query(error="UnknownSchema")),
        "list --error CATEGORY": lambda c: dl.search(c, dl.Query(error="retries-exhausted")),
        "list --key": lambda c: dl.search(c, dl.Query(key=key)),
        "list --status": lambda c: dl.search(c, dl.Query(status="resolved")),
        "list --since --until": lambda c: dl.search(
            c, dl.Query(since=now - timedelta(days=11), until=now - timedelta(days=10))
        ),
        "list, three filters": lambda c: dl.search(
            c, dl.Query(service="invoice-poster", error="InvalidEvent", status="open")
        ),
        # --service's next page halfway down the table: keyset paging reads only that page.
        "list --before (deep)": lambda c: dl.search(
            c, dl.Query(service="account-sync"), before_id=500_000
        ),
        "count --status": lambda c: dl.count(c, dl.Query(status="open")),
        "count --key": lambda c: dl.count(c, dl.Query(key=key)),
        "groups": lambda c: dl.groups(c, dl.Query()),
        "groups --service": lambda c: dl.groups(c, dl.Query(service="invoice-poster")),
        "trend, 24 h by hour": lambda c: dl.by_class_over_time(
            c, now - timedelta(days=1), bucket="hour"
        ),
    }


def main() -> int:
    settings = bench_settings(Settings.from_env())
    console.rule(f"[bold]finsync bench[/bold] — the dead-letter index, {N:,} letters")
    db.migrate(settings)  # the table the copy is made like
    schema = f"dead_letter_bench_{uuid.uuid4().hex[:8]}"
    table = f"{schema}.dead_letters"
    now = datetime.now(UTC)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            load(conn, table, N, now)
            ops = Pointed(conn, table)
            report = Table(
                "query",
                "read by",
                "indexed ms",
                "baseline ms",
                "speed-up",
                title=f"{N:,} dead letters: through the indexes vs. without index reads",
                caption=f"medians of {RUNS} runs (baseline {BASELINE_RUNS}, 1 past {SLOW:.0f} s)",
            )
            # "read by": the indexes the planner takes for the statement, as the console runs it.
            for name, query in queries(now).items():
                with console.status(f"timing {name} ..."):
                    indexed = timed(partial(query, ops), RUNS)
                    scanned = baseline(conn, partial(query, ops))
                report.add_row(
                    name,
                    indexes_read(conn, table, query),
                    f"{indexed:,.1f}",
                    f"{scanned:,.0f}" if scanned is not None else f"> {BASELINE_TIMEOUT}",
                    f"{scanned / indexed:,.0f}x" if scanned is not None else "—",
                )
            console.print(report)
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return 0


if __name__ == "__main__":
    sys.exit(main())

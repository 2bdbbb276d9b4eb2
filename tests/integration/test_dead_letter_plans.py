"""Every filter the console and `finsync dlq` offer can be answered through an index of
finsync.dead_letters: the statements finsync.ops.dead_letters builds, explained with table scans
disabled, read the table through an index whose condition is the filter itself, in the order
the listing shows.

They are explained on an empty copy of the table made with its own indexes (LIKE ... INCLUDING
ALL), so the plans depend on the indexes alone, not on the letters other tests leave in the
shared table; disabling scans and sorts makes the planner take an index, in order, wherever
one can. So the plans show what the indexes can serve; how fast that is with a million
letters, beside a scan of the table, is `make bench` (finsync.bench.dead_letters).

The test can fail: without any one of the filter indexes (dead_letters_service, _error,
_category, _key, _failed_at of migration 0023, _unresolved of 0029), a filter is read by a table
scan, by an index without its condition, or sorted, and the assertion names the statement and
shows its plan."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from finsync.ops import dead_letters as dl

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
KEY = "INV-0042"
UNRESOLVED = "partial index (NOT resolved)"  # a read of the index with this condition

# Each filter and the conditions its index reads must have (as PostgreSQL prints them), the
# first on the index's leading column: the filter's own index.
FILTERS: dict[str, tuple[dl.Query, list[str]]] = {
    "everything": (dl.Query(), []),
    "service": (dl.Query(service="invoice-poster"), ["service ="]),
    "error class": (dl.Query(error="InvalidEvent"), ["lower(error_class) ="]),
    "category": (dl.Query(error="retries-exhausted"), ["category ="]),
    "key": (dl.Query(key=KEY), ["md5(message_key) ="]),
    # Open and replayed letters through the partial index of the unresolved ones; resolved
    # letters, most of the table, through the time index.
    "status": (dl.Query(status="open"), [UNRESOLVED]),
    "replayed since": (
        dl.Query(status="replayed", since=NOW - timedelta(days=1)),
        [UNRESOLVED, "failed_at >="],
    ),
    "since": (dl.Query(since=NOW - timedelta(hours=1)), ["failed_at >="]),
    "until": (dl.Query(until=NOW - timedelta(days=21)), ["failed_at <"]),
    "since and until": (
        dl.Query(since=NOW - timedelta(days=11), until=NOW - timedelta(days=10)),
        ["failed_at >=", "failed_at <"],
    ),
    # Each filter's index serves a time range of it too.
    "service since": (
        dl.Query(service="account-sync", since=NOW - timedelta(days=7)),
        ["service =", "failed_at >="],
    ),
    "error class until": (
        dl.Query(error="unknownschema", until=NOW - timedelta(days=1)),
        ["lower(error_class) =", "failed_at <"],
    ),
    "key since and until": (
        dl.Query(key=KEY, since=NOW - timedelta(days=2), until=NOW),
        ["md5(message_key) =", "failed_at >=", "failed_at <"],
    ),
    "resolved since": (
        dl.Query(status="resolved", since=NOW - timedelta(days=1)),
        ["failed_at >="],
    ),
}


class Explaining:
    """The connection the ops functions get: each statement they build is pointed at the copy,
    explained (its plan kept), then run."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.plans: list[dict[str, Any]] = []
        self.leading: dict[str, str] = {}  # each index of the copy: its leading column
        self.partial: dict[str, str] = {}  # and the condition of each partial one
        for name, leading, condition in conn.execute(
            "SELECT c.relname, pg_get_indexdef(c.oid, 1, true), pg_get_expr(i.indpred, "
            "i.indrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'pg_temp.dead_letters'::regclass"
        ):
            self.leading[name] = leading
            if condition is not None:
                self.partial[name] = f"partial index {condition}"

    def execute(self, sql: str, params: Any = None) -> psycopg.Cursor[Any]:
        assert "finsync.dead_letters" in sql
        sql = sql.replace("finsync.dead_letters", "pg_temp.dead_letters")
        row = self.conn.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()
        assert row is not None
        self.plans.append(row[0][0]["Plan"])
        return self.conn.execute(sql, params)

    def assert_served(self, what: str, wanted: list[str], *, ordered: bool = False) -> None:
        """The one statement the call just made reads the table only through its indexes,
        with each `wanted` condition in an index read, the first on the leading column of
        that index; `ordered`: the index gives the order too (no sort), so a page reads only
        its own letters."""
        assert len(self.plans) == 1, f"{what}: {len(self.plans)} statements"
        plan = self.plans.pop()
        every = list(nodes(plan))
        read = [
            (self.leading[n["Index Name"]], n.get("Index Cond", ""))
            for n in every
            if n.get("Index Name") in self.leading
        ]
        partial = {self.partial.get(n.get("Index Name", "")) for n in every}
        problems = [f"no read of the {c}" for c in wanted if c.startswith("partial ")]
        problems = [p for p in problems if p.removeprefix("no read of the ") not in partial]
        wanted = [c for c in wanted if not c.startswith("partial ")]
        problems += [f"no index read on {c}" for c in wanted if not any(c in r for _, r in read)]
        if wanted and not any(
            wanted[0].startswith(f"{lead} ") and wanted[0] in r for lead, r in read
        ):
            problems.append(f"no index led by the column of {wanted[0]}")
        if not read:
            problems.append("no index of the table read")
        if any(
            n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "dead_letters" for n in every
        ):
            problems.append("a scan of the whole table")
        if ordered and any(n["Node Type"] == "Sort" for n in every):
            problems.append("a sort")
        assert not problems, f"{what}: {'; '.join(problems)}; the plan: {plan}"


@pytest.fixture
def explaining(conn: psycopg.Connection) -> Explaining:
    conn.execute(
        "CREATE TEMP TABLE dead_letters (LIKE finsync.dead_letters INCLUDING ALL) ON COMMIT DROP"
    )
    # Off, not forbidden: the planner still scans or sorts where no index can serve.
    conn.execute("SET LOCAL enable_seqscan = off")
    conn.execute("SET LOCAL enable_sort = off")
    conn.execute("SET LOCAL jit = off")  # a disabled plan's huge cost would compile it, slowly
    return Explaining(conn)


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a plan, subplans and CTEs included."""
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


@pytest.mark.parametrize("name", list(FILTERS))
def test_every_filter_is_searched_paged_counted_and_grouped_through_an_index(
    name: str, explaining: Explaining
) -> None:
    q, wanted = FILTERS[name]
    index: Any = explaining  # the ops functions take a connection; this one explains as it goes
    dl.search(index, q, limit=50)
    explaining.assert_served(f"search {name}", wanted, ordered=True)
    # The next page: the letter it starts after is found by id, the page by the filter's index.
    dl.search(index, q, limit=50, before_id=4711)
    explaining.assert_served(f"next page {name}", [*wanted, "id ="], ordered=True)
    dl.count(index, q)
    explaining.assert_served(f"count {name}", wanted, ordered=True)
    # The newest letters through the filter's index, then each key's through the key's.
    dl.groups(index, q)
    explaining.assert_served(f"groups {name}", wanted)


def test_the_trend_by_class_reads_only_the_time_asked_for(explaining: Explaining) -> None:
    index: Any = explaining
    for bucket in dl.BUCKETS:
        dl.by_class_over_time(index, NOW - timedelta(days=1), bucket=bucket)
        explaining.assert_served(f"trend by {bucket}", ["failed_at >="])

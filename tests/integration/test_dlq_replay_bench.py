"""`make bench`'s dead-letter replay part, at a tiny size on the real stack: every letter is
replayed, audited and claimed once, both rates are real, and the run leaves neither letters,
audit rows nor its topic behind."""

from __future__ import annotations

import dataclasses

import pytest

from finsync.bench import dlq_replay
from finsync.bench.invoice_poster import bench_settings
from finsync.contract.topics import retry_topic
from finsync.runtime import clients, db
from finsync.settings import Settings

pytestmark = pytest.mark.integration

LETTERS = 300


def test_the_replay_bench_adds_up_and_cleans_up(settings: Settings) -> None:
    figures = dlq_replay.run(settings, LETTERS)

    assert figures.letters == figures.replayed == figures.audited == figures.claimed == LETTERS
    assert figures.on_topic == 2 * LETTERS  # the baseline's copy and the replay's
    assert figures.replay_rate > 0 and figures.baseline_rate > 0
    assert figures.replay_rate == pytest.approx(LETTERS / figures.replay_seconds)
    assert figures.ratio == pytest.approx(figures.replay_rate / figures.baseline_rate)
    assert figures.value_bytes > 100  # invoices in the wire format, not empty records
    assert set(dataclasses.asdict(figures)) >= {"replay_rate", "baseline_rate", "ratio"}

    bench = bench_settings(settings)
    assert bench.database_url.endswith("/finsync_bench")
    with db.connect(bench) as conn:
        left = conn.execute(
            "SELECT (SELECT count(*) FROM finsync.dead_letters WHERE service = %(s)s), "
            "(SELECT count(*) FROM finsync.replay_audit WHERE service = %(s)s), "
            "(SELECT count(*) FROM finsync.ops_audit WHERE detail->>'replay_id' IN "
            "(SELECT replay_id::text FROM finsync.replay_audit WHERE service = %(s)s) "
            "OR detail->'filter'->>'service' = %(s)s)",
            {"s": figures.service},
        ).fetchone()
    assert left == (0, 0, 0)
    topics = clients.admin(settings).list_topics(timeout=15).topics
    assert retry_topic(figures.service) not in topics

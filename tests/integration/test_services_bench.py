"""`make bench`'s services part at a tiny size on the real stack: account-sync,
subscription-activator and payment-settler each take every one of their events the realistic
way, and the figures add up to what was measured."""

from __future__ import annotations

import pytest

from finsync.bench import chart, services
from finsync.bench.invoice_poster import bench_settings
from finsync.runtime import db
from finsync.settings import Settings

pytestmark = pytest.mark.integration

N = 200


def test_each_service_takes_every_event_and_the_figures_add_up(settings: Settings) -> None:
    figures = services.run(settings, N, say=lambda _: None)

    assert [r.service for r in figures.runs] == [
        "account-sync",
        "subscription-activator",
        "payment-settler",
    ]
    assert [r.topic for r in figures.runs] == [
        "crm.account-upserted",
        "crm.opportunity-closed",
        "payments.payment-settled",
    ]
    for r in figures.runs:
        assert r.events == N and r.seconds > 0 and r.ceiling_seconds > 0, r
        assert r.events_per_second == pytest.approx(N / r.seconds)
        assert r.ceiling_events_per_second == pytest.approx(N / r.ceiling_seconds)
        assert r.ratio == pytest.approx(r.ceiling_seconds / r.seconds)
    assert figures.invoices >= N  # billing's run bills each subscription at least once
    assert figures.invoice_poster_events_per_second == pytest.approx(
        figures.invoices / figures.invoice_poster_seconds
    )

    saved = figures.as_json()
    assert saved["events"] == N and saved["invoices_posted_first"] == figures.invoices
    assert saved["invoice_poster_events_per_second"] > 0
    assert [row["events_per_second"] for row in saved["runs"]] == [
        round(r.events_per_second, 1) for r in figures.runs
    ]
    drawn = chart.service_groups({"services": saved})
    assert [service for service, _ in drawn] == [r.service for r in figures.runs]
    assert chart.service_groups({}) == []  # the chart of a run without this bench
    assert services.table(figures).row_count == 3

    # The effects, counted apart from the bench's own checks: the database was reset first.
    with db.connect(bench_settings(settings)) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM erp.customers), "
            "(SELECT count(*) FROM billing.subscriptions), "
            "(SELECT count(*) FROM erp.payments WHERE status = 'PAID'), "
            "(SELECT count(*) FROM erp.ar_open_items), "
            "(SELECT count(*) FROM finsync.outbox WHERE sent_at IS NULL)"
        ).fetchone()
    assert row == (N, N, N, figures.invoices, 0)

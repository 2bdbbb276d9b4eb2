"""Service health without a database: rates from cumulative counts, and one service's summary
from its instances' heartbeats."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from finsync.ops.health import Instance, PartitionHealth, summarize
from finsync.runtime.heartbeat import RateWindow

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
_pids = itertools.count(100)


def test_rates_are_per_second_over_the_last_minute_of_cumulative_counts() -> None:
    window = RateWindow(60)
    assert window.add(0, {"processed": 0}) == {}  # one sample: no interval yet
    assert window.add(5, {"processed": 50, "retried": 5}) == {"processed": 10.0, "retried": 1.0}
    for t in range(10, 125, 5):
        rates = window.add(t, {"processed": 50 + (t - 5) * 2, "retried": 5})
    # Only the last minute counts: 2 processed a second lately, nothing retried.
    assert rates == {"processed": pytest.approx(2.0), "retried": 0.0}


def test_a_count_that_starts_again_lower_gives_no_negative_rate() -> None:
    window = RateWindow(60)
    window.add(0, {"processed": 100})
    assert window.add(5, {"processed": 40}) == {"processed": 0.0}


def _instance(
    role: str,
    gone: bool = False,
    active: bool = True,
    rates: dict[str, float] | None = None,
    partitions: Sequence[tuple[str, int, int | None, bool]] = (),
    service: str = "invoice-poster",
) -> Instance:
    instance_id = f"host:{next(_pids)}:{role}"
    return Instance(
        instance_id=instance_id,
        service=service,
        role=role,
        host="host",
        pid=1,
        started_at=T0,
        seen_at=T0,
        gone=gone,
        active=active,
        counts={},
        rates=rates or {},
        partitions=[
            PartitionHealth(t, p, lag, paused, instance_id) for t, p, lag, paused in partitions
        ],
    )


def test_a_service_without_a_live_consumer_is_down_and_its_gone_instances_do_not_count() -> None:
    gone = _instance("consumer", gone=True, rates={"processed": 9.0},
                     partitions=[("billing.invoice-issued", 0, 7, False)])  # fmt: skip
    health = summarize("invoice-poster", [gone, _instance("relay")], backlog=3)
    assert health.state == "down" and not health.up
    assert health.partitions == [] and health.lag == 0
    assert health.rates == {
        "processed": 0.0,
        "duplicate": 0.0,
        "retried": 0.0,
        "dead-lettered": 0.0,
    }
    assert health.outbox_backlog == 3
    assert [i.gone for i in health.instances] == [False, True]  # live first


def test_live_consumers_add_up_and_the_relay_must_hold_the_lock_to_count_as_alive() -> None:
    a = _instance("consumer", rates={"processed": 2.5, "retried": 0.5},
                  partitions=[("billing.invoice-issued", 1, 4, False),
                              ("invoice-poster.retry", 0, None, True)])  # fmt: skip
    b = _instance("consumer", rates={"processed": 1.5},
                  partitions=[("billing.invoice-issued", 0, 2, False)])  # fmt: skip
    standby = _instance("relay", active=False)
    other = _instance("consumer", service="payment-settler", rates={"processed": 100.0})
    health = summarize("invoice-poster", [a, b, standby, other])
    assert health.state == "degraded" and not health.relay_alive
    assert health.rates["processed"] == 4.0 and health.rates["retried"] == 0.5
    assert [(p.topic, p.partition) for p in health.partitions] == [
        ("billing.invoice-issued", 0),
        ("billing.invoice-issued", 1),
        ("invoice-poster.retry", 0),
    ]
    assert health.lag == 6  # an unknown lag counts for nothing
    assert [p.partition for p in health.paused] == [0] and health.paused[
        0
    ].instance == a.instance_id
    assert summarize("invoice-poster", [a, _instance("relay")]).state == "up"

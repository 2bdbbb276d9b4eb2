"""The chaos run's plan, without a stack: its fault schedule, and a scenario at its volume."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date

from finsync.contract.topics import SERVICES
from finsync.scenario import crm
from finsync.scenario.chaos.monkey import JOIN, KILL, KINDS, LEAVE, schedule


def test_the_schedule_has_every_fault_spread_over_the_run_and_leaves_after_joins() -> None:
    faults = schedule(SERVICES, kills=5, rng=random.Random(3))
    assert len(faults) == 4 * 5 + 4 + 4 + 3
    assert {f.kind for f in faults} == set(KINDS)
    assert Counter(f.target for f in faults if f.kind == KILL) == dict.fromkeys(SERVICES, 5)
    assert [f.at for f in faults] == sorted(f.at for f in faults)
    assert 0 < faults[0].at < faults[-1].at < 1
    kinds = [(f.kind, f.target) for f in faults]
    for service in SERVICES:
        assert kinds.index((JOIN, service)) < kinds.index((LEAVE, service))


def test_no_expected_dead_letter_shares_its_key_with_a_valid_document_at_chaos_volume() -> None:
    # With 9,001 deals or more, the deal whose account never arrives was once numbered like a
    # valid one: the valid deal took its key and its dead letter never came.
    s = crm.build(7, "t", date(2026, 11, 27), accounts=8500)
    assert len(s.opportunities) > 9001
    valid = s.expected.activated | set(s.expected.versions)
    for service, dead in s.expected.dead.items():
        assert not set(dead) & valid, service

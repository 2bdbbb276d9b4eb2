"""What a run did, and the run's dead letters as they arrived on the dead-letter topics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from finsync.contract.events import CreditMemoIssued, InvoiceIssued, PaymentSettled
from finsync.contract.topics import SERVICES, dlq_topic
from finsync.runtime import clients
from finsync.runtime.dlq import DeadLetter
from finsync.scenario.cash import CashPlan
from finsync.scenario.plan import Scenario
from finsync.settings import Settings


@dataclass
class Outcome:
    """What a run published beyond CRM's events, and how far it got."""

    scenario: Scenario
    started_ms: int
    invoices: list[InvoiceIssued] = field(default_factory=list)
    credit_memos: list[CreditMemoIssued] = field(default_factory=list)
    payments: list[PaymentSettled] = field(default_factory=list)  # distinct, published
    prepaid: list[tuple[str, date]] = field(default_factory=list)  # future invoices paid for
    cash: CashPlan | None = None  # remittances, refunds, disputes and payouts, once played
    elapsed: float = 0.0
    complete: bool = False
    waiting_for: str = ""


def dead_letters(
    settings: Settings, s: Scenario, since_ms: int, services: Sequence[str] = SERVICES
) -> list[DeadLetter]:
    """The run's dead letters on the services' topics since `since_ms`, oldest first."""
    return [
        DeadLetter(service, record)
        for service in services
        for record in clients.read(settings, dlq_topic(service), since_ms)
        if s.owns(record.key_text)
    ]


def dead_keys(settings: Settings, s: Scenario, service: str, since_ms: int) -> dict[str, str]:
    """The run's dead letters of one service: key -> error class."""
    return {
        x.record.key_text or "": x.error_class
        for x in dead_letters(settings, s, since_ms, [service])
    }


def dead_letter_differences(
    settings: Settings, s: Scenario, since_ms: int
) -> tuple[list[str], list[str]]:
    """The run's dead letters against the scenario's: ("service key error" dead-lettered but not
    expected so, "service key error" expected but never dead-lettered)."""
    unexpected, missing = [], []
    for service in SERVICES:
        got = dead_keys(settings, s, service, since_ms)
        want = s.expected.dead.get(service, {})
        unexpected += [f"{service} {k} {e}" for k, e in sorted(got.items()) if want.get(k) != e]
        missing += [f"{service} {k} {e}" for k, e in sorted(want.items()) if k not in got]
    return unexpected, missing

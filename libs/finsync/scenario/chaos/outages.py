"""Outages as the upstream systems and the chaos run itself see them: Kafka, PostgreSQL or
the registry away for a while. A step that meets one is tried again, as a real publisher
would; anything else is a bug and raised at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import KafkaException

from finsync.runtime import clients, db

T = TypeVar("T")

PATIENCE = 600.0  # seconds a step keeps trying through outages


def outage(exc: BaseException) -> bool:
    """Whether `exc` is Kafka, PostgreSQL or the registry being away, not a bug."""
    if db.is_outage(exc):  # PostgreSQL, and the registry as the serde reports it
        return True
    if isinstance(exc, KeyError | IndexError):
        return False
    # LookupError: a topic whose leader a restarted broker has not elected yet.
    return isinstance(exc, KafkaException | clients.DeliveryError | TimeoutError | LookupError)


def persist(what: str, step: Callable[[], T], say: Callable[[str], None]) -> T:
    """`step`, again and again through outages; anything else is raised at once."""
    deadline, wait = time.monotonic() + PATIENCE, 1.0
    while True:
        try:
            return step()
        except Exception as exc:
            if not outage(exc) or time.monotonic() > deadline:
                raise
            say(f"{what}: {type(exc).__name__}, trying again in {wait:.0f} s")
            time.sleep(wait)
            wait = min(wait * 2, 10.0)

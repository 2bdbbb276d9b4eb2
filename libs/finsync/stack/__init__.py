"""The embedded local stack: PostgreSQL, the schema registry (stored in PostgreSQL) and Kafka.

`up` is idempotent and waits until every part answers; then the database is migrated, the
topics created and the schemas registered, so services can start at once.
FINSYNC_STACK_SECURITY=scram-tls starts it with TLS and passwords (finsync.stack.security).
Prometheus, scraping the services, is an optional part (`up(..., with_prometheus=True)`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from finsync.console import background
from finsync.runtime import db, provision
from finsync.runtime.serde import registry_client
from finsync.settings import Settings
from finsync.stack import analytics, kafka, postgres, prometheus, registry, security
from finsync.stack.process import StackError

PARTS = (("postgres", postgres), ("registry", registry), ("kafka", kafka))


def clients(settings: Settings) -> Settings:
    """`settings` as a client of the local stack needs them in its security profile."""
    return security.client_settings(settings, registry.url(settings))


def up(
    settings: Settings,
    say: Callable[[str], None] = print,
    with_prometheus: bool = False,
    took: Callable[[str, float], None] = lambda step, seconds: None,
) -> Settings:
    """Start the stack (and Prometheus, if asked); returns the settings its clients need.
    `took` is told each step's seconds as it ends (`make bench` shows where start-up goes)."""
    clock = time.perf_counter()

    def step(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        took(name, now - clock)
        clock = now

    security.claim(settings, running=registry.running(settings) or kafka.running(settings))
    if security.enabled(settings):
        security.ensure(settings, say)
    settings = clients(settings)
    for name, part in PARTS:  # the registry stores its schemas in PostgreSQL, so order matters
        part.start(settings, say)
        step(name)
    applied = db.migrate(settings)
    if applied:
        say(f"applied migrations: {', '.join(applied)}")
    step("migrations")
    provision.create_topics(settings, say)
    step("topics")
    problems = provision.check_and_register(registry_client(settings))
    if problems:
        raise StackError(
            "schemas not registered:\n" + "\n".join(f"  {p.subject}: {p.reason}" for p in problems)
        )
    step("schemas")
    if with_prometheus:
        prometheus.start(settings, say)
        step("prometheus")
    return settings


def down(settings: Settings) -> None:
    """Stop every part, even when one of them fails to stop."""
    failed = []
    started_by_demo = [("console", background), ("finance-analytics", analytics)]
    for name, part in [*started_by_demo, ("prometheus", prometheus), *reversed(PARTS)]:
        try:
            part.stop(settings)
        except (StackError, OSError) as exc:
            failed.append(f"{name}: {exc}")
    if failed:
        raise StackError("could not stop every part:\n" + "\n".join(failed))


def status(settings: Settings) -> list[tuple[str, bool, str]]:
    if security.enabled(settings) and not security.files(settings).credentials.exists():
        never = f"not started with FINSYNC_STACK_SECURITY={security.SCRAM_TLS} in this home yet"
        return [(name, False, never) for name, _ in PARTS]
    settings = clients(settings)
    parts = [(name, *part.status(settings)) for name, part in PARTS]
    if prometheus.wanted(settings):  # optional: shown only while it is meant to run
        parts.append(("prometheus", *prometheus.status(settings)))
    return parts


def exports(settings: Settings) -> list[str]:
    """What to export in a shell so clients use this stack; empty in the plaintext profile,
    whose defaults already point at it."""
    if not security.enabled(settings):
        return []
    return security.exports(settings, registry.url(settings))

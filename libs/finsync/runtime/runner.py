"""`finsync run SERVICE`: the one way a service starts — its consumer and its outbox relay.

Runs in the foreground until SIGTERM or SIGINT; then the consumer finishes its batch,
commits and leaves the group, and the relay publishes what was committed before it stops.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import multiprocessing
import os
import signal
import threading
from typing import Any

from finsync.contract.topics import SERVICES
from finsync.errors import Outage
from finsync.runtime import db, telemetry
from finsync.runtime.consumer import ConsumerLoop
from finsync.runtime.failures import RetryPolicy
from finsync.runtime.processing import BatchProcessor
from finsync.runtime.relay import Relay
from finsync.runtime.serde import Serde, registry_client
from finsync.service import Service
from finsync.settings import Settings

log = logging.getLogger("finsync.runner")


def load(name: str) -> Service[Any]:
    if name not in SERVICES:
        raise SystemExit(f"unknown service {name!r}; services are: {', '.join(SERVICES)}")
    try:
        module = importlib.import_module(f"services.{name.replace('-', '_')}.main")
    except ModuleNotFoundError as exc:
        raise SystemExit(f"service {name!r} is not built yet ({exc})") from exc
    service: Service[Any] = module.SERVICE
    return service


def policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        settings.max_attempts, settings.retry_base_seconds, settings.retry_max_seconds
    )


def run(name: str, settings: Settings | None = None) -> None:
    settings = settings or Settings.from_env()
    service = load(name)
    telemetry.setup(service.name, settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if not _wait_for_database(settings, stop):
        return

    # The relay is a process of its own, so it publishes on the other core instead of taking
    # turns with the consumer for the interpreter lock.
    relay = multiprocessing.get_context("spawn").Process(
        target=_relay_main, args=(service.name, settings, os.getpid()), name=f"{service.name}-relay"
    )
    relay.start()
    processor = BatchProcessor(service, Serde(registry_client(settings)), policy(settings))
    log.info("%s started", service.name)
    try:
        ConsumerLoop(processor, settings).run(stop)
    finally:
        # Only now, so the relay publishes everything the consumer committed before stopping.
        if relay.pid is not None and relay.is_alive():
            os.kill(relay.pid, signal.SIGTERM)
        relay.join(timeout=60)
    log.info("%s stopped", service.name)


def _wait_for_database(settings: Settings, stop: threading.Event) -> bool:
    """Migrate, waiting as long as PostgreSQL is down, as the consumer does when it goes away
    later: a service started during an outage starts when the outage ends. False if stopped."""
    wait = 1.0
    while not stop.is_set():
        try:
            db.migrate(settings)
            return True
        except Outage as exc:
            log.error("%s; waiting %.0fs for the database before starting", exc, wait)
            stop.wait(wait)
            wait = min(wait * 2, 30.0)
    return False


def _relay_main(name: str, settings: Settings, parent: int) -> None:
    _die_with_parent(parent)
    telemetry.setup(name, settings.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the consumer; it tells us
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    Relay(name, settings).run(stop)


def _die_with_parent(parent: int) -> None:
    """A relay must not outlive its service (say, after a SIGKILL) and hold the relay lock."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

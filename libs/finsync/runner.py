"""`finsync run SERVICE`: the one way a service starts — its consumer and its outbox relay.

Runs in the foreground until SIGTERM or SIGINT; then the consumer finishes its batch,
commits and leaves the group, and the relay publishes what was committed before it stops.
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
from typing import Any

from finsync import db, telemetry
from finsync.consumer import ConsumerLoop
from finsync.failures import RetryPolicy
from finsync.processing import BatchProcessor
from finsync.relay import Relay
from finsync.serde import Serde, registry_client
from finsync.service import Service
from finsync.settings import Settings
from finsync.topics import SERVICES

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
    db.migrate(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    relay = Relay(service.name, settings)
    relay_stop = threading.Event()  # set only once the consumer is done, so nothing is left
    relay_thread = threading.Thread(target=relay.run, args=(relay_stop,), name="relay", daemon=True)
    relay_thread.start()
    processor = BatchProcessor(service, Serde(registry_client(settings)), policy(settings))
    log.info("%s started", service.name)
    try:
        ConsumerLoop(processor, settings).run(stop)
    finally:
        relay_stop.set()
        relay_thread.join(timeout=60)
    log.info("%s stopped", service.name)

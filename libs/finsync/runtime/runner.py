"""`finsync run SERVICE`: the one way a service starts — its consumer and its outbox relay.

Runs in the foreground until SIGTERM or SIGINT; then the consumer finishes its batch,
commits and leaves the group, and the relay publishes what was committed before it stops.
"""

from __future__ import annotations

import ctypes
import faulthandler
import importlib
import logging
import multiprocessing
import os
import signal
import threading
from typing import Any

from finsync.contract.topics import SERVICES
from finsync.errors import Outage
from finsync.runtime import db, metrics, telemetry
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


def policy(settings: Settings, service: str) -> RetryPolicy:
    return RetryPolicy(
        settings.retry_budget(service), settings.retry_base_seconds, settings.retry_max_seconds
    )


def run(name: str, settings: Settings | None = None) -> None:
    # First of all, so a stop asked for while the service is still loading is a clean stop.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # `kill -USR1 <pid>` writes every thread's stack to the log: what a stuck service is doing.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    settings = settings or Settings.from_env()
    service = load(name)
    port = settings.metrics_port(service.name)
    telemetry.setup(service.name, settings.log_level, port, settings.metrics_host)
    if stop.is_set():
        return
    if not _wait_for_database(settings, stop):
        return

    relay = RelayProcess(service.name, settings)
    relay.start()
    threading.Thread(target=relay.watch, name="relay-watch", daemon=True).start()
    processor = BatchProcessor(
        service, Serde(registry_client(settings)), policy(settings, service.name)
    )
    log.info("%s started", service.name)
    try:
        ConsumerLoop(processor, settings).run(stop)
    finally:
        relay.stop()  # only now, so it publishes everything the consumer committed
    log.info("%s stopped", service.name)


class RelayProcess:
    """The service's outbox relay, a child process so it publishes on the other core instead
    of taking turns with the consumer for the interpreter lock. Started again whenever it
    dies: without it the service would go on committing effects that nobody publishes."""

    def __init__(self, service: str, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.stopping = threading.Event()
        self.proc: multiprocessing.process.BaseProcess | None = None

    def start(self) -> None:
        self.proc = multiprocessing.get_context("spawn").Process(
            target=_relay_main,
            args=(self.service, self.settings, os.getpid()),
            name=f"{self.service}-relay",
        )
        self.proc.start()

    def watch(self) -> None:
        wait = 1.0
        while not self.stopping.wait(1.0):
            assert self.proc is not None
            if self.proc.is_alive():
                continue
            log.error(
                "the relay of %s exited with code %s; starting it again in %.0fs",
                self.service,
                self.proc.exitcode,
                wait,
            )
            if self.stopping.wait(wait):
                return
            self.start()
            wait = min(wait * 2, 30.0)

    def stop(self) -> None:
        self.stopping.set()
        if self.proc is not None and self.proc.pid is not None and self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGTERM)
        if self.proc is not None:
            self.proc.join(timeout=60)


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
    # Its own /metrics, next to its service's: it counts what it publishes, in its own process.
    port = metrics.relay_port(settings.metrics_port(name))
    telemetry.setup(name, settings.log_level, port, settings.metrics_host)
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

"""The fault schedule, and the thread that carries it out.

Faults fire at shares of the run's progress (its effects so far, of all it expects), spread
evenly from FIRST to LAST, so they land on work in flight whatever the machine's speed. One
at a time: each fault brings back what it took down before the next one starts.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from finsync.scenario.chaos import infra
from finsync.scenario.chaos.fleet import Fleet
from finsync.settings import Settings
from finsync.stack.process import StackError

KILL = "service SIGKILLed and restarted"
JOIN = "second instance joins"
LEAVE = "second instance leaves"
KAFKA = "Kafka SIGKILLed and restarted"
POSTGRES = "PostgreSQL crash-stopped and restarted"
REGISTRY = "registry stopped and started"
KINDS = (KILL, JOIN, LEAVE, KAFKA, POSTGRES, REGISTRY)

FIRST, LAST = 0.03, 0.9  # shares of progress the schedule spans
GAP = 2.0  # seconds at least between two faults
POLL = 1.0  # seconds between looks at the progress


class Run(Protocol):
    """What the monkey watches: how far the run is, and how much waits in retry."""

    def progress(self) -> float: ...

    def in_retry(self) -> int: ...


@dataclass(frozen=True)
class Fault:
    kind: str
    target: str = ""  # the service, for the faults of one service
    at: float = 0.0  # share of progress it waits for


@dataclass(frozen=True)
class Injected:
    fault: Fault
    started: float  # seconds into the chaos
    seconds: float  # how long it took, down and back
    progress: float
    in_retry: int  # records waiting in retry when it started
    error: str = ""


def schedule(services: Sequence[str], kills: int, rng: random.Random) -> list[Fault]:
    """Every fault once (a service's SIGKILL `kills` times), shuffled, each second instance
    leaving after it joined."""
    faults = [Fault(KILL, s) for s in services for _ in range(kills)]
    faults += [Fault(kind, s) for kind in (JOIN, LEAVE) for s in services]
    faults += [Fault(KAFKA), Fault(POSTGRES), Fault(REGISTRY)]
    rng.shuffle(faults)
    for s in services:
        join, leave = faults.index(Fault(JOIN, s)), faults.index(Fault(LEAVE, s))
        if leave < join:
            faults[join], faults[leave] = faults[leave], faults[join]
    step = (LAST - FIRST) / max(len(faults) - 1, 1)
    return [replace(f, at=FIRST + i * step) for i, f in enumerate(faults)]


class Monkey:
    def __init__(
        self,
        faults: list[Fault],
        fleet: Fleet,
        settings: Settings,
        run: Run,
        registry_seconds: float,
        say: Callable[[str], None],
    ) -> None:
        self.faults = faults
        self.fleet = fleet
        self.settings = settings
        self.run = run
        self.registry_seconds = registry_seconds
        self.say = say
        self.injected: list[Injected] = []
        self._hurry = threading.Event()  # the run is done: no more waiting for progress
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-monkey", daemon=True)
        self._t0 = time.monotonic()

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread.start()

    def finish(self) -> None:
        """Inject what is left now, one after the other, and return when done."""
        self._hurry.set()
        if self._thread.is_alive():
            self._thread.join()

    def abort(self) -> None:
        """Inject nothing more (the fault under way still ends with its part back)."""
        self._abort.set()
        self.finish()

    def counts(self) -> Counter[str]:
        return Counter(i.fault.kind for i in self.injected if not i.error)

    def _loop(self) -> None:
        for n, fault in enumerate(self.faults, 1):
            while not self._hurry.is_set() and self.run.progress() < fault.at:
                self._hurry.wait(POLL)
            if self._abort.is_set():
                return
            self._inject(n, fault)
            if self._abort.wait(GAP):
                return

    def _inject(self, n: int, fault: Fault) -> None:
        progress, waiting = self.run.progress(), self.run.in_retry()
        started = time.monotonic()
        self.say(
            f"[yellow]fault {n}/{len(self.faults)}: {fault.kind}[/yellow] {fault.target} "
            f"(at {progress:.0%} of the effects, {waiting} records waiting in retry)"
        )
        error = ""
        try:
            self._do(fault)
        except Exception as exc:  # recorded as a finding, never a silent end of the schedule
            error = f"{type(exc).__name__}: {exc}"
            self.say(f"[red]fault {fault.kind} {fault.target} failed: {error}[/red]")
            try:
                infra.heal(self.settings, self.say)
            except StackError as lasting:  # no more faults on a stack that cannot come back
                self.say(f"[red]the stack did not come back: {lasting}[/red]")
                self._abort.set()
        self.injected.append(
            Injected(
                fault,
                started - self._t0,
                time.monotonic() - started,
                progress,
                waiting,
                error,
            )
        )

    def _do(self, fault: Fault) -> None:
        if fault.kind == KILL:
            self.fleet.kill(fault.target)
        elif fault.kind == JOIN:
            self.fleet.join(fault.target)
        elif fault.kind == LEAVE:
            self.fleet.leave(fault.target)
        elif fault.kind == KAFKA:
            infra.kill_kafka(self.settings, self.say)
        elif fault.kind == POSTGRES:
            infra.crash_postgres(self.settings, self.say)
        elif fault.kind == REGISTRY:
            infra.registry_outage(self.settings, self.registry_seconds, self.say)
        else:
            raise ValueError(f"unknown fault {fault.kind!r}")

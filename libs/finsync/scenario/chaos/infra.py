"""Faults of the local stack: Kafka SIGKILLed, PostgreSQL crash-stopped, the registry away.

Each fault brings its part back before it returns, through the stack's own start, which
waits until the part answers. These reach into `finsync.stack`'s handles on purpose: the
stack only offers clean stops, and a crash is the point here.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Callable

from finsync.settings import Settings
from finsync.stack import kafka, postgres, registry
from finsync.stack.process import StackError, wait_for

Say = Callable[[str], None]

DOWN_SECONDS = 3.0  # how long Kafka and PostgreSQL stay down before they are started again
STARTS = 3  # attempts to bring a part back before the chaos run gives up on the stack


def _start(name: str, start: Callable[[], None], say: Say) -> None:
    for attempt in range(1, STARTS + 1):
        try:
            start()
            return
        except StackError as exc:
            if attempt == STARTS:
                raise
            say(f"[red]{name} did not come back ({exc}); starting it again[/red]")


def kill_kafka(settings: Settings, say: Say) -> None:
    """SIGKILL the broker: no controlled shutdown, its logs recovered on the next start."""
    pid = kafka._daemon(settings).pid()
    if pid is None:
        raise StackError("Kafka is not running")
    os.kill(pid, signal.SIGKILL)
    if not wait_for(lambda: kafka._daemon(settings).pid() is None, 30):
        raise StackError(f"Kafka (pid {pid}) did not die on SIGKILL")
    time.sleep(DOWN_SECONDS)
    _start("Kafka", functools.partial(kafka.start, settings, _quiet), say)


def crash_postgres(settings: Settings, say: Say) -> None:
    """`pg_ctl stop -m immediate`: every backend killed, crash recovery on the next start."""
    bindir = postgres._bindir()
    assert bindir is not None
    data, _, _ = postgres._paths(settings)
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
    postgres._run(pg_ctl, "immediate stop")
    time.sleep(DOWN_SECONDS)
    _start("PostgreSQL", functools.partial(postgres.start, settings, _quiet), say)


def registry_outage(settings: Settings, seconds: float, say: Say) -> None:
    """The registry stopped for `seconds`: new services cannot decode, nothing may be lost."""
    registry.stop(settings)
    time.sleep(seconds)
    _start("the registry", functools.partial(registry.start, settings, _quiet), say)


def heal(settings: Settings, say: Say) -> None:
    """Every part of the stack up and answering, whatever a fault left behind."""
    parts: list[tuple[str, Callable[[Settings, Say], None]]] = [
        ("PostgreSQL", postgres.start),
        ("the registry", registry.start),
        ("Kafka", kafka.start),
    ]
    for name, start in parts:
        _start(name, functools.partial(start, settings, _quiet), say)


def _quiet(_: str) -> None:
    """The stack's start-up chatter; the chaos run says what it does itself."""

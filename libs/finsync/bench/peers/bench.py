"""The peers' figures: throughput over a range of events, then fault runs over its tail beside
finsync's invoice-poster. `run_peers` returns them as plain data; `tables` prints them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from finsync.bench.invoice_poster import Offsets
from finsync.bench.peers.counting import range_invoices, tally
from finsync.bench.peers.runs import FINSYNC, PEERS, Fault, Runner, drive
from finsync.bench.peers.topics import ensure_topic, high_watermarks, tail
from finsync.contract.events import InvoiceIssued
from finsync.runtime.serde import Serde
from finsync.settings import Settings

DATABASE = "finsync_peers"


@dataclass(frozen=True)
class Throughput:
    run: str
    events: int
    seconds: float | None  # first posting to the last one announced; None: never finished
    lost: int
    duplicated: int
    unpublished: int

    @property
    def events_per_second(self) -> float | None:
        return self.events / self.seconds if self.seconds else None


@dataclass(frozen=True)
class FaultRun:
    run: str
    fault: str
    events: int
    lost: int  # invoices of the range with no journal entry
    duplicated: int  # invoices with results of more than one distinct event id
    unpublished: int  # posted invoices with no result
    restarts: int  # the fault's restart
    exits: int  # the process ended by itself and was started again
    drops: int  # times every PostgreSQL session was ended


@dataclass(frozen=True)
class PeerFigures:
    throughput: list[Throughput]
    faults: list[FaultRun]

    def as_json(self) -> dict[str, Any]:
        return {
            "throughput": [
                {**dataclasses.asdict(t), "events_per_second": t.events_per_second}
                for t in self.throughput
            ],
            "faults": [dataclasses.asdict(f) for f in self.faults],
        }


def peers_settings(settings: Settings) -> Settings:
    """The peers' database, whatever database `settings` name (the bench's is reset by it)."""
    base = settings.database_url.rsplit("/", 1)[0]
    return dataclasses.replace(settings, database_url=f"{base}/{DATABASE}")


def fault_events() -> int:
    return int(os.environ.get("FINSYNC_BENCH_FAULT_EVENTS", "6000"))


def run_peers(
    settings: Settings,
    serde: Serde,
    offsets: Offsets,
    n: int,
    *,
    faults: int | None = None,
    runners: Sequence[Runner] = PEERS,
    say: Callable[[str], None] = print,
) -> PeerFigures:
    """Each runner over the range, then each runner and invoice-poster with each fault over
    the range's last `faults` records (FINSYNC_BENCH_FAULT_EVENTS; 0: no fault runs). The
    range must end where its topic ends: the peers read on to the end. Moves invoice-poster's
    group, as `make bench` does, so call this after processing what that group had not."""
    settings = peers_settings(settings)
    held = sum(end - first for first, end in offsets.values())
    if held != n:
        raise ValueError(f"the range holds {held} records, not {n}")
    if high_watermarks(settings, InvoiceIssued.TOPIC) != {p: e for p, (_, e) in offsets.items()}:
        raise ValueError(
            f"records follow the range on {InvoiceIssued.TOPIC}: run the peers right after "
            "publishing it, before anything else is published there"
        )
    ensure_topic(settings)
    log_dir = settings.home / "run" / "peers"
    throughput = []
    invoices = range_invoices(settings, serde, offsets)
    for runner in runners:
        seen = drive(settings, runner, offsets, Fault.NONE, log_dir)
        counted = tally(settings, serde, invoices, runner.topic_out, seen.since)
        run = Throughput(
            runner.name, n, seen.seconds, counted.lost, counted.duplicated, counted.unpublished
        )
        rate = f"{run.events_per_second:,.0f} events/s" if run.events_per_second else "stalled"
        say(f"{runner.name}: {n} events, {rate}")
        throughput.append(run)
    fault_runs = []
    k = fault_events() if faults is None else faults
    if k:
        part = tail(offsets, k)
        invoices = range_invoices(settings, serde, part)
        for runner in (*runners, FINSYNC):
            for fault in (Fault.KILL, Fault.DB):
                seen = drive(settings, runner, part, fault, log_dir)
                counted = tally(settings, serde, invoices, runner.topic_out, seen.since)
                fault_runs.append(
                    FaultRun(
                        runner.name,
                        fault.value,
                        len(invoices),
                        counted.lost,
                        counted.duplicated,
                        counted.unpublished,
                        seen.restarts,
                        seen.exits,
                        seen.drops,
                    )
                )
                say(
                    f"{runner.name}, {fault.value}: {counted.lost} lost, "
                    f"{counted.duplicated} duplicated"
                )
    return PeerFigures(throughput, fault_runs)


def tables(figures: PeerFigures) -> list[Table]:
    out = []
    if figures.throughput:
        events = figures.throughput[0].events
        speed = Table(
            "run", "events", "seconds", "events/s", "lost", "duplicated",
            title=f"Peers of invoice-poster over the same {events} events",
        )  # fmt: skip
        for t in figures.throughput:
            speed.add_row(
                t.run,
                str(t.events),
                f"{t.seconds:.2f}" if t.seconds else "-",
                f"{t.events_per_second:,.0f}" if t.events_per_second else "stalled",
                str(t.lost),
                str(t.duplicated),
            )
        out.append(speed)
    if figures.faults:
        faults = Table(
            "run", "fault", "events", "lost", "duplicated", "not announced", "exited",
            title=f"Faults over the last {figures.faults[0].events} of them",
        )  # fmt: skip
        for f in figures.faults:
            faults.add_row(
                f.run, f.fault, str(f.events), str(f.lost), str(f.duplicated),
                str(f.unpublished), str(f.exits),
            )  # fmt: skip
        out.append(faults)
    return out

"""`python -m finsync.bench.peers`: publishes FINSYNC_BENCH_EVENTS (20000) invoices, runs each
peer over them, then the fault runs over the last FINSYNC_BENCH_FAULT_EVENTS (6000) beside
finsync's invoice-poster, prints both tables and keeps the figures in the bench's results
file (section `peers`; finsync.bench.results)."""

from __future__ import annotations

import os
import sys

from rich.console import Console

from finsync.bench import results
from finsync.bench.invoice_poster import catch_up, point_group, publish_invoices
from finsync.bench.peers.bench import fault_events, peers_settings, run_peers, tables
from finsync.bench.peers.runs import GROUP_WAIT_SECONDS
from finsync.contract.events import InvoiceIssued
from finsync.runtime.serde import Serde, registry_client
from finsync.settings import Settings

console = Console()


def main() -> int:
    stack = Settings.from_env()
    settings = peers_settings(stack)
    n = int(os.environ.get("FINSYNC_BENCH_EVENTS", "20000"))
    console.rule(f"[bold]finsync bench[/bold] — peers of invoice-poster, {n} invoice-issued events")
    serde = Serde(registry_client(settings))
    catch_up(stack)  # the fault runs move invoice-poster's group to the bench's events
    offsets = publish_invoices(settings, serde, n, seed=n)
    figures = run_peers(
        settings, serde, offsets, n, faults=fault_events(), say=lambda s: console.print(s)
    )
    # Past the bench's events, which it processed up to here or the stack's books never need.
    point_group(
        stack,
        "invoice-poster",
        InvoiceIssued.TOPIC,
        {p: (e, e) for p, (_, e) in offsets.items()},
        GROUP_WAIT_SECONDS,
    )
    for table in tables(figures):
        console.print(table)
    path = results.save("peers", {"events": n, **figures.as_json()})
    console.print(f"figures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

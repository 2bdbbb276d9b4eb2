"""`python -m finsync.scenario.chaos` (`make chaos`): one chaos run, its figures, and exit
status 0 only if every figure is as required.

FINSYNC_CHAOS_EVENTS (100000), FINSYNC_CHAOS_KILLS (5 per service),
FINSYNC_CHAOS_REGISTRY_SECONDS (30) and FINSYNC_CHAOS_SEED (7) set the defaults of the
options; the services' FINSYNC_RETRY_* variables, when set, win over the run's own.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from rich.console import Console

from finsync.runtime import telemetry
from finsync.scenario.chaos.run import Config, run
from finsync.scenario.chaos.verdict import print_figures
from finsync.settings import Settings


def _env(name: str, default: str) -> str:
    return os.environ.get(f"FINSYNC_CHAOS_{name}", default)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m finsync.scenario.chaos", description=__doc__)
    p.add_argument("--events", type=int, default=int(_env("EVENTS", "100000")))
    p.add_argument("--kills", type=int, default=int(_env("KILLS", "5")), help="per service")
    p.add_argument("--registry-seconds", type=float, default=float(_env("REGISTRY_SECONDS", "30")))
    p.add_argument("--seed", type=int, default=int(_env("SEED", "7")))
    p.add_argument("--report", type=Path, help="also write the figures here, as JSON")
    args = p.parse_args(argv)
    config = Config(args.events, args.kills, args.registry_seconds, args.seed)

    # Wide enough for the tables when the output is a pipe or a CI log, not a terminal.
    console = Console(width=None if sys.stdout.isatty() else 160)
    logs = Settings.from_env().home / "run" / "chaos" / time.strftime("%Y%m%d-%H%M%S")
    telemetry.json_logs("INFO", logs / "chaos.log")  # librdkafka complains a lot in outages
    t0 = time.monotonic()

    def say(text: str) -> None:
        console.print(f"[dim]{time.monotonic() - t0:5.0f}s ·[/dim] {text}")

    # SIGTERM as Ctrl-C: the run stops its services and brings the stack back before it ends.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    console.rule(f"[bold]finsync chaos[/bold] — {config.events:,} events, seed {config.seed}")
    try:
        figures = run(config, logs, say)
    except KeyboardInterrupt:  # run() has stopped its services and mended the stack
        console.print("[red]interrupted[/red]: no figures")
        return 130
    print_figures(console, figures)
    for path in filter(None, (logs / "figures.json", args.report)):
        figures.write(path)
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())

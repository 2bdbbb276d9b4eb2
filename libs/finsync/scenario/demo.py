"""`make demo`: the whole order-to-cash flow on the local stack, from CRM account to applied cash.

Starts the four services — each a consumer process with its outbox relay as a child process —
plays the realistic scenario of `finsync simulate` through them, runs the month-end revenue
recognition (`finsync erp recognize`), and prints what a finance lead wants to know: what went
through each stage, the dead letters and why, a trial balance per legal entity and currency, AR
per customer, whether every deal reached an invoice posting, and finance-analytics' KPIs (the
app, like the ops console, stays up after the demo).

FINSYNC_DEMO_SEED (7) picks the scenario, FINSYNC_DEMO_ACCOUNTS (200) its size.
"""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path

from rich.console import Console

from finsync.console import background
from finsync.contract.topics import SERVICES
from finsync.reference.erp import recognition
from finsync.runtime import db, telemetry
from finsync.scenario import crm, kpi_summary, stages, summary
from finsync.scenario.processes import ServiceProcess
from finsync.settings import Settings
from finsync.stack import analytics

# Wide enough for the tables when the output is a pipe or a CI log, not a terminal.
console = Console(width=None if sys.stdout.isatty() else 160)

# The demo shows retries ending in dead letters; it need not wait a production budget.
DEMO_ENV = {"FINSYNC_RETRY_BASE_SECONDS": "0.5", "FINSYNC_RETRY_BUDGET_SECONDS": "15"}


def say(text: str) -> None:
    console.print(f"[dim]·[/dim] {text}")


def start_console(settings: Settings, logs: Path) -> str | None:
    """The ops console, left running after the demo; how to sign in, or why it is not there."""
    try:
        secret = background.ensure_demo_user(settings)
        address = background.ensure_running(settings, logs / "console.log")
    except RuntimeError as exc:
        say(f"[yellow]the ops console did not start[/yellow]: {exc}")
        return None
    note = (
        f"ops console at {address} (it stays up until `make down`): sign in as "
        f"{background.DEMO_USER}, the password is in {secret}"
    )
    say(note)
    return note


def start_analytics(settings: Settings, logs: Path) -> bool:
    """finance-analytics, left running after the demo for the console's KPI page."""
    try:
        address = analytics.ensure_running(settings, logs / "finance-analytics.log")
    except RuntimeError as exc:
        say(f"[yellow]finance-analytics did not start[/yellow]: {exc}")
        return False
    say(f"finance-analytics serves its figures at {address}/kpis (it stays up until `make down`)")
    return True


def main() -> int:
    settings = Settings.from_env()
    seed = int(os.environ.get("FINSYNC_DEMO_SEED", "7"))
    accounts = int(os.environ.get("FINSYNC_DEMO_ACCOUNTS", "200"))
    logs = settings.home / "run" / "demo"
    telemetry.json_logs(settings.log_level, logs / "demo.log")  # the terminal is for finance
    db.migrate(settings)
    env = {k: os.environ.get(k, default) for k, default in DEMO_ENV.items()}  # yours win
    services = [ServiceProcess(name, logs, env) for name in SERVICES]
    console.rule(f"[bold]finsync demo[/bold] — order to cash, seed {seed}")
    ops_console = start_console(settings, logs)
    counting = start_analytics(settings, logs)
    try:
        for service in services:
            service.start(wait=False)
        for service in services:
            service.wait_log("started", 90)
        console.print(f"[dim]·[/dim] started {', '.join(SERVICES)}; their logs are in {logs}")
        scenario = crm.build(seed, None, date.today(), accounts)
        outcome = stages.play(settings, scenario, say)
        if outcome.complete:  # month end: deferred revenue of the months ended is earned
            run = recognition.recognize(settings, scenario.as_of)
            released = [m for m in run.months if m.released]
            say(
                f"revenue recognition through {scenario.as_of} released {len(released)} "
                "month(s) of deferred revenue, one journal per legal entity, currency and month"
            )
        ok = summary.print_summary(console, settings, outcome)
        if counting:
            kpi_summary.print_kpis(console, settings)
        if ops_console:
            say(ops_console)
    finally:
        for service in services:
            if service.proc is not None:
                service.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""`make bench`: how long `make up` takes from a warm cache (everything downloaded, the stack
stopped), and where that time goes, step by step. The target is under 30 s.

It stops the local stack (and what runs on it) twice: once for `make up` itself, timed whole,
and once for `finsync.stack.up` in this process, timed by step. The stack is up again at the
end. FINSYNC_BENCH_STACK_UP=0 skips it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from finsync import stack
from finsync.bench import results as bench_results
from finsync.settings import Settings

console = Console()
TARGET_SECONDS = 30.0
ROOT = Path(__file__).resolve().parents[3]  # the project: where the Makefile is


def make_up() -> float:
    """Seconds `make up` takes, the way a developer runs it."""
    started = time.perf_counter()
    done = subprocess.run(["make", "-s", "-C", str(ROOT), "up"], capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(f"{done.stdout}{done.stderr}".splitlines()[-15:])
        raise SystemExit(f"make up failed; `make up` again to see why:\n{tail}")
    return time.perf_counter() - started


def steps(settings: Settings) -> dict[str, float]:
    """Seconds of each step of `finsync.stack.up`, in order."""
    took: dict[str, float] = {}
    stack.up(settings, say=lambda _: None, took=took.__setitem__)
    return took


def main() -> int:
    if os.environ.get("FINSYNC_BENCH_STACK_UP", "1") == "0":
        return 0
    settings = Settings.from_env()
    console.rule("[bold]finsync bench[/bold] — `make up` from a warm cache")
    with console.status("stopping the stack, then `make up` ..."):
        stack.down(settings)
        whole = make_up()
    with console.status("stopping the stack, then starting it step by step ..."):
        stack.down(settings)
        by_step = steps(settings)
    table = Table("step", "seconds", title="`make up` from a warm cache")
    for name, seconds in by_step.items():
        table.add_row(f"  {name}", f"{seconds:.1f}")
    table.add_row("all steps, in this process", f"{sum(by_step.values()):.1f}")
    verdict = "under" if whole < TARGET_SECONDS else "OVER"
    table.add_row(f"make up ({verdict} the {TARGET_SECONDS:.0f} s target)", f"{whole:.1f}")
    console.print(table)
    path = bench_results.save(
        "make-up",
        {
            "seconds": round(whole, 2),
            "target_seconds": TARGET_SECONDS,
            "steps": {name: round(seconds, 2) for name, seconds in by_step.items()},
        },
    )
    console.print(f"figures saved in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The console every `finsync` command prints to."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

console = Console(soft_wrap=True)  # long lines stay whole in logs and pipes


def say(text: str) -> None:
    """A progress line, dimmed beside the results."""
    console.print(f"[dim]·[/dim] {text}")


def refused(path: Path, errors: list[str]) -> int:
    """A file a command would load, refused whole: every reason, and exit status 1."""
    console.print(f"[red]{path} was not loaded; nothing changed:[/red]", highlight=False)
    for error in errors:
        console.print(f"  - {error}", highlight=False, markup=False)
    return 1

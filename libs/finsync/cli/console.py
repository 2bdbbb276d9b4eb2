"""The console every `finsync` command prints to."""

from __future__ import annotations

from rich.console import Console

console = Console(soft_wrap=True)  # long lines stay whole in logs and pipes


def say(text: str) -> None:
    """A progress line, dimmed beside the results."""
    console.print(f"[dim]·[/dim] {text}")

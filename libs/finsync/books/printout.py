"""A reconciliation as people read it: a line per check, then what each one found."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from finsync.books.findings import Report
from finsync.domain.accounting import fmt

SHOWN = 20  # findings printed per check; `finsync reconcile --json` has them all


def print_report(out: Console, report: Report) -> None:
    table = Table("kind", "check", "breaks", "held", "", title="Reconciliation")
    for check in report.checks:
        found = report.of(check)
        breaks = sum(f.is_break for f in found)
        held = len(found) - breaks
        mark = "[red]✗[/red]" if breaks else "[green]✓[/green]"
        table.add_row(check.kind, check.title, str(breaks), str(held), mark)
    out.print(table)
    if report.functional_totals:
        title = "Ledger in each entity's functional currency"
        totals = Table("legal entity", "debits", "credits", "", title=title)
        for e, c, debits, credits in report.functional_totals:
            mark = "[green]nets to zero[/green]" if debits == credits else "[red]does not[/red]"
            totals.add_row(e, fmt(debits, c), fmt(credits, c), mark)
        out.print(totals)
    for check in report.checks:
        found = report.of(check)
        if not found:
            continue
        out.print(f"\n[bold]{check.title}[/bold]")
        for f in found[:SHOWN]:
            label = "[yellow]held[/yellow] " if f.held else "[red]break[/red]"
            out.print(f"  {label} {f.scope}: {f.detail}", highlight=False)
            if f.held:
                out.print(f"        {f.held}", style="dim", highlight=False)
        if len(found) > SHOWN:
            out.print(f"  … and {len(found) - SHOWN} more (--json lists them all)")
    for note in report.notes:
        out.print(f"[dim]note: {note}[/dim]")
    held_note = f", {len(report.held)} held in dead letters" if report.held else ""
    if report.breaks:
        out.print(f"\n[red]{len(report.breaks)} break(s)[/red]{held_note}")
    else:
        out.print(f"\n[green]no breaks[/green]{held_note}")

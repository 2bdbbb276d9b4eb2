"""What a chaos run must end with, read back from the systems of record and the dead-letter
topics, never from what the run meant to happen: nothing lost, nothing taken effect twice,
every journal balanced, the AR ledger equal to the sub-ledger, and no dead letter but the
scenario's own.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import LiteralString

import psycopg
from rich.console import Console
from rich.table import Table

from finsync.reference import reports
from finsync.runtime import db
from finsync.scenario.chaos.fleet import Exit
from finsync.scenario.chaos.monkey import KINDS, Injected
from finsync.scenario.outcome import Outcome, dead_letter_differences
from finsync.settings import Settings


@dataclass
class Figures:
    events: int
    elapsed: float
    faults: dict[str, int]  # kind -> injected
    planned: dict[str, int]  # kind -> scheduled
    lost: dict[str, list[str]]  # what kind of document -> the ones that never took effect
    duplicated: list[str]  # keys with more than one effect
    unbalanced: int  # journal entries whose debits are not their credits
    ar_differences: list[str]  # invoices, or ledger totals, that do not reconcile
    unexpected_dead: list[str]  # "service key error" dead-lettered but not expected so
    missing_dead: list[str]  # "service key error" expected, never dead-lettered
    exits: list[str] = field(default_factory=list)  # services that died or stopped badly
    failed_faults: list[str] = field(default_factory=list)
    incomplete: str = ""  # what the run was still waiting for

    @property
    def lost_total(self) -> int:
        return sum(len(v) for v in self.lost.values())

    @property
    def ok(self) -> bool:
        return not (
            self.lost_total or self.duplicated or self.unbalanced or self.ar_differences
            or self.unexpected_dead or self.missing_dead or self.exits or self.failed_faults
            or self.incomplete or self.faults != self.planned
        )  # fmt: skip

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**asdict(self), "ok": self.ok}, indent=2) + "\n")


def _ids(conn: psycopg.Connection, sql: LiteralString, like: str) -> list[str]:
    return [str(r[0]) for r in conn.execute(sql, (like,))]


def _lost(conn: psycopg.Connection, outcome: Outcome) -> dict[str, list[str]]:
    s, like = outcome.scenario, outcome.scenario.like()
    versions: dict[str, int] = dict(
        conn.execute(
            "SELECT account_id, version FROM finsync.account_xref WHERE account_id LIKE %s",
            (like,),
        ).fetchall()
    )
    subscribed = _ids(
        conn, "SELECT opportunity_id FROM billing.subscriptions WHERE opportunity_id LIKE %s", like
    )
    # Every document billing issued, from its own tables (not from what it published).
    invoices = _ids(conn, "SELECT invoice_id FROM billing.invoices WHERE invoice_id LIKE %s", like)
    memos = _ids(
        conn, "SELECT credit_memo_id FROM billing.credit_memos WHERE credit_memo_id LIKE %s", like
    )
    documents = [f"invoice:{i}" for i in invoices] + [f"credit-memo:{m}" for m in memos]
    posted = reports.postings_by_key(conn, documents)
    applied = _ids(conn, "SELECT payment_id FROM erp.payments WHERE payment_id LIKE %s", like)
    return {
        "accounts (at their last version)": sorted(
            a for a, v in s.expected.versions.items() if versions.get(a) != v
        ),
        "opportunities": sorted(s.expected.activated - set(subscribed)),
        "invoices and credit memos": sorted(d for d in documents if d not in posted),
        "payments": sorted(s.expected.payments - set(applied)),
    }


def _ar_differences(conn: psycopg.Connection, like: str) -> list[str]:
    """Per invoice, open = invoiced - credited - applied - written off; and per legal entity
    and currency, the AR account of the general ledger = the open items of the sub-ledger."""
    out = [f"{i}: open {o}, expected {e}" for i, e, o in reports.ar_discrepancies(conn, like)]
    ledger, items = reports.ar_ledger_and_items(conn, like)
    out += [
        f"{e} {c}: ledger {ledger.get((e, c))}, open items {items.get((e, c))}"
        for e, c in sorted(set(ledger) | set(items))
        if ledger.get((e, c)) != items.get((e, c))
    ]
    return out


def figures(
    settings: Settings,
    outcome: Outcome,
    events: int,
    elapsed: float,
    injected: list[Injected],
    planned: Counter[str],
    exits: list[Exit],
) -> Figures:
    s, like = outcome.scenario, outcome.scenario.like()
    with db.connect(settings) as conn:
        lost = _lost(conn, outcome)
        duplicated = reports.duplicate_effects(conn, like)
        duplicated += [
            f"subscription of {r[0]}"
            for r in conn.execute(
                "SELECT opportunity_id FROM billing.subscriptions WHERE opportunity_id LIKE %s "
                "GROUP BY 1 HAVING count(*) > 1",
                (like,),
            )
        ]
        unbalanced = reports.unbalanced_entries(conn)
        ar = _ar_differences(conn, like)
    unexpected, missing = dead_letter_differences(settings, s, outcome.started_ms)
    return Figures(
        events=events,
        elapsed=round(elapsed, 1),
        faults=dict(Counter(i.fault.kind for i in injected if not i.error)),
        planned=dict(planned),
        lost=lost,
        duplicated=duplicated,
        unbalanced=unbalanced,
        ar_differences=ar,
        unexpected_dead=unexpected,
        missing_dead=missing,
        exits=[f"{x.service}: {x.what} ({x.log})" for x in exits],
        failed_faults=[f"{i.fault.kind} {i.fault.target}: {i.error}" for i in injected if i.error],
        incomplete="" if outcome.complete else outcome.waiting_for or "did not finish",
    )


def _mark(ok: bool) -> str:
    return "[green]✓[/green]" if ok else "[red]✗[/red]"


def print_figures(console: Console, f: Figures) -> None:
    table = Table("fault", "injected", "planned", title="Faults injected")
    for kind in KINDS:
        n, want = f.faults.get(kind, 0), f.planned.get(kind, 0)
        table.add_row(kind, str(n), str(want), end_section=kind == KINDS[-1])
    table.add_row("[bold]all[/bold]", str(sum(f.faults.values())), str(sum(f.planned.values())))
    console.print(table)

    table = Table("figure", "value", "required", "", title="Chaos run")
    rows = [
        ("events sent to the four services", f"{f.events:,}", "", True),
        ("faults injected", str(sum(f.faults.values())), "all planned", f.faults == f.planned),
        ("elapsed", f"{f.elapsed:.0f} s", "", True),
        ("lost (valid events without effect)", str(f.lost_total), "0", not f.lost_total),
        ("duplicated effects", str(len(f.duplicated)), "0", not f.duplicated),
        ("unbalanced journal entries", str(f.unbalanced), "0", not f.unbalanced),
        ("AR differences (ledger vs sub-ledger)", str(len(f.ar_differences)), "0",
         not f.ar_differences),
        ("unexpected dead letters", str(len(f.unexpected_dead)), "0", not f.unexpected_dead),
        ("expected dead letters missing", str(len(f.missing_dead)), "0", not f.missing_dead),
        ("service processes that died or stopped badly", str(len(f.exits)), "0", not f.exits),
    ]  # fmt: skip
    for name, value, required, ok in rows:
        table.add_row(name, value, required, _mark(ok))
    console.print(table)
    problems = {
        "lost": [f"{kind}: {', '.join(ids[:5])}" for kind, ids in f.lost.items() if ids],
        "duplicated": f.duplicated[:5],
        "AR differences": f.ar_differences[:5],
        "unexpected dead letters": f.unexpected_dead[:10],
        "expected dead letters missing": f.missing_dead[:10],
        "service exits": f.exits,
        "failed faults": f.failed_faults,
        "incomplete": [f.incomplete] if f.incomplete else [],
    }
    for what, items in problems.items():
        for item in items:
            console.print(f"[red]✗ {what}:[/red] {item}")
    console.print(f"{_mark(f.ok)} chaos run {'passed' if f.ok else 'FAILED'}")

"""`finsync erp mapping`: the reference ERP's GL mapping — which revenue, deferred revenue and
tax accounts invoice lines post to — listed, and loaded from a TOML file."""

from __future__ import annotations

import argparse
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from rich.table import Table

from finsync.cli.console import console, refused
from finsync.settings import Settings

if TYPE_CHECKING:
    from finsync.domain.gl_mapping import Rule
    from finsync.domain.gl_mapping_file import Plan


def _matches(rule: Rule) -> str:
    from finsync.domain.gl_mapping import RevenueRule

    if isinstance(rule, RevenueRule):
        return f"{'family' if rule.prefix is not None else 'SKU'} {rule.sku}"
    return f"{rule.legal_entity} at {(rule.rate * 100).normalize():f} %"


def _accounts(rule: Rule) -> str:
    from finsync.domain.gl_mapping import RevenueRule

    if isinstance(rule, RevenueRule):
        return f"revenue {rule.revenue_account}, deferred {rule.deferred_account}"
    return f"tax {rule.tax_account}"


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.reference.erp import gl_mapping
    from finsync.runtime import db

    with db.connect(settings) as conn:
        rules = gl_mapping.listing(conn)
    table = Table("rule", "matches", "accounts", "status", "used", "changed", title="GL mapping")
    for x in rules:
        status = "[green]active[/green]" if x.rule.active else "[dim]retired[/dim]"
        changed = f"{x.changed_at.astimezone():%Y-%m-%d %H:%M} {x.changed_by}"
        used = "yes" if x.used else "no"
        table.add_row(x.rule.rule_id, _matches(x.rule), _accounts(x.rule), status, used, changed)
    if rules:
        console.print(table)
    else:
        console.print("no GL mapping rules: every line posts to the default accounts")
    console.print(
        "[dim]a SKU's own rule first, then its family's of the longest prefix, else revenue "
        "4000 and deferred 2300; tax by legal entity and rate, else 2200[/dim]"
    )
    return 0


def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.domain.gl_mapping_file import MappingInvalid, parse
    from finsync.reference.erp import gl_mapping
    from finsync.runtime import db

    path: Path = args.file
    try:
        # Decimals, so a rate of 0.10 is exactly 0.10.
        mapping = parse(tomllib.loads(path.read_text(encoding="utf-8"), parse_float=Decimal))
        with db.connect(settings) as conn:
            changes = gl_mapping.load(conn, mapping, settings.operator, args.dry_run)
            if args.dry_run:
                conn.rollback()
    except OSError as exc:
        return refused(path, [f"cannot be read: {exc.strerror or exc}"])
    except tomllib.TOMLDecodeError as exc:
        return refused(path, [f"is not TOML: {exc}"])
    except MappingInvalid as exc:
        return refused(path, exc.errors)
    except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
        return refused(path, ["postings kept the GL mapping busy; try again"])
    _report(changes)
    done = "would change" if args.dry_run else "loaded"
    console.print(
        f"GL mapping {done} from {path}: {len(changes.added)} rule(s) added, "
        f"{len(changes.changed)} changed, {len(changes.deactivated)} retired, "
        f"{len(changes.deleted)} deleted, {len(changes.unchanged)} unchanged; "
        f"{len(changes.accounts_added)} account(s) added"
        + ("; dry run: nothing changed" if args.dry_run else ""),
        highlight=False,
    )
    return 0


def _report(changes: Plan) -> None:
    for a in changes.accounts_added:
        console.print(f"account {a.code} added: {a.name} ({a.kind})", markup=False)
    for a in changes.accounts_renamed:
        console.print(f"account {a.code} renamed: {a.name}", markup=False)
    for what, rules in (("added", changes.added), ("changed", changes.changed)):
        for r in rules:
            state = "" if r.active else " (inactive)"
            console.print(
                f"rule {r.rule_id} {what}: {_matches(r)} -> {_accounts(r)}{state}",
                highlight=False,
                markup=False,
            )
    for r in changes.deactivated:
        console.print(
            f"rule {r.rule_id} retired: no longer in the file, kept as postings used it",
            highlight=False,
            markup=False,
        )
    for rule_id in changes.deleted:
        console.print(f"rule {rule_id} deleted: no longer in the file", markup=False)


def register(erp: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    m = erp.add_parser(
        "mapping", help="the GL mapping: revenue and tax accounts by SKU, entity and tax rate"
    ).add_subparsers(dest="mapping_action", required=True)
    s = m.add_parser("list", help="the mapping's rules, active and retired")
    s.set_defaults(func=cmd_list)
    s = m.add_parser(
        "load",
        help="make the mapping the file's (TOML), checked first; all or nothing",
        description="The file is the whole mapping: [[account]] tables add accounts to the "
        "chart, [[revenue]] and [[tax]] tables are the rules, upserted by id. A rule the file "
        "no longer lists is deleted, or retired if postings used it; a rule postings used keeps "
        "its match and accounts. Any problem (an unknown account, a duplicate rule, a bad "
        "rate) is listed, with exit code 1, and nothing changes. See "
        "deploy/gl-mapping.example.toml.",
    )
    s.add_argument("file", type=Path, help="the mapping file, e.g. deploy/gl-mapping.example.toml")
    s.add_argument(
        "--dry-run", action="store_true", help="check the file and show the changes only"
    )
    s.set_defaults(func=cmd_load)

"""`finsync asyncapi`: write docs/asyncapi.yaml, or check that it is current and valid."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from finsync.cli.console import console
from finsync.settings import Settings


def cmd_asyncapi(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.runtime import asyncapi, asyncapi_check

    path: Path = args.file or asyncapi.DOCUMENT
    if not args.check:
        changed = asyncapi.write(path)
        console.print(f"{path} {'written' if changed else 'is up to date'}", highlight=False)
        return 0
    problems = []
    stale = asyncapi_check.stale(path)
    if stale:
        problems.append(stale)
    if path.exists():
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, when there
        try:
            doc = yaml.load(path.read_text(), Loader=loader)
        except yaml.YAMLError as exc:
            doc, problems = None, [*problems, f"not YAML: {exc}"]
        try:
            if isinstance(doc, dict):
                problems += asyncapi_check.invalid(doc)
        except ModuleNotFoundError as exc:  # jsonschema: a development dependency
            console.print(f"[yellow]not validated against the AsyncAPI schema: {exc}[/yellow]")
    if problems:
        console.print(f"[red]{path} fails the check:[/red]", highlight=False)
        for problem in problems:
            console.print(f"  {problem}", highlight=False, markup=False)
        return 1
    console.print(f"[green]✓[/green] {path} is current and valid AsyncAPI 3.0.0", highlight=False)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "asyncapi",
        help="write the AsyncAPI 3.0 document of the topics (docs/asyncapi.yaml)",
        description="Generated from schemas/*.avsc, the topics, the services' wiring and the "
        "header names; a second run changes nothing.",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 unless the file is what the code describes now and valid",
    )
    p.add_argument("--file", type=Path, help="another path than the checkout's docs/asyncapi.yaml")
    p.set_defaults(func=cmd_asyncapi)

"""`finsync stack`, `migrate`, `topics` and `schemas`: the local stack and what it must hold."""

from __future__ import annotations

import argparse

from finsync.cli.console import console, say
from finsync.runtime import db, provision
from finsync.runtime.serde import registry_client
from finsync.settings import Settings


def cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from finsync import stack

    if args.action == "up":
        stack.up(settings, say, with_prometheus=args.prometheus)
    elif args.action == "down":
        stack.down(settings)
    parts = stack.status(settings)
    for name, healthy, text in parts:
        mark = "[green]up[/green]" if healthy else "[red]down[/red]"
        console.print(f"{name:<10} {mark}  {text}")
    wanted = {"up": True, "down": False}.get(args.action)
    healthy = wanted is None or all(h == wanted for _, h, _ in parts)
    all_up = all(h for _, h, _ in parts)
    if args.action != "down" and all_up and (lines := stack.exports(settings)):
        # Plain print, not rich: these lines are meant to be copied into a shell as they are.
        print("\nTo use this stack from a shell (no password is shown; they stay in their file):")
        print("\n".join(lines))
    return 0 if healthy else 1


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    applied = db.migrate(settings)
    console.print(f"applied: {', '.join(applied)}" if applied else "database is up to date")
    return 0


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    created = provision.create_topics(settings, say)
    console.print(f"created {len(created)} topics" if created else "all topics exist")
    return 0


def cmd_schemas(args: argparse.Namespace, settings: Settings) -> int:
    problems = provision.check_and_register(registry_client(settings), register=not args.check_only)
    for p in problems:
        console.print(f"[red]✗[/red] {p.subject}: {p.reason}")
    if problems:
        console.print(
            "Schema changes must stay BACKWARD compatible: add fields with defaults, "
            "do not remove or retype fields without a migration."
        )
        return 1
    console.print(f"[green]✓[/green] all schemas are {provision.COMPATIBILITY} compatible")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("stack", help="the embedded local stack (PostgreSQL, registry, Kafka)")
    s.add_argument("action", choices=["up", "down", "status"])
    s.add_argument(
        "--prometheus",
        action="store_true",
        help="with `up`: also start Prometheus (Debian's), scraping every service's /metrics",
    )
    s.set_defaults(func=cmd_stack)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("topics", help="create missing topics").set_defaults(func=cmd_topics)
    s = sub.add_parser("schemas", help="register schemas/*.avsc with BACKWARD compatibility")
    s.add_argument("--check-only", action="store_true", help="check, register nothing")
    s.set_defaults(func=cmd_schemas)

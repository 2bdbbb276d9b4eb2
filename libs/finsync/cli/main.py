"""The `finsync` command: stack, services, publishing and dead letters."""

from __future__ import annotations

import argparse
import sys

from confluent_kafka.schema_registry.error import SchemaRegistryError

from finsync.cli import (
    asyncapi,
    billing,
    dlq,
    erp,
    kpis,
    ops_console,
    publish,
    reconcile,
    services,
    simulate,
    stack,
)
from finsync.cli.console import console
from finsync.errors import Outage
from finsync.runtime import telemetry
from finsync.runtime.clients import AuthenticationFailed
from finsync.settings import Settings
from finsync.stack.process import StackError

# In the order `finsync --help` lists their commands.
GROUPS = (
    stack,
    publish,
    services,
    billing,
    erp,
    reconcile,
    simulate,
    dlq,
    kpis,
    asyncapi,
    ops_console,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="finsync", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings.from_env()
    telemetry.json_logs("WARNING")  # librdkafka's complaints too, as JSON on stderr
    try:
        code: int = args.func(args, settings)
    except StackError as exc:
        console.print(f"[red]stack error:[/red] {exc}")
        return 1
    except Outage as exc:
        console.print(f"[red]{exc}[/red]\nIs the stack running? Try `finsync stack status`.")
        return 1
    except AuthenticationFailed as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    except SchemaRegistryError as exc:
        if exc.http_status_code not in (401, 403):
            raise
        console.print(
            f"[red]the schema registry at {settings.registry_url} refused our credentials "
            f"(HTTP {exc.http_status_code})[/red]: check FINSYNC_REGISTRY_BASIC_AUTH"
        )
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())

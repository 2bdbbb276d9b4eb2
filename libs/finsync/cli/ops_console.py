"""`finsync console`: serve the ops console, and manage who may sign in to it."""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import logging
import sys
from collections.abc import Callable

from rich.table import Table

from finsync.cli.console import console
from finsync.runtime import db
from finsync.settings import Settings


def _read_password(args: argparse.Namespace) -> str:
    """From stdin (`--password-stdin`, for scripts) or a prompt asked twice; never argv or the
    environment, where other users and shell history could read it."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password (at least 12 characters): ")
    if getpass.getpass("Again: ") != first:
        raise SystemExit("the two passwords differ; nothing changed")
    return first


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from finsync.console.app import create_app
    from finsync.runtime import telemetry

    host = args.host or settings.console_host
    port = args.port or settings.console_port
    db.migrate(settings)
    telemetry.json_logs(settings.log_level)
    if not settings.console_secure_cookies and not _loopback(host):
        # Not refused: TLS may end at a proxy in front. But then the cookie should say Secure.
        logging.getLogger("finsync.console").warning(
            "the console listens beyond this machine without secure cookies: serve it only "
            "behind HTTPS and set FINSYNC_CONSOLE_SECURE_COOKIES=true",
            extra={"host": host},
        )
    # Our own JSON lines only: uvicorn's access log would print every query string.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )
    return 0


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def cmd_user_add(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.console import users

    users.check_username(args.name)  # before asking for a password
    password = users.check_password(_read_password(args))
    db.migrate(settings)
    with db.connect(settings) as conn:
        users.add(conn, args.name, password, args.role)
    console.print(f"user {args.name} added, role {args.role}", highlight=False)
    return 0


def cmd_user_list(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.console import users

    db.migrate(settings)
    with db.connect(settings) as conn:
        found = users.all_users(conn)
    table = Table("user", "role", "created", "last sign-in", "state")
    for u in found:
        state = "disabled" if u.disabled else ("locked" if u.locked_until else "active")
        last = u.last_login.strftime("%Y-%m-%d %H:%M") if u.last_login else "never"
        table.add_row(u.username, u.role, u.created_at.strftime("%Y-%m-%d"), last, state)
    console.print(table)
    console.print(f"{len(found)} user(s)")
    return 0


def cmd_user_remove(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.console import users

    with db.connect(settings) as conn:
        users.remove(conn, args.name)
    console.print(f"user {args.name} removed; their sessions ended", highlight=False)
    return 0


def cmd_user_passwd(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.console import users

    password = users.check_password(_read_password(args))
    with db.connect(settings) as conn:
        users.set_password(conn, args.name, password)
    console.print(f"password of {args.name} changed; their sessions ended", highlight=False)
    return 0


def cmd_user_role(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.console import users

    with db.connect(settings) as conn:
        users.set_role(conn, args.name, args.role)
    console.print(f"{args.name} is now {args.role}", highlight=False)
    return 0


def cmd_user_disable(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.console import users

    with db.connect(settings) as conn:
        users.set_disabled(conn, args.name, args.disable)
    state = "disabled; their sessions ended" if args.disable else "enabled"
    console.print(f"{args.name} {state}", highlight=False)
    return 0


def cmd_user_unlock(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.console import auth
    from finsync.console.users import UserError

    with db.connect(settings) as conn:
        if not auth.unlock(conn, args.name):
            raise UserError(f"no user {args.name}")
    console.print(f"{args.name} unlocked; failed sign-ins reset", highlight=False)
    return 0


Command = Callable[[argparse.Namespace, Settings], int]


def _guarded(func: Command) -> Command:
    """A user command refused for a reason (no such user, a short password) prints the reason
    and exits 1 rather than a traceback."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        from finsync.console.users import UserError

        try:
            code = func(args, settings)
        except UserError as exc:
            console.print(f"[red]{exc}[/red]", highlight=False)
            return 1
        return code

    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "console",
        help="the ops console (web): serve it, manage its users",
        description="A web console for SREs and finance ops: dead letters, replays, service "
        "health, lineage, reconciliation. Users sign in with a password; viewers see, "
        "operators also replay, resolve, reopen and assign.",
    )
    cmds = p.add_subparsers(dest="console_command", required=True)

    s = cmds.add_parser("serve", help="run the console until Ctrl-C")
    s.add_argument("--host", help="address to listen on (FINSYNC_CONSOLE_HOST, 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (FINSYNC_CONSOLE_PORT, 8180)")
    s.set_defaults(func=cmd_serve)

    u = cmds.add_parser("user", help="who may sign in").add_subparsers(
        dest="user_command", required=True
    )
    stdin_help = "read the password from the first line of stdin instead of a prompt"

    a = u.add_parser("add", help="a new user; asks for the password twice")
    a.add_argument("name")
    a.add_argument("--role", choices=("viewer", "operator"), required=True)
    a.add_argument("--password-stdin", action="store_true", help=stdin_help)
    a.set_defaults(func=_guarded(cmd_user_add))

    u.add_parser("list", help="every user, role and state").set_defaults(
        func=_guarded(cmd_user_list)
    )

    r = u.add_parser("remove", help="delete a user and end their sessions")
    r.add_argument("name")
    r.set_defaults(func=_guarded(cmd_user_remove))

    w = u.add_parser("passwd", help="set a new password (ends the user's sessions)")
    w.add_argument("name")
    w.add_argument("--password-stdin", action="store_true", help=stdin_help)
    w.set_defaults(func=_guarded(cmd_user_passwd))

    o = u.add_parser("role", help="make a user viewer or operator")
    o.add_argument("name")
    o.add_argument("role", choices=("viewer", "operator"))
    o.set_defaults(func=_guarded(cmd_user_role))

    d = u.add_parser("disable", help="keep a user from signing in (ends their sessions)")
    d.add_argument("name")
    d.set_defaults(func=_guarded(cmd_user_disable), disable=True)
    k = u.add_parser("unlock", help="lift a lock after failed sign-ins before it runs out")
    k.add_argument("name")
    k.set_defaults(func=_guarded(cmd_user_unlock))
    e = u.add_parser("enable", help="let a disabled user sign in again")
    e.add_argument("name")
    e.set_defaults(func=_guarded(cmd_user_disable), disable=False)

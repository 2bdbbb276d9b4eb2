"""PostgreSQL connections and the versioned migrations finsync applies to its database.

Each part that owns tables keeps its SQL beside its code, in a `migrations/` folder of its own
(the runtime, the cross-reference store, each reference system). They are applied together in
the order of their numbered names, which are unique across the parts. A migration that was
split from an older one names it on a `-- replaces: <name>` line, so a database that applied
the older one does not apply its parts again.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from finsync.errors import Outage
from finsync.settings import Settings

PACKAGE = Path(__file__).resolve().parents[1]  # finsync/


def migrations() -> list[Path]:
    """Every migration of every part, in the order they apply."""
    paths = sorted(PACKAGE.glob("**/migrations/*.sql"), key=lambda p: p.name)
    names = [p.name for p in paths]
    clashes = {n for n in names if names.count(n) > 1}
    if clashes:
        raise RuntimeError(f"migration names must be unique: {', '.join(sorted(clashes))}")
    return paths


def _replaces(path: Path) -> set[str]:
    first = path.read_text().partition("\n")[0]
    names = first.removeprefix("-- replaces:")
    return {n.strip() for n in names.split(",")} if names != first else set()


# SQLSTATE classes that mean the database, not the record, is in trouble: connection
# exceptions, insufficient resources, operator intervention (shutdown, crash), system errors.
# Others an OperationalError can carry — a program limit such as an index row too large, a
# statement or lock timeout — are caused by one record and must not hold up the rest.
_OUTAGE_CLASSES = ("08", "53", "57P", "58", "XX")


def is_outage(exc: BaseException) -> bool:
    """True if `exc` means the database is unavailable, so the batch must wait and retry."""
    if isinstance(exc, Outage):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith(_OUTAGE_CLASSES)


def session_options(settings: Settings) -> str:
    """Limits every finsync session runs under, so no statement, lock wait or forgotten
    transaction can hold a partition, and a vanished peer is noticed by both ends: the server
    ends the session of a client that is gone (releasing its locks, the relay's advisory lock
    included), the client drops a server that stopped answering."""
    idle = settings.db_keepalive_seconds
    limits = {
        "statement_timeout": f"{settings.db_statement_timeout_seconds * 1000:.0f}",
        "lock_timeout": f"{settings.db_lock_timeout_seconds * 1000:.0f}",
        "idle_in_transaction_session_timeout": (
            f"{settings.db_idle_in_transaction_timeout_seconds * 1000:.0f}"
        ),
        "tcp_keepalives_idle": str(idle),
        "tcp_keepalives_interval": str(max(idle // 3, 1)),
        "tcp_keepalives_count": "3",
    }
    return " ".join(f"-c {name}={value}" for name, value in limits.items())


def connect(settings: Settings, autocommit: bool = False) -> psycopg.Connection:
    idle = settings.db_keepalive_seconds
    try:
        return psycopg.connect(
            settings.database_url,
            autocommit=autocommit,
            connect_timeout=5,
            options=session_options(settings),
            keepalives=1,
            keepalives_idle=idle,
            keepalives_interval=max(idle // 3, 1),
            keepalives_count=3,
        )
    except psycopg.OperationalError as exc:
        raise Outage(f"database unavailable: {exc}".strip()) from exc


def migrate(settings: Settings) -> list[str]:
    """Apply the migrations not applied yet, each in its own transaction; returns their names."""
    applied: list[str] = []
    with connect(settings) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS public.finsync_migrations "
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        # Two processes starting at once must not apply the same migration twice.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('finsync_migrations'))")
        done = {r[0] for r in conn.execute("SELECT name FROM public.finsync_migrations")}
        conn.commit()
        for path in migrations():
            if path.name in done or _replaces(path) & done:
                continue
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('finsync_migrations'))")
                if conn.execute(
                    "SELECT 1 FROM public.finsync_migrations WHERE name = %s", (path.name,)
                ).fetchone():
                    continue
                conn.execute(path.read_text().encode())
                conn.execute(
                    "INSERT INTO public.finsync_migrations (name) VALUES (%s)", (path.name,)
                )
            applied.append(path.name)
    return applied

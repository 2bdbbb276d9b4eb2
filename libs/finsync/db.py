"""PostgreSQL connections and the versioned migrations finsync applies to its database."""

from __future__ import annotations

from pathlib import Path

import psycopg

from finsync.errors import Outage
from finsync.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def connect(settings: Settings, autocommit: bool = False) -> psycopg.Connection:
    try:
        return psycopg.connect(settings.database_url, autocommit=autocommit, connect_timeout=5)
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
        for path in sorted(MIGRATIONS.glob("*.sql")):
            if path.name in done:
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

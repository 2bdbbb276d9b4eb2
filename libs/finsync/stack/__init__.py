"""The embedded local stack: PostgreSQL, the schema registry (stored in PostgreSQL) and Kafka.

`up` is idempotent and waits until every part answers; then the database is migrated, the
topics created and the schemas registered, so services can start at once.
"""

from __future__ import annotations

from collections.abc import Callable

from finsync.runtime import db, provision
from finsync.runtime.serde import registry_client
from finsync.settings import Settings
from finsync.stack import kafka, postgres, registry
from finsync.stack.process import StackError

PARTS = (("postgres", postgres), ("registry", registry), ("kafka", kafka))


def up(settings: Settings, say: Callable[[str], None] = print) -> None:
    for _, part in PARTS:  # the registry stores its schemas in PostgreSQL, so order matters
        part.start(settings, say)
    applied = db.migrate(settings)
    if applied:
        say(f"applied migrations: {', '.join(applied)}")
    provision.create_topics(settings, say)
    problems = provision.check_and_register(registry_client(settings))
    if problems:
        raise StackError(
            "schemas not registered:\n" + "\n".join(f"  {p.subject}: {p.reason}" for p in problems)
        )


def down(settings: Settings) -> None:
    for _, part in reversed(PARTS):
        part.stop(settings)


def status(settings: Settings) -> list[tuple[str, bool, str]]:
    return [(name, *part.status(settings)) for name, part in PARTS]

"""The outbox keeps each message exactly as the handler made it, in the batch's order: keys,
values and header values of any bytes or none, header names of any text."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from finsync.runtime import outbox
from finsync.runtime.messages import Outgoing
from finsync.settings import Settings
from tests.support import rolled_back

pytestmark = pytest.mark.integration

SERVICE = "test-outbox-write"


@pytest.fixture
def conn(settings: Settings) -> Iterator[psycopg.Connection]:
    with rolled_back(settings) as conn:
        yield conn


def kept(conn: psycopg.Connection, ids: list[int] | None = None) -> list[Outgoing]:
    rows = conn.execute(
        "SELECT id, topic, key, value, header_keys, header_values FROM finsync.outbox "
        "WHERE service = %s ORDER BY id",
        (SERVICE,),
    ).fetchall()
    if ids is not None:
        assert [r[0] for r in rows] == ids
    return [Outgoing(t, k, v, list(zip(hk, hv, strict=True))) for _, t, k, v, hk, hv in rows]


MESSAGES = [
    Outgoing("erp.invoice-posted", b"INV-1", b"\x00\x02avro\xff", [("traceparent", b"00-ab-01")]),
    Outgoing("erp.invoice-posted", None, None, []),  # keyless, and a tombstone
    Outgoing(
        "test.dlq",
        "clé".encode(),
        bytes(range(256)) * 40,
        [("reason", "Wert über 100 €".encode()), ("empty", b""), ("none", None), ("reason", b"2")],
    ),
]


def test_messages_are_kept_byte_for_byte_in_order(conn: psycopg.Connection) -> None:
    assert outbox.add(conn, SERVICE, MESSAGES) == []
    assert kept(conn) == MESSAGES


def test_the_ids_come_back_in_the_order_of_the_messages(conn: psycopg.Connection) -> None:
    many = [Outgoing("t", str(i).encode(), b"v", []) for i in range(300)] + MESSAGES
    ids = outbox.add(conn, SERVICE, many, returning=True)
    assert len(ids) == len(many)
    assert kept(conn, ids) == many

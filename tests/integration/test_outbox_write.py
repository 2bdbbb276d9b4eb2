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
    """The service's messages as the relay reads them."""
    waiting = outbox.pending(conn, SERVICE, 10_000)
    if ids is not None:
        assert [p.id for p in waiting] == ids
    return [p.message for p in waiting]


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


def test_a_batch_larger_than_one_document_goes_in_several_in_order(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 600 dead letters of a megabyte would pass jsonb's 256 MB: here the same split, smaller.
    monkeypatch.setattr(outbox, "CHUNK_BYTES", 10_000)
    many = [Outgoing("t", str(i).encode(), bytes([i % 256]) * 3_000, []) for i in range(25)]
    ids = outbox.add(conn, SERVICE, many, returning=True)
    assert kept(conn, ids) == many
    assert outbox.add(conn, SERVICE, many[:7]) == []
    assert kept(conn)[25:] == many[:7]


def test_a_batch_of_large_messages_is_kept_whole(conn: psycopg.Connection) -> None:
    big = [Outgoing("t", b"k", bytes([i]) * 8_000_000, [("h", b"v")]) for i in range(6)]
    ids = outbox.add(conn, SERVICE, big, returning=True)
    assert len(ids) == 6
    sizes = conn.execute(
        "SELECT length(value), get_byte(value, 0) FROM finsync.outbox WHERE service = %s "
        "ORDER BY id",
        (SERVICE,),
    ).fetchall()
    assert sizes == [(8_000_000, i) for i in range(6)]

"""A few database connections kept open between requests, so a page costs its queries and not
a new connection each time. A connection that broke (the database restarted) is dropped and
the next request opens a fresh one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.pq import TransactionStatus

from finsync.runtime import db
from finsync.settings import Settings

_CHECK_AFTER_SECONDS = 10.0  # a connection idle this long is pinged before it is lent out


class Pool:
    def __init__(self, settings: Settings, size: int = 4) -> None:
        self.settings = settings
        self.size = size
        self._idle: list[tuple[psycopg.Connection, float]] = []
        self._lock = threading.Lock()

    def _take(self) -> psycopg.Connection | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn, since = self._idle.pop()
            if conn.closed or conn.broken:
                continue
            if time.monotonic() - since < _CHECK_AFTER_SECONDS:
                return conn
            try:
                conn.execute("SELECT 1")
                conn.rollback()
                return conn
            except psycopg.Error:
                conn.close()

    def _give_back(self, conn: psycopg.Connection) -> None:
        if conn.closed or conn.broken or conn.info.transaction_status != TransactionStatus.IDLE:
            conn.close()
            return
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A connection for one request. What the request left uncommitted is rolled back:
        a handler that changes something commits before it answers."""
        conn = self._take() or db.connect(self.settings)
        try:
            yield conn
        except BaseException:
            if conn.broken:
                conn.close()
            else:
                _rollback(conn)
            raise
        else:
            _rollback(conn)
        finally:
            if not conn.closed:
                self._give_back(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()


def _rollback(conn: psycopg.Connection) -> None:
    try:
        conn.rollback()
    except psycopg.Error:
        conn.close()

"""What the console's integration tests share: an app on the real stack, users, signing in,
and dead letters indexed the way a service indexes them."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from finsync.console import users
from finsync.console.app import create_app
from finsync.errors import InvalidEvent
from finsync.runtime import db, dead_letter_index, failures
from finsync.runtime.messages import Record
from finsync.settings import Settings
from tests.support import eventually, scalar

SERVICE = "invoice-poster"
PASSWORD = "correct horse battery staple"
MakeUser = Callable[[str], str]  # a role -> a new user of it


@pytest.fixture(scope="module")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def make_user(settings: Settings) -> Iterator[MakeUser]:
    made: list[str] = []

    def make(role: str) -> str:
        name = f"{role}-{uuid.uuid4().hex[:8]}"
        with db.connect(settings) as conn:
            users.add(conn, name, PASSWORD, role)
        made.append(name)
        return name

    yield make
    with db.connect(settings) as conn:
        for name in made:
            conn.execute("DELETE FROM finsync.console_users WHERE username = %s", (name,))


def login(client: TestClient, name: str, password: str = PASSWORD) -> TestClient:
    page = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token, page.text
    r = client.post(
        "/login",
        data={"username": name, "password": password, "login_token": token[1], "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return client


def csrf_of(client: TestClient) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/audit").text)
    assert found
    return found[1]


def index_letter(
    settings: Settings,
    key: str,
    reason: str = "bad invoice",
    value: bytes = b"not avro",
    error: type[Exception] = InvalidEvent,
    headers: list[tuple[str, bytes | None]] | None = None,
) -> int:
    """A dead letter in the index the way a service writes it: the outbox message and its
    index row, in one transaction."""
    original = Record("billing.invoice-issued", 0, 7, 0, key.encode(), value, headers or [])
    letter = failures.dead_letter(
        original,
        error(reason),
        service=SERVICE,
        stage="TASK_PUT",
        now_ms=int(time.time() * 1000),
        trace_id=uuid.uuid4().hex,
    )
    with db.connect(settings) as conn:
        dead_letter_index.publish(conn, SERVICE, [letter])
        row = conn.execute(
            "SELECT max(id) FROM finsync.dead_letters WHERE message_key = %s", (key,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def page_once(client: TestClient, url: str, marker: str, what: str, timeout: float = 30) -> str:
    """The page at `url`, once it shows `marker`."""

    def fetch() -> str | None:
        text = client.get(url).text
        return text if marker in text else None

    return eventually(fetch, timeout, what)


def status_of(settings: Settings, letter: int) -> object:
    return scalar(settings, "SELECT status FROM finsync.dead_letters WHERE id = %s", letter)

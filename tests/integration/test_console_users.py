"""`finsync console user ...`: passwords only from a prompt or stdin, hashed with argon2id,
and a user removed or given a new password loses their sessions."""

from __future__ import annotations

import io
import uuid

import pytest

from finsync.cli.main import main
from finsync.console import auth, sessions
from finsync.runtime import db
from finsync.settings import Settings
from tests.support import scalar

pytestmark = pytest.mark.integration


def run(monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(list(argv))


def test_users_are_added_listed_changed_and_removed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    add = ("console", "user", "add", name, "--role", "operator", "--password-stdin")
    assert run(monkeypatch, *add, stdin="too short\n") == 1
    assert "at least 12 characters" in capsys.readouterr().out
    assert run(monkeypatch, *add, stdin="a long enough secret\n") == 0
    assert run(monkeypatch, *add, stdin="a long enough secret\n") == 1
    assert "exists already" in capsys.readouterr().out
    stored = scalar(
        settings, "SELECT password_hash FROM finsync.console_users WHERE username = %s", name
    )
    assert isinstance(stored, str) and stored.startswith("$argon2id$")
    assert "a long enough secret" not in stored

    assert run(monkeypatch, "console", "user", "list") == 0
    assert name in capsys.readouterr().out

    with db.connect(settings) as conn:
        assert auth.authenticate(conn, name, "a long enough secret") == "operator"
        token = sessions.create(conn, name)
    passwd = ("console", "user", "passwd", name, "--password-stdin")
    assert run(monkeypatch, *passwd, stdin="another long secret\n") == 0
    with db.connect(settings) as conn:
        assert sessions.lookup(conn, token) is None  # a new password ends the sessions
        assert auth.authenticate(conn, name, "a long enough secret") is None
        assert auth.authenticate(conn, name, "another long secret") == "operator"

    assert run(monkeypatch, "console", "user", "role", name, "viewer") == 0
    assert run(monkeypatch, "console", "user", "disable", name) == 0
    with db.connect(settings) as conn:
        assert auth.authenticate(conn, name, "another long secret") is None
    assert run(monkeypatch, "console", "user", "enable", name) == 0
    with db.connect(settings) as conn:
        assert auth.authenticate(conn, name, "another long secret") == "viewer"

    assert run(monkeypatch, "console", "user", "remove", name) == 0
    assert run(monkeypatch, "console", "user", "remove", name) == 1
    assert "no user" in capsys.readouterr().out

"""The ops console's doors, over HTTP against the real PostgreSQL: every page needs a sign-in,
sign-ins are throttled and say nothing about who exists, sessions end, every POST needs the
session's CSRF token, viewers cannot act, and a database that is down is a clear 503."""

from __future__ import annotations

import html
import re
import uuid
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from finsync.console import auth
from finsync.console.app import create_app
from finsync.runtime import db
from finsync.settings import Settings
from tests.integration.console_support import (
    PASSWORD,
    MakeUser,
    app,
    client,
    csrf_of,
    index_letter,
    login,
    make_user,
    status_of,
)
from tests.support import scalar

pytestmark = pytest.mark.integration
__all__ = ["app", "client", "make_user"]  # fixtures


def test_every_page_needs_a_sign_in_but_metrics_and_health_do_not(client: TestClient) -> None:
    for path in ("/", "/exceptions?key=x", "/exceptions/1", "/lineage", "/reconciliation",
                 "/asyncapi", "/audit"):  # fmt: skip
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next="), path
    fragment = client.get("/overview/live", headers={"HX-Request": "true"})
    assert fragment.status_code == 401 and fragment.headers["HX-Redirect"].startswith("/login")
    action = client.post("/exceptions/bulk", data={"action": "resolve"}, follow_redirects=False)
    assert action.status_code == 303 and action.headers["location"].startswith("/login")

    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "finsync_console_request_duration_seconds" in metrics.text
    assert client.get("/healthz").json() == {"status": "ok", "database": "up"}

    page = client.get("/login")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_a_wrong_password_gets_the_same_answer_as_a_stranger_and_five_lock_the_user(
    client: TestClient, make_user: MakeUser, settings: Settings
) -> None:
    name = make_user("viewer")
    answers = []
    for who, password in [(f"nobody-{uuid.uuid4().hex[:6]}", PASSWORD)] + [(name, "wrong")] * 5:
        token = re.search(r'name="login_token" value="([^"]+)"', client.get("/login").text)
        assert token
        r = client.post(
            "/login",
            data={"username": who, "password": password, "login_token": token[1]},
            follow_redirects=False,
        )
        answers.append((r.status_code, html.unescape(r.text).count(auth.FAILED)))
    assert answers == [(401, 1)] * 6
    assert "finsync_session" not in client.cookies
    # Locked: the right password is refused too, with the same words, for a minute.
    token = re.search(r'name="login_token" value="([^"]+)"', client.get("/login").text)
    assert token
    r = client.post(
        "/login", data={"username": name, "password": PASSWORD, "login_token": token[1]}
    )
    assert r.status_code == 401 and auth.FAILED in html.unescape(r.text)
    with db.connect(settings) as conn:
        conn.execute(
            "UPDATE finsync.console_users SET locked_until = now() - interval '1 s' "
            "WHERE username = %s",
            (name,),
        )
    login(client, name)
    assert client.get("/").status_code == 200
    last = scalar(
        settings, "SELECT last_login FROM finsync.console_users WHERE username = %s", name
    )
    assert last is not None


def test_sign_in_needs_its_form_and_sign_out_ends_the_session(
    client: TestClient, make_user: MakeUser, settings: Settings
) -> None:
    name = make_user("viewer")
    forged = client.post("/login", data={"username": name, "password": PASSWORD})
    assert forged.status_code == 403

    login(client, name)
    cookie = client.cookies["finsync_session"]
    stored = scalar(
        settings, "SELECT count(*) FROM finsync.console_sessions WHERE username = %s", name
    )
    assert stored == 1
    assert (
        scalar(
            settings,
            "SELECT count(*) FROM finsync.console_sessions WHERE token_sha256 = %s::bytea",
            cookie.encode(),
        )
        == 0
    ), "the token itself is never stored"
    page = client.get("/")
    assert f'data-testid="nav-user">{name}<' in page.text
    assert client.post("/logout").status_code == 403  # no CSRF token
    r = client.post("/logout", data={"csrf_token": csrf_of(client)}, follow_redirects=False)
    assert r.status_code == 303
    client.cookies.set("finsync_session", cookie)  # the old cookie, replayed
    assert client.get("/", follow_redirects=False).status_code == 303

    login(client, name)
    with db.connect(settings) as conn:  # idle for nine hours
        conn.execute(
            "UPDATE finsync.console_sessions SET last_seen = now() - interval '9 hours' "
            "WHERE username = %s",
            (name,),
        )
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_post_without_the_session_csrf_token_is_refused(
    client: TestClient, make_user: MakeUser, settings: Settings
) -> None:
    login(client, make_user("operator"))
    key = f"CSRF-{uuid.uuid4().hex[:10]}"
    letters = [index_letter(settings, key), index_letter(settings, key)]
    form = {"action": "resolve", "ids": letters, "note": "fixed by hand"}
    for headers, extra in (({}, {}), ({}, {"csrf_token": "forged"}), ({"X-CSRF-Token": "x"}, {})):
        r = client.post("/exceptions/bulk", data={**form, **extra}, headers=headers)
        assert r.status_code == 403
    assert [status_of(settings, i) for i in letters] == ["open", "open"]

    token = csrf_of(client)
    no_note = client.post("/exceptions/bulk", data={**form, "note": " ", "csrf_token": token})
    assert no_note.status_code == 400 and "needs a note" in no_note.text
    r = client.post(
        "/exceptions/bulk",
        data={**form, "back": "/exceptions?key=" + key},
        headers={"X-CSRF-Token": token},  # as htmx sends it
        follow_redirects=False,
    )
    assert r.status_code == 303 and "done=resolve" in r.headers["location"]
    assert [status_of(settings, i) for i in letters] == ["resolved", "resolved"]
    assert "2 dead letter(s) resolved" in client.get(r.headers["location"]).text

    # Without htmx, a dry run is a page of its own; resolved letters are refused by the guard.
    by_filter = {"scope": "filter", "key": key, "status": "resolved", "csrf_token": token}
    preview = client.post("/exceptions/replay/preview", data=by_filter)
    assert preview.status_code == 200 and preview.text.startswith("<!doctype html>")
    assert 'data-testid="dry-run-count">0<' in preview.text
    assert preview.text.count("resolved already") == 2


def test_a_viewer_sees_a_dead_letter_but_cannot_replay_or_resolve_it(
    client: TestClient, make_user: MakeUser, settings: Settings
) -> None:
    name = make_user("viewer")
    login(client, name)
    letter = index_letter(settings, f"VIEW-{uuid.uuid4().hex[:10]}")
    page = client.get(f"/exceptions/{letter}")
    assert page.status_code == 200
    assert 'data-testid="status-badge">open<' in page.text
    assert 'data-testid="replay-dry-run"' not in page.text
    assert 'data-testid="resolve-form"' not in page.text
    assert 'data-testid="bulk-form"' not in client.get("/exceptions").text
    token = csrf_of(client)
    for path, form in (
        ("/exceptions/replay/preview", {"ids": [letter]}),
        ("/exceptions/replay", {"ids": [letter], "reason": "try"}),
        ("/exceptions/bulk", {"ids": [letter], "action": "resolve", "note": "n"}),
        ("/exceptions/bulk", {"ids": [letter], "action": "assign", "assignee": name}),
    ):
        r = client.post(path, data={**form, "csrf_token": token})
        assert r.status_code == 403, path
        assert "Only operators" in r.text
    assert status_of(settings, letter) == "open"
    assert scalar(settings, "SELECT count(*) FROM finsync.ops_audit WHERE actor = %s", name) == 0


def test_a_database_that_is_down_is_a_clear_503_not_a_trace(settings: Settings) -> None:
    down = replace(settings, database_url="postgresql://finsync:finsync@127.0.0.1:1/finsync")
    with TestClient(create_app(down)) as client:
        assert client.get("/login").status_code == 200  # the form needs no database
        assert client.get("/healthz").json() == {"status": "ok", "database": "down"}
        client.cookies.set("finsync_session", "whatever")
        r = client.get("/exceptions")
        assert r.status_code == 503
        assert "Database unavailable" in r.text and "Traceback" not in r.text
        assert "finsync:finsync" not in r.text
        assert r.headers["Retry-After"] == "5"
        live = client.get("/overview/live", headers={"HX-Request": "true"})
        assert live.status_code == 503 and "<html" not in live.text  # a fragment, for the poll

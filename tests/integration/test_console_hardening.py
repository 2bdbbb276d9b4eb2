"""The console's answers to hostile or careless requests: NUL bytes are a 400, huge bodies a
413, metric labels stay a fixed set, sessions end on time and on a new sign-in, sign-out deletes
the cookie it set, an action without a session signs in to the home page, replays are capped
and can be cancelled."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from finsync.cli.main import main as finsync
from finsync.console import auth, replays
from finsync.console.app import create_app
from finsync.runtime import db
from finsync.settings import Settings
from tests.integration.console_support import (
    MakeUser,
    app,
    client,
    csrf_of,
    login,
    make_user,
)
from tests.support import scalar

pytestmark = pytest.mark.integration
__all__ = ["app", "client", "make_user"]  # fixtures


def test_nul_bytes_anywhere_are_a_clear_400(client: TestClient, make_user: MakeUser) -> None:
    page = client.get("/login")
    token = page.text.split('name="login_token" value="')[1].split('"')[0]
    r = client.post("/login", data={"username": "a\x00b", "password": "x", "login_token": token})
    assert r.status_code == 400 and "NUL" in r.text
    name = make_user("operator")
    login(client, name)
    for path, params in (("/exceptions", {"key": "a\x00"}), ("/lineage", {"q": "a\x00"}),
                         ("/audit", {"actor": "a\x00"})):  # fmt: skip
        assert client.get(path, params=params).status_code == 400, path
    csrf = csrf_of(client)
    for data in ({"action": "note", "ids": "1", "note": "a\x00b"},
                 {"action": "assign", "ids": "1", "assignee": "a\x00b"}):  # fmt: skip
        r = client.post("/exceptions/bulk", data={**data, "csrf_token": csrf})
        assert r.status_code == 400, data


def test_bodies_over_64_kib_are_refused_and_methods_are_a_fixed_label_set(
    client: TestClient,
) -> None:
    r = client.post("/login", content=b"x" * (64 * 1024 + 1))
    assert r.status_code == 413 and "64 KiB" in r.text
    client.request("PURGE", "/login")
    client.request("BREW", "/nowhere")
    metrics = client.get("/metrics").text
    assert 'method="other"' in metrics
    assert 'method="PURGE"' not in metrics and 'method="BREW"' not in metrics
    assert "/nowhere" not in metrics


def test_an_action_without_a_session_signs_in_to_the_home_page(client: TestClient) -> None:
    r = client.post("/exceptions/bulk?x=1", data={"action": "resolve"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2F"


def test_sessions_end_after_their_lifetime_and_on_a_new_sign_in(
    client: TestClient, make_user: MakeUser, settings: Settings
) -> None:
    first, second = make_user("viewer"), make_user("viewer")
    login(client, first)
    login(client, second)  # the same browser: the first session ends
    assert (
        scalar(settings, "SELECT count(*) FROM finsync.console_sessions WHERE username = %s", first)
        == 0
    )
    assert client.get("/audit", follow_redirects=False).status_code == 200
    with db.connect(settings) as conn:  # busy all along, but signed in 13 hours ago
        conn.execute(
            "UPDATE finsync.console_sessions SET created_at = now() - interval '13 hours' "
            "WHERE username = %s",
            (second,),
        )
    assert client.get("/audit", follow_redirects=False).status_code == 303


def test_sign_out_deletes_the_secure_cookie_with_the_attributes_it_was_set_with(
    settings: Settings, make_user: MakeUser
) -> None:
    secure = create_app(replace(settings, console_secure_cookies=True))
    with TestClient(secure, base_url="https://testserver") as c:
        name = make_user("viewer")
        login(c, name)
        assert "__Host-finsync_session" in c.cookies
        r = c.post("/logout", data={"csrf_token": csrf_of(c)}, follow_redirects=False)
    deleted = [v for k, v in r.headers.multi_items() if k == "set-cookie"]
    [cookie] = [v for v in deleted if v.startswith("__Host-finsync_session=")]
    assert "Secure" in cookie and "Path=/" in cookie and "Max-Age=0" in cookie


def test_user_unlock_lifts_a_lock(make_user: MakeUser, settings: Settings) -> None:
    name = make_user("viewer")
    with db.connect(settings) as conn:
        for _ in range(auth.MAX_FAILURES):
            assert auth.authenticate(conn, name, "wrong password") is None
        assert auth.authenticate(conn, name, "correct horse battery staple") is None  # locked
    assert finsync(["console", "user", "unlock", name]) == 0
    with db.connect(settings) as conn:
        assert auth.authenticate(conn, name, "correct horse battery staple") == "viewer"
    assert finsync(["console", "user", "unlock", "nobody-at-all"]) == 1


def test_replays_at_once_are_capped_and_a_rate_below_one_is_refused(
    client: TestClient, make_user: MakeUser
) -> None:
    login(client, make_user("operator"))
    csrf = csrf_of(client)
    slow = {"csrf_token": csrf, "reason": "r", "scope": "ids", "ids": "1", "rate": "0.5"}
    assert client.post("/exceptions/replay", data=slow).status_code == 400
    jobs: replays.Jobs = client.app.state.replays  # type: ignore[attr-defined]
    with jobs._lock:  # two replays under way (as if started a moment ago)
        for i in range(replays.RUNNING):
            jobs._jobs[f"busy-{i}"] = replays.Job(f"busy-{i}", "x", "r", 1)
    try:
        r = client.post("/exceptions/replay", data={**slow, "rate": "5"})
        assert r.status_code == 429 and "under way already" in r.text
        r = client.post("/replays/busy-0/cancel", data={"csrf_token": csrf})
        assert r.status_code == 200 and jobs._jobs["busy-0"].cancelled_by is not None
    finally:
        with jobs._lock:
            for i in range(replays.RUNNING):
                jobs._jobs.pop(f"busy-{i}")

"""The ops console's pages over HTTP (FastAPI's TestClient) against the real PostgreSQL, Kafka
and schema registry: replays that reach the retry topic and are audited under the operator's
name, the exception queue over the real dead-letter index, hostile payloads escaped, and the
lineage, AsyncAPI, audit and reconciliation pages."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from finsync.console.pages import exceptions as exception_pages
from finsync.contract.topics import retry_topic
from finsync.errors import InvalidEvent
from finsync.runtime import db
from finsync.runtime import headers as h
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from tests.integration.console_support import (
    SERVICE,
    MakeUser,
    app,
    client,
    csrf_of,
    index_letter,
    login,
    make_user,
    page_once,
    status_of,
)
from tests.support import TopicTail, crm_account, eventually, scalar

pytestmark = pytest.mark.integration
__all__ = ["app", "client", "make_user"]  # fixtures


def test_an_operator_replays_a_dead_letter_dry_run_first_then_for_real(
    client: TestClient, make_user: MakeUser, settings: Settings
) -> None:
    name = make_user("operator")
    login(client, name)
    key = f"REPLAY-{uuid.uuid4().hex[:10]}"
    letter = index_letter(settings, key)
    token = csrf_of(client)
    detail = client.get(f"/exceptions/{letter}").text
    assert 'data-testid="replay-dry-run"' in detail

    dry = client.post(
        "/exceptions/replay/preview",
        data={"ids": [letter], "scope": "ids"},
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert dry.status_code == 200
    assert dry.text.lstrip().startswith('<section class="card" data-testid="dry-run-result">')
    assert 'data-testid="dry-run-count">1<' in dry.text
    assert status_of(settings, letter) == "open"  # a dry run sends nothing
    audited = "SELECT action, detail->>'reason' FROM finsync.ops_audit WHERE actor = %s "
    assert scalar(settings, audited + "ORDER BY id DESC", name) == "replay-dry-run"

    reasonless = client.post(
        "/exceptions/replay", data={"ids": [letter], "reason": " ", "csrf_token": token}
    )
    assert reasonless.status_code == 400 and "needs a reason" in reasonless.text

    retried = TopicTail(settings, retry_topic(SERVICE))
    try:
        r = client.post(
            "/exceptions/replay",
            data={"ids": [letter], "reason": "fixed", "unthrottled": "true", "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"].startswith("/replays/")
        job = r.headers["location"]
        done = page_once(client, job, 'data-finished="true"', "the replay to finish")
        assert 'data-testid="replay-outcome"' in done and ">replayed<" in done
        [sent] = eventually(
            lambda: [x for x in retried.poll(0.5) if x.key == key.encode()], 30, "the retry"
        )
    finally:
        retried.close()
    assert sent.header_text(h.REPLAY_DEAD_LETTER) == str(letter)
    assert status_of(settings, letter) == "replayed"
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT action, detail->>'reason' FROM finsync.ops_audit "
            "WHERE actor = %s AND target = %s ORDER BY id",
            (name, f"dead-letter:{letter}"),
        ).fetchall()
    assert rows == [("replay", "fixed")]  # the dry run is one row for the replay
    history = client.get(f"/exceptions/{letter}").text
    assert 'data-testid="status-badge">replayed<' in history and "fixed" in history
    audit_page = client.get("/audit", params={"actor": name}).text
    # The dry run's summary, the replay's summary, the letter's replay.
    assert audit_page.count('data-testid="audit-row"') == 3


def test_the_queue_filters_counts_groups_and_pages_newest_first(
    client: TestClient,
    make_user: MakeUser,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    login(client, make_user("viewer"))
    error = type(f"Err{uuid.uuid4().hex[:10]}", (InvalidEvent,), {})
    keys = [f"FILTER-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    made = [index_letter(settings, keys[0], error=error) for _ in range(5)]
    made += [index_letter(settings, keys[1], error=error) for _ in range(2)]
    monkeypatch.setattr(exception_pages, "PAGE", 3)
    monkeypatch.setattr(exception_pages, "COUNT_CAP", 5)

    def ids(page: str) -> list[int]:
        return [
            int(x) for x in re.findall(r'data-testid="letter-row" data-letter-id="(\d+)"', page)
        ]

    first = client.get("/exceptions", params={"error": error.__name__.lower()})
    assert 'data-testid="exceptions-count">5+ dead letters match' in first.text
    assert ids(first.text) == made[::-1][:3]
    older = re.search(r'href="(/exceptions\?[^"]+)"[^>]*data-testid="page-older"', first.text)
    assert older
    second = client.get(html.unescape(older[1]))
    assert ids(second.text) == made[::-1][3:6]
    third_link = re.search(r'href="(/exceptions\?[^"]+)"[^>]*data-testid="page-older"', second.text)
    assert third_link
    third = client.get(html.unescape(third_link[1]))
    assert ids(third.text) == made[:1] and 'data-testid="page-older"' not in third.text

    by_key = client.get("/exceptions", params={"error": error.__name__, "key": keys[1]})
    assert ids(by_key.text) == made[:4:-1]
    assert 'data-testid="exceptions-count">2 dead letters match' in by_key.text
    groups = client.get("/exceptions", params={"error": error.__name__, "view": "groups"}).text
    assert groups.count('data-testid="group-row"') == 2
    resolved = client.get("/exceptions", params={"error": error.__name__, "status": "resolved"})
    assert ids(resolved.text) == []
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (
        ids(client.get("/exceptions", params={"error": error.__name__, "since": later}).text) == []
    )
    bad = client.get("/exceptions", params={"since": "last tuesday"})
    assert bad.status_code == 400 and "since is not a date" in bad.text


def test_a_hostile_dead_letter_is_shown_escaped_and_clipped(
    client: TestClient, make_user: MakeUser, settings: Settings, serde: Serde
) -> None:
    login(client, make_user("operator"))
    key = f"<script>alert('k')</script>-{uuid.uuid4().hex[:8]}"
    account = crm_account(key, 1, "<script>alert('name')</script>\x00 Ltd")
    letter = index_letter(
        settings,
        key,
        reason="<img src=x onerror=alert(1)>" + "A" * 50_000,
        value=serde.encode(account),
        headers=[("x-evil", b"<script>alert('h')</script>")],
    )
    listing = client.get("/exceptions", params={"key": key}).text
    detail = client.get(f"/exceptions/{letter}").text
    for page in (listing, detail):
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "\x00" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in listing
    assert "more characters)" in listing  # a 50,000-character reason is clipped in the list
    assert len(listing) < 40_000
    assert 'data-testid="payload"' in detail  # decoded through the registry
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in detail
    assert "&lt;script&gt;alert(&#39;h&#39;)&lt;/script&gt;" in detail


def test_lineage_asyncapi_and_audit_pages_render(
    client: TestClient, make_user: MakeUser, settings: Settings
) -> None:
    login(client, make_user("viewer"))
    invoice = f"INV-CONSOLE-{uuid.uuid4().hex[:8]}"
    letter = index_letter(settings, invoice, reason="lines do not add up")
    page = client.get("/lineage", params={"q": invoice}).text
    assert 'data-testid="lineage-hop" data-kind="invoice"' in page
    assert f'href="/exceptions/{letter}" data-testid="hop-dead-letter"' in page
    unknown = client.get("/lineage", params={"q": f"NOPE-{uuid.uuid4().hex}"}).text
    assert 'data-testid="lineage-unknown"' in unknown

    doc = client.get("/asyncapi").text
    assert 'data-channel="crm.account-upserted"' in doc
    assert 'data-channel="invoice-poster.dlq"' in doc
    assert "__connect.errors.exception.class.name" in doc
    assert ">payment-settler</td>" in doc  # a consumer group

    assert client.get("/audit", params={"target": f"dead-letter:{letter}"}).status_code == 200


def test_reconciliation_runs_on_request_and_keeps_its_result(
    client: TestClient, make_user: MakeUser
) -> None:
    name = make_user("viewer")
    login(client, name)
    assert 'data-testid="reconcile-result"' not in client.get("/reconciliation").text
    soon = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    r = client.post(
        "/reconciliation/run",
        data={"since": soon, "entity": "NO-SUCH-ENTITY", "csrf_token": csrf_of(client)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = page_once(
        client, "/reconciliation", 'data-testid="reconcile-result"', "the reconciliation", 120
    )
    assert 'data-testid="reconcile-status"' not in page
    assert 'data-testid="reconcile-result"' in page and f"by {name}" in page
    assert 'data-testid="reconcile-checks"' in page, page
    check = re.search(r'data-testid="check-([a-z0-9-]+)"', page)
    assert check
    assert client.get("/reconciliation", params={"check": check[1]}).status_code == 200
    assert client.get("/reconciliation", params={"check": "no-such-check"}).status_code == 404
    assert client.get("/reconciliation.json").json()["by"] == name

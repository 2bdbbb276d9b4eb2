"""The console's KPI page over HTTP against the real PostgreSQL, with no finance-analytics app
where the console looks for one: it answers for signed-in users only, says plainly what to
run instead of failing, and takes only the periods it offers. (With the app running, in a
browser: tests/e2e/test_console_kpis.py.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from finsync.console.app import create_app
from finsync.settings import Settings
from tests.integration.console_support import MakeUser, login, make_user
from tests.support import free_port

pytestmark = pytest.mark.integration
__all__ = ["make_user"]  # fixtures


@pytest.fixture(scope="module")
def app(settings: Settings) -> FastAPI:
    return create_app(replace(settings, analytics_port=free_port()))  # nothing listens there


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as c:
        yield c


def test_without_the_app_the_page_says_what_to_run(client: TestClient, make_user: MakeUser) -> None:
    anonymous = client.get("/kpis", follow_redirects=False)
    assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"]

    login(client, make_user("viewer"))
    started = time.monotonic()
    page = client.get("/kpis")
    assert time.monotonic() - started < 2.5  # refused at once, never a hung page
    assert page.status_code == 200
    assert 'data-testid="kpis-unavailable"' in page.text
    assert "finance-analytics is not running" in page.text
    assert "finsync run finance-analytics" in page.text
    assert 'href="/kpis" class="active"' in page.text  # in the nav

    assert client.get("/kpis?days=7").status_code == 400
    assert client.get("/kpis?days=lots").status_code == 400

"""Fixtures of the port contract tests: each port, once per adapter listed in port_support.

Every test runs in one transaction that is rolled back at the end, so it leaves no data;
ids are unique anyway, so nothing the other users of the stack write can match them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from finsync.ports.billing import Billing
from finsync.ports.crossref import CrossReference
from finsync.ports.erp import Erp
from finsync.runtime import db
from finsync.settings import Settings
from tests.integration.port_support import (
    BILLINGS,
    CROSSREFS,
    ERPS,
    Adapter,
    BillingProbe,
    ErpProbe,
)


@pytest.fixture
def conn(settings: Settings) -> Iterator[psycopg.Connection]:
    """A connection inside a transaction that is always rolled back."""
    with db.connect(settings) as connection, connection.transaction():
        # The stack is shared: wait for nobody's locks for long.
        connection.execute("SET LOCAL lock_timeout = '20s'")
        yield connection
        raise psycopg.Rollback


@pytest.fixture(params=ERPS, ids=lambda a: a.name)
def erp_adapter(request: pytest.FixtureRequest) -> Adapter[Erp, ErpProbe]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def erp(erp_adapter: Adapter[Erp, ErpProbe], conn: psycopg.Connection) -> Erp:
    return erp_adapter.make(conn)


@pytest.fixture
def erp_probe(erp_adapter: Adapter[Erp, ErpProbe], conn: psycopg.Connection) -> ErpProbe:
    return erp_adapter.probe(conn)


@pytest.fixture
def fresh_erp(erp_adapter: Adapter[Erp, ErpProbe], conn: psycopg.Connection) -> Callable[[], Erp]:
    """A new unit of work on the same transaction, as the runtime makes after a failure."""
    return lambda: erp_adapter.make(conn)


@pytest.fixture(params=BILLINGS, ids=lambda a: a.name)
def billing_adapter(request: pytest.FixtureRequest) -> Adapter[Billing, BillingProbe]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def billing(billing_adapter: Adapter[Billing, BillingProbe], conn: psycopg.Connection) -> Billing:
    return billing_adapter.make(conn)


@pytest.fixture
def billing_probe(
    billing_adapter: Adapter[Billing, BillingProbe], conn: psycopg.Connection
) -> BillingProbe:
    return billing_adapter.probe(conn)


@pytest.fixture(params=CROSSREFS, ids=lambda a: a.name)
def crossref(request: pytest.FixtureRequest, conn: psycopg.Connection) -> CrossReference:
    adapter: Adapter[CrossReference, None] = request.param
    return adapter.make(conn)

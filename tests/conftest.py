from __future__ import annotations

import os
import random
import uuid

import pytest

from finsync.runtime.serde import Serde, registry_client
from finsync.settings import Settings

# Tests write to a database of their own (the stack creates it), so the books a user or
# `make demo` keeps in `finsync` never hold test data; services the tests start inherit it.
if "FINSYNC_DATABASE_URL" not in os.environ:
    _base = Settings.from_env().database_url.rsplit("/", 1)[0]
    os.environ["FINSYNC_DATABASE_URL"] = f"{_base}/finsync_test"


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The running local stack (`make up`); brought up here if it is not running."""
    from finsync import stack

    s = Settings.from_env()
    stack.up(s, say=lambda _: None)
    return s


@pytest.fixture(scope="session")
def serde(settings: Settings) -> Serde:
    return Serde(registry_client(settings))


@pytest.fixture
def rng() -> random.Random:
    """Random test documents, different on every run."""
    return random.Random(uuid.uuid4().int)

from __future__ import annotations

import random
import uuid

import pytest

from finsync.runtime.serde import Serde, registry_client
from finsync.settings import Settings


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

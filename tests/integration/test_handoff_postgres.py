"""Atomic assignment and the full hand-off path on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.servers import scratch_database
from tests.unit.test_handoff import _race

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with scratch_database("parley_test") as url:
        yield url


def test_twenty_agents_race_for_fifty_chats_postgres(postgres_url: str) -> None:
    claims = asyncio.run(_race(postgres_url))
    assert len(claims) == 50 and all(len(agents) == 1 for agents in claims.values())

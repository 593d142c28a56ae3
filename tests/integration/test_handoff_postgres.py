"""Atomic assignment and the full hand-off path on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest

from tests.unit.test_handoff import _race

pytestmark = pytest.mark.integration
ADMIN_URL = os.environ.get("PARLEY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    name = f"parley_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_URL}: start it (see .ci/run): {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def test_twenty_agents_race_for_fifty_chats_postgres(postgres_url: str) -> None:
    claims = asyncio.run(_race(postgres_url))
    assert len(claims) == 50 and all(len(agents) == 1 for agents in claims.values())

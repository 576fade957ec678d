"""Fixtures for the PostgreSQL feed tests: a real server, one fresh table per test.

The server is `SYNCENGINE_TEST_PG_DSN` (default: user postgres, trust auth,
database `test` on 127.0.0.1:5432, which `.ci/run` provides). When it cannot
be reached the tests are skipped with the reason, unless `CI` is set: CI must
run them, so there they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

DSN = os.environ.get("SYNCENGINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def with_query(dsn: str, query: str) -> str:
    """`dsn` with `query` (`key=value`) added to its query string."""
    return f"{dsn}{'&' if '?' in dsn else '?'}{query}"


@pytest.fixture
async def pg() -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database; skips (or fails under CI) when it is unreachable."""
    try:
        connection = await asyncpg.connect(DSN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL test server unreachable at {DSN}: {type(exc).__name__}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so the PostgreSQL tests must run)")
        pytest.skip(reason)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def table(pg: asyncpg.Connection) -> AsyncIterator[str]:
    """A unique table name (not yet created) that is dropped after the test."""
    name = f"feed_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        await pg.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')


@pytest.fixture
def unique() -> str:
    """A short unique suffix for names the test creates (channels, application names)."""
    return uuid.uuid4().hex[:12]

"""The journal's two backends for tests: an SQLite file, or a fresh PostgreSQL schema.

`journal_target` is what `Journal.open` takes: a path, or a `[journal]`
table naming a schema unique to the test (dropped after it). The PostgreSQL
case skips with the reason when the server is unreachable, unless `CI` is
set (CI must run it, so there it fails).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from syncengine.config import JournalConfig

DSN = os.environ.get("SYNCENGINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

BACKENDS = ("sqlite", "postgres")


async def admin_connection() -> asyncpg.Connection:
    """A connection to the test database; skips (or fails under CI) when it is unreachable."""
    try:
        connection: asyncpg.Connection = await asyncpg.connect(DSN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL test server unreachable at {DSN}: {type(exc).__name__}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so the PostgreSQL tests must run)")
        pytest.skip(reason)
    return connection


def unique_schema() -> str:
    """A schema name no other test (or helper) uses."""
    return f"pgj_{uuid.uuid4().hex[:12]}"


async def drop_schema(connection: asyncpg.Connection, schema: str) -> None:
    await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
async def pg_journal_config(tmp_path: Path) -> AsyncIterator[JournalConfig]:
    """A `[journal]` table naming a fresh PostgreSQL schema, dropped after the test."""
    connection = await admin_connection()
    schema = unique_schema()
    try:
        yield JournalConfig(path=tmp_path / "unused.db", url=DSN, schema=schema)
    finally:
        await drop_schema(connection, schema)
        await connection.close()


@pytest.fixture(params=BACKENDS)
async def journal_target(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Path | JournalConfig]:
    """What `Journal.open` takes, for each backend in turn."""
    if request.param == "sqlite":
        yield tmp_path / "j.db"
        return
    connection = await admin_connection()
    schema = unique_schema()
    try:
        yield JournalConfig(path=tmp_path / "unused.db", url=DSN, schema=schema)
    finally:
        await drop_schema(connection, schema)
        await connection.close()

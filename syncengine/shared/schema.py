"""The shared tables, created on first use by whichever process comes first.

Two processes starting together would race on `CREATE ... IF NOT EXISTS`
(both see no table, one fails on the catalog's unique index), so creation
runs in one transaction under a fixed advisory lock. Creating needs CREATE
on the database; once the tables exist (made beforehand by a role that may)
the engine's role needs only USAGE on the schema and read/write on them.
Slots need no table: they are advisory locks (`slots`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

#: The advisory lock (single-key form) that serializes schema creation.
SCHEMA_LOCK = 0x5E_5C_4E_4D


def schema_statements(schema: str) -> list[str]:
    """The DDL for `schema` (a validated identifier), idempotent."""
    return [
        f'CREATE SCHEMA IF NOT EXISTS "{schema}"',
        f"""CREATE TABLE IF NOT EXISTS "{schema}".tokens (
            key text PRIMARY KEY,
            access_token text,
            api_domain text,
            expires_at double precision NOT NULL,
            minted_at double precision NOT NULL,
            mint_times double precision[] NOT NULL DEFAULT '{{}}'
        )""",
        f"""CREATE TABLE IF NOT EXISTS "{schema}".org_credits (
            org text PRIMARY KEY,
            remaining bigint NOT NULL,
            reported_at timestamptz NOT NULL,
            reporter text NOT NULL
        )""",
    ]


async def ensure_schema(connection: asyncpg.Connection, schema: str) -> None:
    """Create the shared tables in `schema` unless they exist."""
    present = await connection.fetchval(
        "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
        f'"{schema}".tokens',
        f'"{schema}".org_credits',
    )
    if present:
        return
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        for statement in schema_statements(schema):
            await connection.execute(statement)

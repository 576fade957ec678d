"""Opens the shared limits of a config's org for one pass, and closes them.

Two connections per process: one serves slots, credits and the token row,
one statement at a time (`SerialConnection`); the other only holds the
token's refresh lock, which may be waited for while a mint is under way.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from syncengine.config import Config
from syncengine.shared.connection import SerialConnection, connect
from syncengine.shared.credits import CreditsBoard
from syncengine.shared.keys import org_key
from syncengine.shared.schema import ensure_schema
from syncengine.shared.slots import PostgresSlots
from syncengine.shared.tokens import PostgresTokenStore


@dataclass(frozen=True, slots=True)
class SharedOrg:
    """The org's shared slots, credits board and token store."""

    slots: PostgresSlots
    credits: CreditsBoard
    tokens: PostgresTokenStore


@asynccontextmanager
async def open_shared_org(config: Config) -> AsyncIterator[SharedOrg]:
    """The shared limits named by `[limits] shared`; FatalError when the database fails."""
    dsn, schema = config.limits.shared, config.limits.shared_schema
    assert dsn is not None
    org = org_key(config.crm.client_id, config.crm.api_domain)
    me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        main = SerialConnection(await connect(dsn))
        stack.push_async_callback(main.close)
        lock_connection = await connect(dsn)
        stack.push_async_callback(lock_connection.close)
        await main.run(lambda c: ensure_schema(c, schema))
        slots = PostgresSlots(main, org=org, concurrency=config.limits.concurrency)
        await slots.listen()
        credits = CreditsBoard(main, org=org, schema=schema, me=me)
        stack.push_async_callback(credits.stop)
        tokens = PostgresTokenStore(main, lock_connection, schema=schema)
        yield SharedOrg(slots, credits, tokens)

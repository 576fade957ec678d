"""Connections to a PostgreSQL journal: search path, codecs, keepalive, masked errors.

Every connection to the journal (the session's, the commit worker's, the
bulk jobs') is made here, so each has the schema as its search path and
`jsonb` as Python values, and a failure to connect is one line with the DSN
masked (the password never reaches a log or an error).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from syncengine.config import mask_dsn
from syncengine.errors import FatalError
from syncengine.journal.pg_lock import KEEPALIVE_SETTINGS
from syncengine.journal.pg_schema import init_connection, quoted

if TYPE_CHECKING:
    import asyncpg

#: Opening a connection longer than this is a lost database.
CONNECT_TIMEOUT_S = 10.0


def where(url: str, schema: str) -> str:
    """The journal as messages name it: masked DSN and schema."""
    return f"{mask_dsn(url)} (schema {schema})"


def scrub(text: str, url: str) -> str:
    """`text` with `url` and its password, wherever they appear, masked."""
    text = text.replace(url, mask_dsn(url))
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    for secret in (password, None if password is None else unquote(password)):
        if secret:
            text = text.replace(secret, "***")
    return text


async def connect(url: str, schema: str, *, purpose: str) -> asyncpg.Connection:
    """A connection to the journal in `schema`; FatalError (DSN masked) when none can be made."""
    import asyncpg  # lazily: only a PostgreSQL journal needs the driver

    settings = {
        # Shows who is connected to which journal, in pg_stat_activity.
        "application_name": f"syncengine journal ({purpose}) {schema}"[:63],
        "search_path": quoted(schema),
        **KEEPALIVE_SETTINGS,
    }
    try:
        connection: asyncpg.Connection = await asyncpg.connect(
            url, timeout=CONNECT_TIMEOUT_S, server_settings=settings
        )
        await init_connection(connection)
    except (
        OSError,
        TimeoutError,
        ValueError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as exc:
        detail = scrub(f"{type(exc).__name__}: {exc}", url)
        raise FatalError(f"journal: cannot connect to {mask_dsn(url)}: {detail}"[:400]) from None
    return connection

"""Change feeds: one module per kind, behind the `Source` protocol of `base`.

`open_source` builds the feed a config names; nothing is opened until the
pipeline calls `Source.read` or `Source.follow`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from syncengine.config import Config
from syncengine.model import Checkpoint
from syncengine.sources.base import BATCH_ITEMS, Item, Source
from syncengine.sources.csv_feed import CsvSource
from syncengine.sources.follow import refuse_follow
from syncengine.sources.jsonl import JsonlSource
from syncengine.sources.records import RecordDefaults
from syncengine.sources.sqlite_table import SqliteTableSource

__all__ = [
    "BATCH_ITEMS",
    "Checkpoint",
    "CsvSource",
    "FollowlessCsvSource",
    "Item",
    "JsonlSource",
    "RecordDefaults",
    "Source",
    "SqliteTableSource",
    "open_source",
]


class FollowlessCsvSource(CsvSource):
    """A CSV feed, which the daemon refuses to follow.

    A CSV file is an export, rewritten whole rather than appended to, and its
    header must be read before any row: following one would either resend it
    or misread it. Feed a daemon from JSONL or a table instead.
    """

    def follow(
        self, start: Checkpoint | None, *, poll_interval_s: float
    ) -> AsyncGenerator[list[Item], None]:
        """Raises ConfigError at once: CSV feeds are for `run` and `migrate` only."""
        raise refuse_follow(self.source_id, "CSV feeds are read by run and migrate only; use jsonl")


def open_source(config: Config) -> Source:
    """The feed `config.source` describes, with record defaults from `config.crm`."""
    source = config.source
    defaults = RecordDefaults.from_config(config.crm, key_field=source.key)
    if source.type == "postgres":
        # Imported here: only a PostgreSQL feed needs asyncpg loaded.
        from syncengine.sources.postgres_table import PostgresTableSource

        # The config guarantees dsn, table and cursor for postgres.
        assert source.dsn is not None
        assert source.table is not None
        assert source.cursor is not None
        return PostgresTableSource(
            source.dsn,
            source.table,
            source.cursor,
            defaults,
            channel=source.channel,
            cursor_commit_ordered=source.cursor_commit_ordered,
            exclude_columns=source.exclude_columns,
        )
    # The config guarantees a path for every file and SQLite feed.
    assert source.path is not None
    if source.type == "jsonl":
        return JsonlSource(source.path, defaults, encoding=source.encoding)
    if source.type == "csv":
        return FollowlessCsvSource(
            source.path, defaults, encoding=source.encoding, delimiter=source.csv_delimiter
        )
    assert source.table is not None
    assert source.cursor is not None
    return SqliteTableSource(
        source.path,
        source.table,
        source.cursor,
        defaults,
        exclude_columns=source.exclude_columns,
    )

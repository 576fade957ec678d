"""Change feeds: one module per kind, behind the `Source` protocol of `base`.

`open_source` builds the feed a config names; nothing is opened until the
pipeline calls `Source.read`.
"""

from __future__ import annotations

from syncengine.config import Config
from syncengine.sources.base import BATCH_ITEMS, Checkpoint, Item, Source
from syncengine.sources.csv_feed import CsvSource
from syncengine.sources.jsonl import JsonlSource
from syncengine.sources.records import RecordDefaults
from syncengine.sources.sqlite_table import SqliteTableSource

__all__ = [
    "BATCH_ITEMS",
    "Checkpoint",
    "CsvSource",
    "Item",
    "JsonlSource",
    "RecordDefaults",
    "Source",
    "SqliteTableSource",
    "open_source",
]


def open_source(config: Config) -> Source:
    """The feed `config.source` describes, with record defaults from `config.crm`."""
    source = config.source
    defaults = RecordDefaults.from_config(config.crm)
    if source.type == "jsonl":
        return JsonlSource(source.path, defaults, encoding=source.encoding)
    if source.type == "csv":
        return CsvSource(
            source.path, defaults, encoding=source.encoding, delimiter=source.csv_delimiter
        )
    # The config guarantees table and cursor for sqlite.
    assert source.table is not None
    assert source.cursor is not None
    return SqliteTableSource(source.path, source.table, source.cursor, defaults)

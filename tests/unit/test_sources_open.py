"""Tests for `open_source`, the factory from config to feed."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncengine.config import load_config
from syncengine.keys import position_key
from syncengine.model import Change, Operation
from syncengine.sources import CsvSource, JsonlSource, SqliteTableSource, open_source
from syncengine.sources.postgres_table import PostgresTableSource

CONFIG = """
[source]
type = "{type}"
path = "feed.{type}"
{extra}

[crm]
api_domain = "http://127.0.0.1:8900"
accounts_url = "http://127.0.0.1:8900"
client_id = "c"
client_secret = "s"
refresh_token = "r"
module = "Contacts"
operation = "upsert"
trigger = ["workflow"]
duplicate_check_fields = ["Phone"]
"""


@pytest.mark.parametrize(
    ("kind", "extra", "cls", "prefix"),
    [
        ("jsonl", "", JsonlSource, "jsonl:"),
        ("csv", 'csv_delimiter = ";"', CsvSource, "csv:"),
        ("sqlite", 'table = "t"\ncursor = "seq"', SqliteTableSource, "sqlite:"),
    ],
)
def test_open_source_builds_the_configured_feed(
    tmp_path: Path, kind: str, extra: str, cls: type, prefix: str
) -> None:
    """Each source type maps to its class, with a source id naming the absolute path."""
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(type=kind, extra=extra), encoding="utf-8")
    feed = open_source(load_config(path))
    assert isinstance(feed, cls)
    assert feed.source_id.startswith(f"{prefix}{tmp_path.resolve() / ('feed.' + kind)}")


async def test_opened_source_applies_crm_defaults(tmp_path: Path) -> None:
    """Records of an opened feed take module, operation, trigger and match fields from [crm]."""
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(type="csv", extra='csv_delimiter = ";"'), encoding="utf-8")
    (tmp_path / "feed.csv").write_bytes(b"Phone;Email\n555;a@b.co\n")
    feed = open_source(load_config(path))
    items = [item async for batch in feed.read(None) for item in batch]
    assert isinstance(items[0], Change)
    assert (items[0].module, items[0].operation, items[0].trigger) == (
        "Contacts",
        Operation.UPSERT,
        ("workflow",),
    )
    assert items[0].key == "Contacts:Phone=555"


def test_open_source_builds_a_postgres_feed_without_connecting(tmp_path: Path) -> None:
    """A postgres config maps to PostgresTableSource; its id names host and db, not the password."""
    text = CONFIG.replace(
        'type = "{type}"\npath = "feed.{type}"\n{extra}',
        'type = "postgres"\ndsn = "postgresql://sync:hunter2@db.example:6432/crm"\n'
        'table = "outbox.changes"\ncursor = "seq"\nchannel = "crm_changes"',
    )
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    feed = open_source(load_config(path))
    assert isinstance(feed, PostgresTableSource)
    assert feed.source_id == "postgres:db.example:6432/crm#outbox.changes.seq"
    assert "hunter2" not in repr(feed)


@pytest.mark.parametrize(
    ("kind", "feed_text"),
    [("jsonl", b'{"Last_Name": "Ng"}\n{"Last_Name": "Li"}\n'), ("csv", b"Last_Name\nNg\nLi\n")],
)
async def test_opened_file_feed_keys_its_inserts_by_source_and_line(
    tmp_path: Path, kind: str, feed_text: bytes
) -> None:
    """Inserts come out of a feed keyed by feed, file and line, the key their journal rows have."""
    path = tmp_path / "config.toml"
    text = CONFIG.format(type=kind, extra="").replace('"upsert"', '"insert"')
    path.write_text(text, encoding="utf-8")
    (tmp_path / f"feed.{kind}").write_bytes(feed_text)
    feed = open_source(load_config(path))
    items = [item async for batch in feed.read(None) for item in batch]
    assert all(isinstance(item, Change) for item in items)
    first_line = 1 if kind == "jsonl" else 2
    generation = items[0].positions[0].generation if isinstance(items[0], Change) else None
    assert generation is not None
    assert [item.key for item in items if isinstance(item, Change)] == [
        position_key(feed.source_id, first_line, generation=generation),
        position_key(feed.source_id, first_line + 1, generation=generation),
    ]

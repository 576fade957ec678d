"""`[source] exclude_columns` on a SQLite feed: named columns are read, never sent.

An outbox often carries bookkeeping columns (`created_at`) that are not CRM
fields; without a way to leave them out they would be sent as fields. A name
that is not a column is refused when the feed opens, so a typo cannot leave
the column it meant in every record.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from syncengine.errors import ConfigError
from syncengine.model import BadInput, Change, Operation
from syncengine.sim.server import SimHandle
from syncengine.sources.base import Item
from syncengine.sources.records import RecordDefaults
from syncengine.sources.sqlite_table import SqliteTableSource
from tests.integration.conftest import FIRST_ID, run_cli, seed_leads, sim_leads, write_config

DEFAULTS = RecordDefaults("Leads", Operation.UPDATE, ())


def outbox(path: Path) -> None:
    """An outbox with a bookkeeping timestamp, an override column and a BLOB beside the fields."""
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT,"
            " Company TEXT, created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,"
            " _module TEXT, raw BLOB)"
        )
        db.executemany(
            "INSERT INTO outbox (id, Company, _module, raw) VALUES (?, ?, ?, ?)",
            [(str(FIRST_ID), "Acme", None, b"\x00"), (str(FIRST_ID + 1), "Initech", "Leads", None)],
        )


async def read(source: SqliteTableSource) -> list[Item]:
    return [item async for batch in source.read(None) for item in batch]


async def test_excluded_columns_are_not_in_the_records(tmp_path: Path) -> None:
    """Names compare without case, as SQLite's do; an excluded BLOB no longer fails its row."""
    path = tmp_path / "app.db"
    outbox(path)
    source = SqliteTableSource(
        path, "outbox", "seq", DEFAULTS, exclude_columns=("CREATED_AT", "raw")
    )
    items = await read(source)
    assert all(isinstance(item, Change) for item in items)
    assert [item.record for item in items if isinstance(item, Change)] == [
        {"id": str(FIRST_ID), "Company": "Acme"},
        {"id": str(FIRST_ID + 1), "Company": "Initech"},
    ]
    assert [item.positions[0].resume_after for item in items if isinstance(item, Change)] == [
        1,
        2,
    ]


async def test_without_exclusions_every_column_is_a_field(tmp_path: Path) -> None:
    """The same outbox read whole: created_at is a field and the BLOB fails its row."""
    path = tmp_path / "app.db"
    outbox(path)
    items = await read(SqliteTableSource(path, "outbox", "seq", DEFAULTS))
    assert isinstance(items[0], BadInput)
    assert isinstance(items[1], Change)
    assert "created_at" in items[1].record


async def test_a_name_that_is_not_a_column_is_refused_at_open(tmp_path: Path) -> None:
    """Refused before any row is read, naming the key and the column."""
    path = tmp_path / "app.db"
    outbox(path)
    source = SqliteTableSource(path, "outbox", "seq", DEFAULTS, exclude_columns=("created",))
    with pytest.raises(ConfigError) as info:
        await read(source)
    assert "source.exclude_columns: 'created' is not a column of 'outbox'" in str(info.value)


def sqlite_config(tmp_path: Path, sim: SimHandle, excluded: str) -> Path:
    """A `run` config for the simulator reading the outbox of app.db."""
    config = write_config(tmp_path, sim, feed="app.db", source_type="sqlite")
    text = config.read_text().replace(
        'path = "app.db"',
        f'path = "app.db"\ntable = "outbox"\ncursor = "seq"\nexclude_columns = {excluded}',
    )
    config.write_text(text)
    return config


async def test_run_does_not_send_excluded_columns(sim: SimHandle, tmp_path: Path) -> None:
    """A real `syncengine run`: the CRM receives the fields, not created_at."""
    outbox(tmp_path / "app.db")
    await seed_leads(sim, 2)
    config = sqlite_config(tmp_path, sim, '["created_at", "raw"]')
    result = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    leads = await sim_leads(sim)
    fields = [leads[str(FIRST_ID + n)]["fields"] for n in range(2)]
    assert [lead["Company"] for lead in fields] == ["Acme", "Initech"]
    assert not any("created_at" in lead or "raw" in lead for lead in fields)


async def test_run_with_an_unknown_excluded_name_exits_2_with_one_line(
    sim: SimHandle, tmp_path: Path
) -> None:
    """Exit 2, one line naming the key and the column, nothing sent."""
    outbox(tmp_path / "app.db")
    config = sqlite_config(tmp_path, sim, '["created"]')
    result = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "source.exclude_columns" in lines[0]
    assert "'created'" in lines[0]
    assert sim.state.stats.records_written == 0

"""A feed file replaced at its path is a new file: read from its start, nothing skipped.

Each test runs the real CLI against the simulator and replaces the feed the
ways users do while syncengine is stopped: rotation by rename, truncation
and rewrite in place, a nightly CSV export written again. The new file's
lines have the same lengths as the old one's, so its line starts fall where
the old checkpoint does: only the file's identity tells the two apart.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from syncengine.journal.schema import MIGRATIONS, migrate
from syncengine.sim.server import SimHandle
from tests.integration.conftest import (
    FIRST_ID,
    lead_updates,
    run_cli,
    seed_leads,
    sim_leads,
    write_config,
    write_feed,
)


def summary(stderr: str) -> dict[str, Any]:
    """The `run.summary` event of a run's JSON log."""
    for line in stderr.splitlines():
        event = orjson.loads(line)
        if event.get("event") == "run.summary":
            return dict(event)
    raise AssertionError(f"no run.summary in: {stderr[-2000:]}")


def events(stderr: str) -> list[str]:
    """The event names of a run's JSON log."""
    return [orjson.loads(line).get("event", "") for line in stderr.splitlines()]


def replace_feed(feed: Path, data: bytes, how: str) -> None:
    """Replace the feed the way `how` says, keeping or changing its inode."""
    if how == "rename":
        feed.rename(feed.with_name(feed.name + ".1"))  # the old file stays, rotated away
        feed.write_bytes(data)
    else:  # truncated and written again in place: the same inode
        inode = feed.stat().st_ino
        with feed.open("r+b") as out:
            out.truncate(0)
            out.write(data)
        assert feed.stat().st_ino == inode


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


@pytest.mark.parametrize("how", ["rename", "truncate"])
async def test_a_jsonl_feed_replaced_while_stopped_is_read_from_its_start(
    sim: SimHandle, tmp_path: Path, how: str
) -> None:
    """Every line of the new file is synced; none is skipped as settled."""
    await seed_leads(sim, 250)
    feed = tmp_path / "changes.jsonl"
    write_feed(feed, lead_updates(200, tag="v1"))
    config = write_config(tmp_path, sim)
    first = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    written = sim.state.stats.records_written

    # The new file: the same records with new values (lines of the same
    # lengths, so the old checkpoint is a line start with the right line
    # count), then lines appended after it.
    new_rows = lead_updates(200, tag="v2")
    replace_feed(feed, jsonl(new_rows), how)
    appended = lead_updates(50, start=FIRST_ID + 200, tag="v2")
    with feed.open("ab") as out:
        out.write(jsonl(appended))
    second = await run_cli("run", "-c", str(config), cwd=tmp_path)

    assert second.returncode == 0, second.stderr
    counts = summary(second.stderr)
    assert counts["replay_skipped"] == 0
    assert counts["synced"] == 250
    assert sim.state.stats.records_written - written == 250
    leads = await sim_leads(sim)
    for row in new_rows + appended:
        assert leads[row["id"]]["fields"]["Company"] == row["Company"]
    assert "source.new_file" in events(second.stderr)

    # And the new file resumes as any file does: appended lines only.
    with feed.open("ab") as out:
        out.write(jsonl([{"id": str(FIRST_ID + 7), "Company": "Company 7 v3"}]))
    third = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert summary(third.stderr)["synced"] == 1
    assert "source.new_file" not in events(third.stderr)


def csv_export(tag: str, rows: int) -> bytes:
    lines = ["id,Company"] + [f"{FIRST_ID + i},Company {i:03d} {tag}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("how", ["rename", "truncate"])
async def test_a_csv_export_written_again_is_read_from_its_start(
    sim: SimHandle, tmp_path: Path, how: str
) -> None:
    """A new export whose rows have the old lengths: its first rows are sent too."""
    await seed_leads(sim, 100)
    feed = tmp_path / "export.csv"
    feed.write_bytes(csv_export("a", 100))
    config = write_config(tmp_path, sim, feed="export.csv", source_type="csv")
    first = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert first.returncode == 0, first.stderr

    replace_feed(feed, csv_export("b", 100), how)
    second = await run_cli("run", "-c", str(config), cwd=tmp_path)

    assert second.returncode == 0, second.stderr
    assert summary(second.stderr)["synced"] == 100
    leads = await sim_leads(sim)
    assert all(
        leads[str(FIRST_ID + i)]["fields"]["Company"] == f"Company {i:03d} b" for i in range(100)
    )


async def test_a_journal_from_before_generations_still_resumes(
    sim: SimHandle, tmp_path: Path
) -> None:
    """A version-2 journal (no generation anywhere) resumes at its checkpoint, then has one."""
    await seed_leads(sim, 100)
    feed = tmp_path / "changes.jsonl"
    rows = lead_updates(100)
    write_feed(feed, rows)
    offset_60 = len(jsonl(rows[:60]))
    journal = tmp_path / "journal.db"
    with sqlite3.connect(journal, isolation_level=None) as db:
        migrate(db, journal, migrations=MIGRATIONS[:2])
        source_id = f"jsonl:{feed}"
        db.execute("INSERT INTO checkpoints VALUES (?, ?, 60, 0)", (source_id, offset_60))
        db.execute("INSERT INTO high_water VALUES (?, ?, 60, 0)", (source_id, offset_60))
        db.executemany(
            "INSERT INTO records (key, module, record_id, state, position, updated_at, source)"
            " VALUES (?, 'Leads', ?, 'synced', ?, 0, ?)",
            [(f"Leads:{row['id']}", row["id"], n, source_id) for n, row in enumerate(rows[:60], 1)],
        )
    os.chmod(journal, 0o600)
    config = write_config(tmp_path, sim)

    result = await run_cli("run", "-c", str(config), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert summary(result.stderr)["synced"] == 40
    assert "source.new_file" not in events(result.stderr)
    leads = await sim_leads(sim)
    assert [index for index in range(100) if leads[str(FIRST_ID + index)]["writes"]] == list(
        range(60, 100)
    )
    with sqlite3.connect(journal) as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        (generation,) = db.execute("SELECT generation FROM checkpoints").fetchone()
    assert version == len(MIGRATIONS)
    assert generation is not None
    assert f":{feed.stat().st_ino}:" in generation

"""What the bulk phase holds in memory: right-sized rows, rows read back in slices, and
nothing at all planned when the org has no bulk write. Peak RSS figures live in
benchmarks/bench_bulk_memory.py."""

from __future__ import annotations

import sqlite3
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import orjson
from aiohttp import web

from benchmarks.sink import make_app
from syncengine.bulk.census import Census
from syncengine.bulk.jobs_journal import JobsJournal
from syncengine.bulk.phase import _line
from syncengine.journal import Journal
from syncengine.model import Change, Checkpoint, Operation, SourcePosition
from tests.integration.conftest import FIRST_ID, run_cli, write_config, write_feed


def update(n: int) -> Change:
    return Change(
        "Leads",
        Operation.UPDATE,
        {"id": str(FIRST_ID + n), "Company": f"Company {n}"},
        f"Leads:{FIRST_ID + n}",
        [SourcePosition(n, 10 * (n + 1), n + 1)],
    )


def test_a_waiting_row_costs_its_length_not_a_serializer_buffer() -> None:
    """orjson returns each payload in a buffer of at least 4 KiB: 2,000 held rows
    would take 8 MB. Right-sized, they take what they hold."""
    changes = [update(n) for n in range(2_000)]
    tracemalloc.start()
    try:
        lines = [_line("jsonl:feed", change) for change in changes]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(lines) == 2_000
    assert held < 2_000 * 600, held  # key, position and a ~100-byte payload each


async def test_a_job_s_rows_are_read_back_in_slices(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "j.db", holder="test")
    jobs = JobsJournal(journal.path)
    try:
        lines = [_line("jsonl:feed", update(n)) for n in range(10)]
        job = jobs.plan(
            source="jsonl:feed",
            module="Leads",
            operation=Operation.UPDATE,
            find_by="id",
            lines=lines,
            last=Checkpoint(100, 10),
        )
        assert jobs.lines(job) == lines
        assert jobs.lines(job, 0, 4) == lines[:4]
        assert jobs.lines(job, 8, 12) == lines[8:]
        assert jobs.lines(job, 10, 14) == []
    finally:
        jobs.close()
        await journal.close()


def test_a_closed_census_gives_its_tables_back() -> None:
    census = Census(lambda change: ("Leads", Operation.UPDATE), slots=1 << 10)
    census.note(update(1))
    assert census.rows_by_group() == {("Leads", Operation.UPDATE): 1}
    census.close()
    assert census.closed


def test_a_slot_names_63_groups_and_further_groups_go_by_records() -> None:
    """One byte a slot: two bits of count, six of group. A 64th group's changes are
    not taken for bulk; the first 63 groups' are, each counted apart."""
    census = Census(lambda change: (change.module, change.operation), slots=1 << 16)
    changes = [
        Change(f"M{n}", Operation.UPDATE, {"id": str(n)}, f"M{n}:{n}", [SourcePosition(n, n, n)])
        for n in range(64)
    ]
    for change in changes:
        census.note(change)
    groups = census.rows_by_group()
    assert len(groups) == 63
    assert all(rows == 1 for rows in groups.values())
    assert [census.group_of(change) for change in changes[:63]] == [
        (f"M{n}", Operation.UPDATE) for n in range(63)
    ]
    assert census.group_of(changes[63]) is None
    census.note(changes[5])  # the key again: its slot counts "more", its group loses it
    assert census.group_of(changes[5]) is None
    assert ("M5", Operation.UPDATE) not in census.rows_by_group()
    census.close()


async def test_an_org_without_bulk_write_plans_no_job(tmp_path: Path) -> None:
    """`auto` reads the org before it plans a job: against a CRM without the Bulk Write
    API (the benchmarks' minimal sink) it journals no job and hands no row over; the
    records pass sends the feed once, as `records` would."""
    runner = web.AppRunner(make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        sink = SimpleNamespace(
            base_url=f"http://127.0.0.1:{port}", accounts_url=f"http://127.0.0.1:{port}"
        )
        config = write_config(tmp_path, sink)  # type: ignore[arg-type]
        rows = [{"id": str(FIRST_ID + n), "Company": f"Updated {n}"} for n in range(6_000)]
        write_feed(tmp_path / "changes.jsonl", rows)
        result = await run_cli(
            "--log-format", "json", "migrate", "-c", str(config), cwd=tmp_path, timeout_s=120
        )
    finally:
        await runner.cleanup()
    assert result.returncode == 0, result.stderr[-2000:]
    events = [orjson.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    names = [event["event"] for event in events]
    assert names.count("bulk.plan") == 1
    assert names.count("bulk.org_unreadable") == 1
    assert names.count("bulk.unavailable") == 1
    assert "bulk.job_not_created" not in names
    summary = next(event for event in events if event["event"] == "run.summary")
    assert (summary["synced"], summary["redriven"], summary["replay_skipped"]) == (6_000, 0, 0)
    with sqlite3.connect(tmp_path / "journal.db") as db:
        assert db.execute("SELECT count(*) FROM bulk_jobs").fetchone() == (0,)

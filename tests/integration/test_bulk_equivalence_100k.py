"""100,000 changes by `migrate --api bulk` end exactly as by `--api records`, killed or not.

One feed of 100,000 lines (40,000 updates, 30,000 inserts, 29,995 upserts, an
ambiguous upsert, a lead updated twice, a field blanked and two lines that
are not JSON; rows of every bad kind, see `bulk_equivalence`) is migrated
through each API into its own fresh simulator, by real
`python -m syncengine migrate` processes. The CRM end state (every lead's
fields and write count; created leads by content, since ids differ) and
`failures --json` (every row whole: position, key, id, code, message,
details, attempts) must be identical, bar the one difference interface.md
documents (a bulk DUPLICATE_DATA does not name the record it clashed with).
The records path's outcome is computed once and compared with two bulk
migrations:

- one run to its end without a kill;
- one SIGKILLed four times, a `migrate` started again after each kill, the
  last one run to its end. Its six jobs run one at a time; the simulator
  holds the step a kill aims at (`bulk_upload_s`, `bulk_queue_s`,
  `bulk_job_s`, `bulk_download_s`) and the test kills the process once the
  journal and the simulator show it there: the first job's file has reached
  the CRM but its id has not reached the journal (upload); the second job is
  created and its id journaled, it has not run (created); the third job runs
  and has been polled (polling); the fourth job's result is being downloaded
  (download). The feed fills an upsert job first, then an update and an
  insert job; the rest goes in an update, an insert and an upsert job: the
  kills land in an upsert, an update, an insert and an update job. Each job
  must have been created once.

A kill between the CRM creating an insert job and the journal holding its
id is the documented crash bound of bulk inserts (interface.md, "Bulk
write"): no moment here falls in it. The same kills on a twentieth of this
feed, one per run, and one during the records pass, are `test_bulk_kills`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from syncengine.sim.bulk_jobs import JobState
from syncengine.sim.server import SimHandle, running_simulator
from tests.integration.bulk_equivalence import (
    FeedShape,
    created,
    crm_view,
    downloading,
    failures_view,
    job_states,
    mixed_feed,
    polled,
    seed,
    uploading,
)
from tests.integration.conftest import (
    admin_get,
    run_cli,
    start_cli,
    write_config,
    write_feed,
)

SHAPE = FeedShape(inserts=30_000, updates=40_000, upserts=29_995)
#: Jobs of at most 25,000 rows: two per operation.
JOBS = 6
#: How long the simulator holds the step a kill aims at, in seconds.
HOLD_S = 2.0

#: The records path's outcome for the feed (CRM view, failures), computed once per process.
_REFERENCE: list[tuple[Any, list[dict[str, Any]]]] = []


def prepare(folder: Path, sim: SimHandle, limits: str = "") -> Path:
    """Writes the feed and a config for `sim` in a new `folder`; the config's path."""
    folder.mkdir()
    write_feed(folder / "changes.jsonl", mixed_feed(SHAPE))
    return write_config(folder, sim, limits=f"bulk_poll_s = 0.2\n{limits}")


async def migrate(config: Path, api: str) -> None:
    """Runs `migrate --api API` to its end: done, some records failed (exit 1)."""
    result = await run_cli(
        "migrate", "-c", str(config), "--api", api, cwd=config.parent, timeout_s=240
    )
    assert result.returncode == 1, result.stderr[-3000:]


async def records_reference(folder: Path) -> tuple[Any, list[dict[str, Any]]]:
    """The CRM view and failures `--api records` leaves for the feed, in a fresh simulator."""
    if not _REFERENCE:
        async with running_simulator(port=0, admin=True) as twin:
            await seed(twin, SHAPE)
            config = prepare(folder, twin)
            await migrate(config, "records")
            assert (await admin_get(twin, "stats"))["bulk_jobs"] == 0
            _REFERENCE.append((await crm_view(twin, SHAPE), await failures_view(config, folder)))
    return _REFERENCE[0]


async def assert_ends_as_records(sim: SimHandle, config: Path, records: Path) -> None:
    """The CRM and `failures --json` are what the records path leaves (see the docstring)."""
    view, failures = await records_reference(records)
    seeded, created = await crm_view(sim, SHAPE)
    assert len(created) == len(set(created))  # no lead inserted twice
    assert {e["writes"] for e in seeded.values()} == {None, 0, 1}  # None: changed twice
    assert (seeded, created) == view  # with each lead's write count
    got = await failures_view(config, config.parent)
    assert [(b, r) for b, r in zip(got, failures, strict=False) if b != r][:5] == []
    assert len(got) == len(failures)


@pytest.mark.timeout(300)
async def test_100k_by_bulk_end_as_by_records(sim: SimHandle, tmp_path: Path) -> None:
    assert SHAPE.lines == 100_000
    await seed(sim, SHAPE)
    config = prepare(tmp_path / "bulk", sim)
    await migrate(config, "bulk")
    stats_bulk = await admin_get(sim, "stats")
    # Most rows went by bulk write.
    assert stats_bulk["bulk_jobs"] == JOBS
    assert stats_bulk["bulk_job_rows"] > 95_000

    await assert_ends_as_records(sim, config, tmp_path / "records")
    failures_bulk = await failures_view(config, config.parent)
    # Every kind of refusal is there, from local validation and from the CRM.
    kinds = {(row["code"], (row["details"] or {}).get("api_name")) for row in failures_bulk}
    assert kinds >= {
        ("BAD_INPUT", None),
        ("MANDATORY_NOT_FOUND", "Last_Name"),
        ("INVALID_DATA", "Email"),
        ("INVALID_DATA", "Rating"),
        ("INVALID_DATA", "Company"),
        ("INVALID_DATA", "Owner"),
        ("INVALID_DATA", "id"),
        ("DUPLICATE_DATA", "Email"),
    }
    messages = {row["message"] for row in failures_bulk}
    assert "the id given seems to be invalid" in messages
    assert not [m for m in messages if "bulk write" in m]
    ambiguous = [row for row in failures_bulk if row["details"].get("more_records")]
    assert len(ambiguous) == 1

    # A second migrate finds nothing to send.
    again = await run_cli("migrate", "-c", str(config), "--api", "bulk", cwd=config.parent)
    assert again.returncode == 0, again.stderr[-2000:]
    stats = await admin_get(sim, "stats")
    assert (stats["records_written"], stats["bulk_jobs"]) == (
        stats_bulk["records_written"],
        stats_bulk["bulk_jobs"],
    )


@dataclass(frozen=True)
class Kill:
    """One kill of the sequence: where, the knobs that hold that step, and what it leaves."""

    moment: str
    #: The simulator's knobs, set once it has created `arm_after` jobs (a job takes
    #: its queue and run times when created), and reset before the next `migrate`.
    knobs: dict[str, float]
    arm_after: int
    #: True once the migration is in the step (simulator, journal path).
    reached: Callable[[SimHandle, Path], bool]
    #: The journal's jobs at the kill, (state, job id known) in order; jobs planned
    #: after them (nothing sent yet) may follow.
    journaled: list[tuple[str, bool]]


def journaled_jobs(journal: Path) -> list[tuple[str, int]]:
    """The journal's jobs in order: (operation, rows)."""
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT operation, rows FROM bulk_jobs ORDER BY id").fetchall()
    return [(str(op), int(count)) for op, count in rows]


def _done(jobs: int) -> list[tuple[str, bool]]:
    return [("done", True)] * jobs


KILLS = [
    Kill("upload", {"bulk_upload_s": HOLD_S}, 0, uploading(1), [("planned", False)]),
    Kill("created", {"bulk_queue_s": HOLD_S}, 1, created(2), [*_done(1), ("created", True)]),
    Kill("polling", {"bulk_job_s": HOLD_S}, 2, polled(3), [*_done(2), ("created", True)]),
    Kill(
        "download",
        {"bulk_download_s": HOLD_S},
        4,
        downloading(4),
        [*_done(3), ("created", True)],
    ),
]


async def kill_at(sim: SimHandle, config: Path, kill: Kill) -> None:
    """Starts `migrate --api bulk` and SIGKILLs it once it is in `kill`'s step."""
    journal = config.parent / "journal.db"
    process = await start_cli("migrate", "-c", str(config), "--api", "bulk", cwd=config.parent)
    armed = False
    try:
        while process.returncode is None:
            if not armed and len(sim.state.bulk.jobs) >= kill.arm_after:
                sim.state.set_config(kill.knobs)
                armed = True
            if armed and kill.reached(sim, journal):
                break
            await asyncio.sleep(0.005)
        assert process.returncode is None, f"migrate ended before the {kill.moment} step"
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        sim.state.set_config({name: 0.0 for name in kill.knobs})
    states = [(state, known) for _op, state, known in job_states(journal)]
    count = len(kill.journaled)
    assert states[:count] == kill.journaled, kill.moment
    assert set(states[count:]) <= {("planned", False)}, kill.moment


@pytest.mark.timeout(300)
async def test_100k_by_bulk_killed_at_each_step_end_as_by_records(
    sim: SimHandle, tmp_path: Path
) -> None:
    await seed(sim, SHAPE)
    config = prepare(tmp_path / "bulk", sim, limits="bulk_jobs_in_flight = 1")
    for kill in KILLS:
        await kill_at(sim, config, kill)
    await migrate(config, "bulk")

    journal = config.parent / "journal.db"
    assert [(state, known) for _op, state, known in job_states(journal)] == _done(JOBS)
    # Jobs start as their groups reach 25,000 rows in the feed, then the rest in the
    # order the feed first names the groups.
    jobs = journaled_jobs(journal)
    assert [op for op, _rows in jobs] == [
        "upsert",
        "update",
        "insert",
        "update",
        "insert",
        "upsert",
    ]
    # Each journaled job created once, in order; only the first job's file, whose
    # id the first kill kept from the journal, was uploaded twice.
    stats = await admin_get(sim, "stats")
    assert (stats["bulk_jobs"], stats["bulk_uploads"]) == (JOBS, JOBS + 1)
    created = [(job.spec.operation, len(job.upload.rows)) for job in sim.state.bulk.jobs.values()]
    assert created == jobs
    assert all(job.state is JobState.COMPLETED for job in sim.state.bulk.jobs.values())
    await assert_ends_as_records(sim, config, tmp_path / "records")

"""`migrate --api bulk` killed (SIGKILL) at each step of a job ends as `--api records` does.

The feed is `bulk_equivalence`'s mixed feed at a twentieth of the size (5,005
lines: 2,000 updates, 1,500 inserts, 1,500 upserts, bad rows of every kind),
one kill per run; `test_bulk_equivalence_100k` runs the full 100,000-line feed
once without a kill and once killed at four steps in one sequence. One
job runs at a time: updates, then inserts, then upserts (the order the feed
first names them). The simulator holds the step in question open for a while
(`bulk_upload_s`, `bulk_queue_s`, `bulk_job_s`, `bulk_download_s`, from the
second job on), the test waits until the migration is in it, for a job past
the first, so jobs before it have already settled, and kills the process:

- upload: the insert job's file has reached the CRM, its answer (the file id)
  has not reached the migration;
- created: the insert job exists and its id is journaled, it has not run;
- polling: the upsert job runs and has been polled;
- download: the insert job's result is being downloaded;
- records: every job is done and the records pass that follows has requests
  in flight (an update among them may be applied with its answer lost: it is
  sent again, so that lead may count one write more).

A second `migrate --api bulk` then runs to its end. The CRM and `failures
--json` must be exactly what `--api records` leaves for the same feed in a
fresh simulator (bar the difference interface.md documents), with no lead
written twice, and the three jobs each created once.

Killed between the CRM creating an insert job and the migration journaling
its id, a migration inserts that job's rows twice (interface.md, "Bulk
write": the crash bound of bulk inserts); the moments here are before and
after that window, never in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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
    sim_job,
    uploading,
)
from tests.integration.conftest import (
    admin_get,
    run_cli,
    start_cli,
    write_config,
    write_feed,
)

SHAPE = FeedShape(inserts=1_500, updates=2_000, upserts=1_500)
ONE_JOB_AT_A_TIME = "bulk_poll_s = 0.2\nbulk_jobs_in_flight = 1"
#: How long the simulator holds the step the kill aims at, in seconds.
HOLD_S = 1.0


def records_pass(sim: SimHandle, journal: Path) -> bool:
    """Every job settled, and a records-API request under way."""
    third = sim_job(sim, 3)
    return (
        third is not None
        and third.downloads >= 1
        and sim.state.stats.in_flight >= 1
        and [state for _o, state, _k in job_states(journal)] == ["done"] * 3
    )


#: The journal's jobs once killed at each moment: (operation, state, job id known).
_BEFORE_INSERTS = [("update", "done", True)]
_AFTER_INSERTS = [*_BEFORE_INSERTS, ("insert", "done", True)]

#: (moment, when to kill, the simulator's knobs until then, the jobs journaled at the kill)
MOMENTS: list[
    tuple[str, Callable[[SimHandle, Path], bool], dict[str, Any], list[tuple[str, str, bool]]]
] = [
    (
        "upload",
        uploading(2),
        {"bulk_upload_s": HOLD_S},
        [*_BEFORE_INSERTS, ("insert", "planned", False)],
    ),
    (
        "created",
        created(2),
        {"bulk_queue_s": HOLD_S},
        [*_BEFORE_INSERTS, ("insert", "created", True)],
    ),
    (
        "polling",
        polled(3),
        {"bulk_job_s": HOLD_S},
        [*_AFTER_INSERTS, ("upsert", "created", True)],
    ),
    (
        "download",
        downloading(2),
        {"bulk_download_s": HOLD_S},
        [*_BEFORE_INSERTS, ("insert", "created", True)],
    ),
    (
        "records",
        records_pass,
        {"latency_ms": 400.0},
        [*_AFTER_INSERTS, ("upsert", "done", True)],
    ),
]

#: The records path's outcome for the feed, computed once per process.
_REFERENCE: list[tuple[Any, list[dict[str, Any]]]] = []


async def records_reference(folder: Path) -> tuple[Any, list[dict[str, Any]]]:
    """The CRM view and failures `--api records` leaves for the feed, in a fresh simulator."""
    if _REFERENCE:
        return _REFERENCE[0]
    folder.mkdir()
    async with running_simulator(port=0, admin=True) as twin:
        await seed(twin, SHAPE)
        write_feed(folder / "changes.jsonl", mixed_feed(SHAPE))
        config = write_config(folder, twin)
        result = await run_cli("migrate", "-c", str(config), "--api", "records", cwd=folder)
        assert result.returncode == 1, result.stderr[-3000:]
        _REFERENCE.append((await crm_view(twin, SHAPE), await failures_view(config, folder)))
    return _REFERENCE[0]


@pytest.mark.parametrize(
    ("moment", "when", "knobs", "journaled"), MOMENTS, ids=[m[0] for m in MOMENTS]
)
async def test_killed_bulk_migration_ends_as_the_records_path(
    sim: SimHandle,
    tmp_path: Path,
    moment: str,
    when: Callable[[SimHandle, Path], bool],
    knobs: dict[str, Any],
    journaled: list[tuple[str, str, bool]],
) -> None:
    folder = tmp_path / "bulk"
    folder.mkdir()
    await seed(sim, SHAPE)
    write_feed(folder / "changes.jsonl", mixed_feed(SHAPE))
    config = write_config(folder, sim, limits=ONE_JOB_AT_A_TIME)
    process = await start_cli("migrate", "-c", str(config), "--api", "bulk", cwd=folder)
    armed = False
    while not when(sim, folder / "journal.db") and process.returncode is None:
        if not armed and sim_job(sim, {"polling": 2, "records": 3}.get(moment, 1)) is not None:
            # Hold the steps of the jobs from the one the kill aims at (or the one
            # before it) on only: a job takes its queue and run times when created.
            sim.state.set_config(knobs)
            armed = True
        await asyncio.sleep(0.0005)
    assert process.returncode is None, f"migrate ended before the {moment} step"
    process.kill()
    await process.wait()
    # Killed where meant (the job after it may be journaled too: it is planned meanwhile).
    assert job_states(folder / "journal.db")[: len(journaled)] == journaled
    sim.state.set_config({name: 0.0 for name in knobs})
    result = await run_cli("migrate", "-c", str(config), "--api", "bulk", cwd=folder)
    assert result.returncode == 1, result.stderr[-3000:]  # done, some records failed

    view, failures = await records_reference(tmp_path / "records")
    got_view = await crm_view(sim, SHAPE)
    if moment == "records":
        # An update the records API had in flight at the kill may have been applied
        # with its answer lost: it is sent again (the same values), once.
        for record_id, lead in got_view[0].items():
            expected = view[0][record_id]["writes"]
            if expected is not None and lead["writes"] == expected + 1:
                lead["writes"] -= 1
    assert got_view == view  # with each lead's write count
    got = await failures_view(config, folder)
    assert [(b, r) for b, r in zip(got, failures, strict=False) if b != r][:5] == []
    assert len(got) == len(failures)
    stats = await admin_get(sim, "stats")
    # Each job created once, its rows uploaded once more at most (a file whose id
    # the kill kept from the journal is uploaded again).
    assert stats["bulk_jobs"] == 3
    assert stats["bulk_uploads"] == (4 if moment == "upload" else 3)

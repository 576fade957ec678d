"""`migrate --api bulk` killed (SIGKILL) at each step of a job, then run again.

The second `migrate` resumes the job the journal names (polls it, fetches its
result) instead of uploading its rows again, and ends with the CRM and the
journal as an uninterrupted migration would: every insert created once, every
update applied, nothing pending or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from syncengine.sim.server import SimHandle
from tests.integration.conftest import (
    FIRST_ID,
    admin_get,
    run_cli,
    seed_leads,
    sim_leads,
    start_cli,
    write_config,
    write_feed,
)

#: One job at a time, so each kill lands in one known job (the others are not begun).
ONE_JOB_AT_A_TIME = "bulk_poll_s = 0.2\nbulk_jobs_in_flight = 1"
UPDATES = 1_000
INSERTS = 1_000


def feed() -> list[dict[str, Any] | bytes]:
    """Updates of seeded leads first (the first job), then keyless inserts (the second)."""
    rows: list[dict[str, Any] | bytes] = [
        {"id": str(FIRST_ID + n), "Company": f"Updated {n}"} for n in range(UPDATES)
    ]
    rows += [
        {"record": {"Last_Name": f"Insert {n}", "Company": "New"}, "operation": "insert"}
        for n in range(INSERTS)
    ]
    return rows


def uploading(sim: SimHandle, _journal: Path) -> bool:
    return sim.state.stats.bulk_uploads >= 1


def created(sim: SimHandle, _journal: Path) -> bool:
    return sim.state.stats.bulk_jobs >= 1


def journaled_job_id(journal: Path) -> bool:
    """The migration journaled a job id: from here on the job is only polled and read."""
    if not journal.exists():
        return False
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
        try:
            rows = db.execute("SELECT count(*) FROM bulk_jobs WHERE job_id IS NOT NULL").fetchone()
        except sqlite3.OperationalError:  # not created yet, or busy
            return False
    return bool(rows[0])


def journal_states(journal: Path) -> dict[str, int]:
    """Records rows by state, read from the journal file the migration left."""
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT state, count(*) FROM records GROUP BY state").fetchall()
    return dict(rows)


def downloading(sim: SimHandle, _journal: Path) -> bool:
    return any(job.downloads >= 1 for job in sim.state.bulk.jobs.values())


#: (moment, when to kill, simulator knobs for the first run, knobs for the second)
MOMENTS: list[tuple[str, Callable[[SimHandle, Path], bool], dict[str, Any], dict[str, Any]]] = [
    ("upload", uploading, {}, {}),
    ("created", created, {}, {}),
    ("polling", lambda _sim, journal: journaled_job_id(journal), {"bulk_job_s": 1.0}, {}),
    ("download", downloading, {"bulk_drop_downloads": 1000}, {"bulk_drop_downloads": 0}),
]


@pytest.mark.parametrize(
    ("moment", "when", "first", "second"), MOMENTS, ids=[m[0] for m in MOMENTS]
)
async def test_killed_migration_resumes_its_jobs(
    sim: SimHandle,
    tmp_path: Path,
    moment: str,
    when: Callable[[SimHandle, Path], bool],
    first: dict[str, Any],
    second: dict[str, Any],
) -> None:
    await seed_leads(sim, UPDATES)
    write_feed(tmp_path / "changes.jsonl", feed())
    config = write_config(tmp_path, sim, limits=ONE_JOB_AT_A_TIME)
    sim.state.set_config(first)
    process = await start_cli("migrate", "-c", str(config), "--api", "bulk", cwd=tmp_path)
    while not when(sim, tmp_path / "journal.db") and process.returncode is None:
        await asyncio.sleep(0.0005)
    assert process.returncode is None, f"migrate ended before the {moment} step"
    process.kill()
    await process.wait()
    sim.state.set_config(second)
    result = await run_cli("migrate", "-c", str(config), "--api", "bulk", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    leads = await sim_leads(sim)
    assert len(leads) == UPDATES + INSERTS  # no insert made twice
    for n in range(UPDATES):
        assert leads[str(FIRST_ID + n)]["fields"]["Company"] == f"Updated {n}"
    inserted = sorted(
        e["fields"]["Last_Name"] for e in leads.values() if e["fields"]["Company"] == "New"
    )
    assert inserted == sorted(f"Insert {n}" for n in range(INSERTS))
    stats = await admin_get(sim, "stats")
    if moment in ("upload", "created"):
        # Killed before the file id or the job id was journaled: that file is uploaded
        # again, or an update job created twice (the same values); never an insert job.
        assert stats["bulk_uploads"] in (2, 3)
        assert stats["bulk_jobs"] in (2, 3)
        assert max(e["writes"] for e in leads.values()) <= 2
    else:
        # The job known by its id is polled and read, not uploaded or created again.
        assert (stats["bulk_uploads"], stats["bulk_jobs"]) == (2, 2)
        # A key that shares a census slot with another goes by the records API
        # (`bulk/census`): with 2,000 keys in 2^25 slots, a pair does so in about
        # one run in sixteen, as the keys hold the run's folder.
        assert UPDATES + INSERTS - 10 <= stats["bulk_job_rows"] <= UPDATES + INSERTS
        assert max(e["writes"] for e in leads.values()) == 1
    assert journal_states(tmp_path / "journal.db") == {"synced": UPDATES + INSERTS}


async def test_stop_while_a_job_runs_leaves_it_to_the_next_migrate(
    sim: SimHandle, tmp_path: Path
) -> None:
    """SIGTERM while a job runs: exit 130 at once, no records pass (the job may still
    write its rows); the next migrate collects the job without sending it again."""
    await seed_leads(sim, UPDATES)
    write_feed(tmp_path / "changes.jsonl", feed())
    config = write_config(tmp_path, sim, limits=ONE_JOB_AT_A_TIME)
    sim.state.set_config({"bulk_job_s": 2.0})
    process = await start_cli("migrate", "-c", str(config), "--api", "bulk", cwd=tmp_path)
    while not journaled_job_id(tmp_path / "journal.db") and process.returncode is None:
        await asyncio.sleep(0.001)
    process.terminate()
    assert await asyncio.wait_for(process.wait(), 10) == 130
    assert sim.state.stats.records_written == 0  # neither the job nor a records pass wrote
    sim.state.set_config({"bulk_job_s": 0.0})
    result = await run_cli("migrate", "-c", str(config), "--api", "bulk", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = await admin_get(sim, "stats")
    assert (stats["bulk_uploads"], stats["bulk_jobs"]) == (2, 2)
    leads = await sim_leads(sim)
    assert len(leads) == UPDATES + INSERTS
    assert max(e["writes"] for e in leads.values()) == 1


async def test_failed_jobs_hand_their_rows_to_the_records_path(
    sim: SimHandle, tmp_path: Path
) -> None:
    """Jobs that end FAILED (nothing applied) leave their rows pending; the records pass
    of the same migrate re-drives them, so the CRM ends complete, each record written once."""
    await seed_leads(sim, UPDATES)
    write_feed(tmp_path / "changes.jsonl", feed())
    config = write_config(tmp_path, sim, limits=ONE_JOB_AT_A_TIME)
    sim.state.set_config({"bulk_fault_fail": 1.0})
    result = await run_cli("migrate", "-c", str(config), "--api", "bulk", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = await admin_get(sim, "stats")
    assert stats["bulk_jobs"] == 2
    leads = await sim_leads(sim)
    assert len(leads) == UPDATES + INSERTS
    assert max(e["writes"] for e in leads.values()) == 1
    for n in range(UPDATES):
        assert leads[str(FIRST_ID + n)]["fields"]["Company"] == f"Updated {n}"
    assert journal_states(tmp_path / "journal.db") == {"synced": UPDATES + INSERTS}

"""Resuming journaled jobs against the simulator, with a real journal file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson

from syncengine.bulk.job_runner import JobRunner
from syncengine.bulk.jobs_journal import JobLine, JobsJournal
from syncengine.crm.auth import TokenProvider
from syncengine.crm.bulk_csv import plan_files
from syncengine.crm.bulk_write import BulkWriteClient
from syncengine.crm.session import make_session
from syncengine.crm.token_store import MemoryTokenStore
from syncengine.journal import Journal, encode_payload
from syncengine.model import Change, Checkpoint, Operation, SourcePosition
from syncengine.sim import SimHandle


@asynccontextmanager
async def runner_for(
    sim: SimHandle, journal: Journal, jobs: JobsJournal
) -> AsyncIterator[JobRunner]:
    session = make_session(concurrency=2, connect_timeout_s=5.0)
    try:
        tokens = TokenProvider(
            session=session,
            accounts_url=sim.base_url,
            client_id="demo-client",
            client_secret="demo-secret",
            refresh_token="demo-refresh",
            store=MemoryTokenStore(),
        )
        client = BulkWriteClient(
            session=session,
            api_domain=sim.base_url,
            upload_url=sim.base_url,
            tokens=tokens,
            poll_first_s=0.05,
            backoff_base_s=0.01,
            backoff_cap_s=0.05,
        )
        yield JobRunner(
            client=client,
            journal=journal,
            jobs=jobs,
            high_water=None,
            job_credits=500,
            call_credits=1,
            poll_deadline_s=30.0,
            stop=asyncio.Event(),
        )
    finally:
        await session.close()


def insert_lines(count: int) -> tuple[list[JobLine], list[Change]]:
    changes = [
        Change(
            "Leads",
            Operation.INSERT,
            {"Last_Name": f"L{n}", "Company": "Acme"},
            f"@jsonl:feed#{n + 1}",
            [SourcePosition(n, 10 * (n + 1), n + 1)],
        )
        for n in range(count)
    ]
    lines = [
        JobLine(c.key or "", n + 1, "jsonl:feed", encode_payload(c)) for n, c in enumerate(changes)
    ]
    return lines, changes


async def test_insert_job_of_unknown_creation_goes_to_the_records_path(
    sim: SimHandle, tmp_path: Path
) -> None:
    """An insert job journaled `uploaded` (killed before its job id) is never created:
    its rows become pending records rows the records pass re-drives; the high water
    moves past them so the feed's lines count as settled."""
    journal = await Journal.open(tmp_path / "j.db", holder="test", commit_process=True)
    jobs = JobsJournal(journal.path)
    try:
        lines, changes = insert_lines(5)
        file = plan_files(
            "Leads", Operation.INSERT, [c.record for c in changes], find_by=None
        ).files[0]
        job = jobs.plan(
            source="jsonl:feed",
            module="Leads",
            operation=Operation.INSERT,
            find_by=None,
            lines=lines,
            last=Checkpoint(50, 5),
        )
        async with runner_for(sim, journal, jobs) as runner:
            jobs.uploaded(job, await runner._client.upload(file))
            (left,) = jobs.unfinished()
            assert (left.state, left.file_id) == ("uploaded", job.file_id)
            await runner.resume(left)
        assert sim.state.stats.bulk_jobs == 0
        assert jobs.unfinished() == []
        pending = [change async for change in journal.due(float("inf"))]
        assert sorted(c.key or "" for c in pending) == sorted(line.key for line in lines)
        assert await journal.high_water("jsonl:feed") == Checkpoint(50, 5)
        rows = await journal.settled_positions("jsonl:feed", [line.key for line in lines])
        assert rows == {line.key: line.position for line in lines}
        assert {orjson.loads(line.payload)["key"] for line in lines} == set(rows)
        assert (await journal.counts())["pending"] == 5
        failed_or_pending = await journal.failures()
        assert failed_or_pending == []  # handed over, not failed
        assert all(change.attempts == 1 for change in pending)
    finally:
        jobs.close()
        await journal.close()


async def test_created_job_is_polled_not_sent_again(sim: SimHandle, tmp_path: Path) -> None:
    """A job journaled with its id is read back; no upload, no second job."""
    journal = await Journal.open(tmp_path / "j.db", holder="test", commit_process=True)
    jobs = JobsJournal(journal.path)
    try:
        lines, changes = insert_lines(4)
        file = plan_files(
            "Leads", Operation.INSERT, [c.record for c in changes], find_by=None
        ).files[0]
        job = jobs.plan(
            source="jsonl:feed",
            module="Leads",
            operation=Operation.INSERT,
            find_by=None,
            lines=lines,
            last=Checkpoint(40, 4),
        )
        async with runner_for(sim, journal, jobs) as runner:
            jobs.uploaded(job, await runner._client.upload(file))
            assert job.file_id is not None
            jobs.created(job, await runner._client.create_job(file, job.file_id))
            uploads, created = sim.state.stats.bulk_uploads, sim.state.stats.bulk_jobs
            (left,) = jobs.unfinished()
            await runner.resume(left)
            assert runner.counts.synced == 4
        assert (sim.state.stats.bulk_uploads, sim.state.stats.bulk_jobs) == (uploads, created)
        assert (await journal.counts())["synced"] == 4
        assert len(sim.state.store.records["Leads"]) == 4
    finally:
        jobs.close()
        await journal.close()

"""The bulk-write client against the simulator in-process: jobs, failures, drops, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from syncengine.crm.auth import TokenProvider
from syncengine.crm.bulk_answers import (
    BulkPollTimeoutError,
    BulkRefusedError,
    BulkUnavailableError,
    JobPhase,
)
from syncengine.crm.bulk_csv import BulkPlan, find_by_for, plan_files
from syncengine.crm.bulk_write import BulkWriteClient
from syncengine.crm.session import make_session
from syncengine.crm.token_store import MemoryTokenStore
from syncengine.model import Operation, Verdict
from syncengine.sim import SimHandle
from tests.crm.conftest import DEMO_CLIENT_ID, DEMO_REFRESH, DEMO_SECRET, seed


@dataclass
class SimTime:
    """The client's clock and sleep, tied to the simulator's clock: waiting moves both."""

    sim: SimHandle
    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        self.sim.state.clock.advance(seconds)
        await asyncio.sleep(0)


@asynccontextmanager
async def bulk_client(sim: SimHandle, time: SimTime) -> AsyncIterator[BulkWriteClient]:
    """A bulk client on a fresh session and token provider for `sim`."""
    session = make_session(concurrency=4, connect_timeout_s=5.0)
    try:
        tokens = TokenProvider(
            session=session,
            accounts_url=sim.base_url,
            client_id=DEMO_CLIENT_ID,
            client_secret=DEMO_SECRET,
            refresh_token=DEMO_REFRESH,
            store=MemoryTokenStore(),
        )
        yield BulkWriteClient(
            session=session,
            api_domain=sim.base_url,
            upload_url=sim.base_url,
            tokens=tokens,
            sleep=time.sleep,
            clock=time.clock,
            backoff_base_s=0.01,
            backoff_cap_s=0.05,
        )
    finally:
        await session.close()


def leads(count: int, *, start: int = 0) -> list[dict[str, object]]:
    return [
        {"Last_Name": f"Lead {n}", "Company": "Acme", "Email": f"lead{n}@example.org"}
        for n in range(start, start + count)
    ]


async def test_insert_job_synced_with_ids(sim: SimHandle) -> None:
    """Every row ADDED comes back SYNCED with the new record's id, in input order."""
    time = SimTime(sim)
    sim.state.set_config({"bulk_queue_s": 5.0, "bulk_job_s": 20.0})
    records = leads(3)
    plan = plan_files("Leads", Operation.INSERT, records, find_by=None)
    async with bulk_client(sim, time) as client:
        outcomes = await client.run(plan.files[0], deadline_s=600.0)
    assert [o.verdict for o in outcomes] == [Verdict.SYNCED] * 3
    for record, outcome in zip(records, outcomes, strict=True):
        assert outcome.crm_id is not None
        stored = sim.state.store.get("Leads", outcome.crm_id)
        assert stored is not None
        assert stored.fields["Email"] == record["Email"]
    assert time.slept[:2] == [10.0, 20.0]  # polls back off from 10 s
    assert sim.state.stats.credits_used == 500 + 1  # the job, and one read of the org


async def test_partial_failures_are_classified(sim: SimHandle) -> None:
    """Row errors come back with the records API's codes and verdicts."""
    records = leads(3)
    records[1]["Email"] = "not-an-email"
    records[2]["Email"] = records[0]["Email"]  # DUPLICATE_DATA against row 0
    plan = plan_files("Leads", Operation.INSERT, records, find_by=None)
    async with bulk_client(sim, SimTime(sim)) as client:
        outcomes = await client.run(plan.files[0], deadline_s=60.0)
    assert [(o.verdict, o.code) for o in outcomes] == [
        (Verdict.SYNCED, "SUCCESS"),
        (Verdict.REJECT, "INVALID_DATA"),
        (Verdict.REJECT, "DUPLICATE_DATA"),
    ]
    assert outcomes[1].details["api_name"] == "Email"


async def test_update_and_upsert_find_records(sim: SimHandle) -> None:
    """Update by id and upsert by Email touch the existing records."""
    ids = await seed(sim.base_url, 2)
    email = sim.state.store.get("Leads", ids[1]).fields["Email"]  # type: ignore[union-attr]
    updates = [{"id": ids[0], "Company": "Bulk Updated"}]
    upserts = [{"Email": email, "Last_Name": "Upserted", "Company": "Co"}]
    async with bulk_client(sim, SimTime(sim)) as client:
        for operation, records in ((Operation.UPDATE, updates), (Operation.UPSERT, upserts)):
            find_by = find_by_for("Leads", operation)
            plan = plan_files("Leads", operation, records, find_by=find_by)
            (outcome,) = await client.run(plan.files[0], deadline_s=60.0)
            assert (outcome.verdict, outcome.details["status"]) == (Verdict.SYNCED, "UPDATED")
    assert sim.state.store.get("Leads", ids[0]).fields["Company"] == "Bulk Updated"  # type: ignore[union-attr]
    assert sim.state.store.get("Leads", ids[1]).fields["Last_Name"] == "Upserted"  # type: ignore[union-attr]


async def test_failed_job_rows_are_retried(sim: SimHandle) -> None:
    """A FAILED job claims nothing: every row RETRY with BULK_JOB_FAILED."""
    sim.state.set_config({"bulk_fault_fail": 1.0})
    plan = plan_files("Leads", Operation.INSERT, leads(2), find_by=None)
    async with bulk_client(sim, SimTime(sim)) as client:
        outcomes = await client.run(plan.files[0], deadline_s=60.0)
    assert [(o.verdict, o.code) for o in outcomes] == [(Verdict.RETRY, "BULK_JOB_FAILED")] * 2


async def test_dropped_download_is_fetched_again(sim: SimHandle) -> None:
    """Two downloads cut halfway, then the whole file: outcomes as if nothing happened."""
    sim.state.set_config({"bulk_drop_downloads": 2})
    time = SimTime(sim)
    plan = plan_files("Leads", Operation.INSERT, leads(2), find_by=None)
    async with bulk_client(sim, time) as client:
        outcomes = await client.run(plan.files[0], deadline_s=60.0)
    assert [o.verdict for o in outcomes] == [Verdict.SYNCED] * 2
    assert sim.state.stats.dropped == 2
    assert len(sim.state.store.records["Leads"]) == 2


async def test_resume_a_journaled_job_without_uploading_again(sim: SimHandle) -> None:
    """A job id kept from an earlier process is polled and read by a new client."""
    sim.state.set_config({"bulk_job_s": 3_600.0})
    records = leads(2)
    plan = plan_files("Leads", Operation.INSERT, records, find_by=None)
    time = SimTime(sim)
    async with bulk_client(sim, time) as first:
        file_id = await first.upload(plan.files[0])
        job_id = await first.create_job(plan.files[0], file_id)
        with pytest.raises(BulkPollTimeoutError) as timed_out:
            await first.poll(job_id, deadline_s=30.0)
    assert timed_out.value.job_id == job_id
    assert timed_out.value.last is not None
    assert timed_out.value.last.phase is JobPhase.RUNNING
    uploads = len(sim.state.bulk.uploads)
    rebuilt = plan_files("Leads", Operation.INSERT, records, find_by=None).files[0]
    async with bulk_client(sim, time) as second:
        status = await second.poll(job_id, deadline_s=7_200.0)
        outcomes = await second.outcomes(rebuilt, status)
    assert [o.verdict for o in outcomes] == [Verdict.SYNCED] * 2
    assert len(sim.state.bulk.uploads) == uploads
    assert len(sim.state.bulk.jobs) == 1


async def test_unknown_job_is_refused(sim: SimHandle) -> None:
    """Polling a job the CRM does not know is a refusal naming RESOURCE_NOT_FOUND."""
    async with bulk_client(sim, SimTime(sim)) as client:
        with pytest.raises(BulkRefusedError) as refused:
            await client.poll("4876876000999999999", deadline_s=60.0)
    assert refused.value.code == "RESOURCE_NOT_FOUND"


async def test_job_without_credits_is_unavailable_not_fatal(sim: SimHandle) -> None:
    """429 for spent credits is retried, then reported as unavailable (nothing created)."""
    sim.state.set_config({"credits": 100})
    plan = plan_files("Leads", Operation.INSERT, leads(1), find_by=None)
    async with bulk_client(sim, SimTime(sim)) as client:
        file_id = await client.upload(plan.files[0])
        with pytest.raises(BulkUnavailableError) as failed:
            await client.create_job(plan.files[0], file_id)
    assert failed.value.code == "TOO_MANY_REQUESTS"
    assert sim.state.bulk.jobs == {}


async def test_25001_records_make_two_jobs(sim: SimHandle) -> None:
    """25,000 rows per file: 25,001 records go as two jobs, all synced, 1,000 credits."""
    records = leads(25_001)
    plan: BulkPlan = plan_files("Leads", Operation.INSERT, records, find_by=None)
    assert [len(f.positions) for f in plan.files] == [25_000, 1]
    async with bulk_client(sim, SimTime(sim)) as client:
        outcomes = await client.run_plan(plan, len(records), deadline_s=60.0)
    assert all(o is not None and o.verdict is Verdict.SYNCED for o in outcomes)
    assert len(sim.state.store.records["Leads"]) == 25_001
    assert len(sim.state.bulk.jobs) == 2
    assert sim.state.stats.credits_used == 2 * 500 + 1  # two jobs, one org read

"""After a killed run: an insert it sent may be in the CRM with its answer lost.

The killed process took its memory of unanswered sends with it, so the next
run's client is told when the killed run began (`lost_answers_since`, from the
journal's runs). A resent insert answered `DUPLICATE_DATA` by a record created
while the killed run was alive that holds every value sent is its own first
copy; an older or newer record, or one holding other values, is a real
duplicate and the failure stands.
"""

from __future__ import annotations

import time
from pathlib import Path

from syncengine.crm.client import CrmClient, WriteRequest
from syncengine.crm.resent_inserts import CLOCK_SKEW_S, created_within
from syncengine.journal import Journal
from syncengine.model import Operation, RecordOutcome, Verdict
from syncengine.sim.server import running_simulator
from tests.crm.conftest import Stack, crm_stack


def account(name: str, phone: str = "555-0100") -> WriteRequest:
    return WriteRequest("Accounts", Operation.INSERT, [{"Account_Name": name, "Phone": phone}])


async def resend_after_kill(
    first: WriteRequest, again: WriteRequest, *, killed_run_began: float, now: float | None = None
) -> tuple[RecordOutcome, RecordOutcome, CrmClient]:
    """`first` sent by one client, `again` by a fresh one started after a killed run."""
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        [created] = await stack.client.write(first)
        window = (killed_run_began, time.time() if now is None else now)
        client = fresh_client(stack, sim.base_url, window)
        [answer] = await client.write(again)
    return created, answer, client


def fresh_client(stack: Stack, base_url: str, lost_answers: tuple[float, float]) -> CrmClient:
    return CrmClient(
        session=stack.session,
        api_domain=base_url,
        tokens=stack.tokens,
        limiter=stack.limiter,
        lost_answers=lost_answers,
    )


async def test_an_insert_created_since_the_killed_run_began_is_its_own_first_copy() -> None:
    created, answer, client = await resend_after_kill(
        account("Acme"), account("Acme"), killed_run_began=time.time() - 60
    )
    assert created.verdict is Verdict.SYNCED
    assert (answer.verdict, answer.code, answer.crm_id) == (
        Verdict.SYNCED,
        "SUCCESS",
        created.crm_id,
    )
    assert client.stats.duplicates_resolved == 1


async def test_a_record_older_than_the_killed_run_is_a_real_duplicate() -> None:
    _, answer, client = await resend_after_kill(
        account("Acme"), account("Acme"), killed_run_began=time.time() + 2 * CLOCK_SKEW_S
    )
    assert (answer.verdict, answer.code) == (Verdict.REJECT, "DUPLICATE_DATA")
    assert client.stats.duplicates_checked == 1
    assert client.stats.duplicates_resolved == 0


async def test_a_record_newer_than_this_run_is_a_real_duplicate() -> None:
    """Created after this run began: this run's own insert from another row, not a lost one."""
    began = time.time() - 3600
    _, answer, client = await resend_after_kill(
        account("Acme"), account("Acme"), killed_run_began=began, now=began + CLOCK_SKEW_S
    )
    assert (answer.verdict, answer.code) == (Verdict.REJECT, "DUPLICATE_DATA")
    assert client.stats.duplicates_resolved == 0


async def test_a_record_holding_other_values_is_a_real_duplicate() -> None:
    _, answer, client = await resend_after_kill(
        account("Acme", phone="555-0199"), account("Acme"), killed_run_began=time.time() - 60
    )
    assert (answer.verdict, answer.code) == (Verdict.REJECT, "DUPLICATE_DATA")
    assert client.stats.duplicates_resolved == 0


def test_created_within_reads_the_crm_time_with_its_offset() -> None:
    window = (1_700_000_000.0, 1_700_003_600.0)  # 2023-11-14T22:13:20Z, an hour
    assert created_within({"Created_Time": "2023-11-15T03:43:20+05:30"}, window)
    assert created_within({"Created_Time": "2023-11-14T22:10:00+00:00"}, window)  # skew
    assert created_within({"Created_Time": "2023-11-14T23:15:00+00:00"}, window)  # skew
    assert not created_within({"Created_Time": "2023-11-14T21:00:00+00:00"}, window)
    assert not created_within({"Created_Time": "2023-11-15T00:00:00+00:00"}, window)
    assert not created_within({"Created_Time": "2023-11-14T22:13:20"}, window)  # no offset
    assert not created_within({"Created_Time": "yesterday"}, window)
    assert not created_within({}, window)


async def test_the_journal_tells_when_the_killed_runs_began(tmp_path: Path) -> None:
    """The earliest of the unfinished runs after the last finished one; None after a clean end."""
    async with await Journal.open(tmp_path / "journal.db", holder="test") as journal:
        assert await journal.killed_runs_since() is None
        clean = await journal.start_run("run", now=100.0)
        await journal.finish_run(clean, now=110.0, exit_status=0, counts={})
        assert await journal.killed_runs_since() is None
        await journal.start_run("run", now=200.0)  # killed
        await journal.start_run("run", now=300.0)  # killed too
        assert await journal.killed_runs_since() == 200.0
        last = await journal.start_run("run", now=400.0)
        await journal.finish_run(last, now=410.0, exit_status=0, counts={})
        assert await journal.killed_runs_since() is None

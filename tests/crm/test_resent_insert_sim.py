"""An insert applied, its answer lost, then resent: DUPLICATE_DATA is read back, not failed."""

from __future__ import annotations

from pathlib import Path

import orjson

from syncengine.crm.client import WriteRequest
from syncengine.crm.resent_inserts import UnansweredInserts, existing_id, holds_values
from syncengine.model import Operation, Verdict
from syncengine.sim.server import running_simulator
from tests.crm.conftest import admin, crm_stack, records
from tests.integration.conftest import run_cli, sim_leads, write_config, write_feed


def lead(n: int, company: str = "Acme") -> dict[str, object]:
    return {"Last_Name": f"Doe {n}", "Email": f"lead{n}@example.com", "Company": company}


def inserts(*rows: dict[str, object]) -> WriteRequest:
    return WriteRequest("Leads", Operation.INSERT, list(rows))


async def test_a_resend_meeting_its_own_first_copy_is_synced_with_that_id() -> None:
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        await admin(sim.base_url, "POST", "config", {"fault_drop_after": 1.0})
        first = await stack.client.write(inserts(lead(1), lead(2)))
        assert {o.code for o in first} == {"CONNECTION_ERROR"}  # applied, answer lost
        await admin(sim.base_url, "POST", "config", {"fault_drop_after": 0.0})
        again = await stack.client.write(inserts(lead(1), lead(2)))
        stored = await records(sim.base_url)
    assert len(stored) == 2
    by_email = {fields["fields"]["Email"]: record_id for record_id, fields in stored.items()}
    assert [(o.verdict, o.code) for o in again] == [(Verdict.SYNCED, "SUCCESS")] * 2
    assert [o.crm_id for o in again] == [
        by_email["lead1@example.com"],
        by_email["lead2@example.com"],
    ]
    assert stack.client.stats.duplicates_resolved == 2


async def test_a_real_duplicate_after_an_unanswered_send_still_fails() -> None:
    """The existing record holds other values: it is someone else's, the failure stands."""
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        [created] = await stack.client.write(inserts(lead(1, company="Other Inc")))
        assert created.verdict is Verdict.SYNCED
        await admin(sim.base_url, "POST", "config", {"fault_500": 1.0})
        [lost] = await stack.client.write(inserts(lead(1)))
        assert lost.code == "INTERNAL_ERROR"
        await admin(sim.base_url, "POST", "config", {"fault_500": 0.0})
        [again] = await stack.client.write(inserts(lead(1)))
    assert (again.verdict, again.code) == (Verdict.REJECT, "DUPLICATE_DATA")
    assert stack.client.stats.duplicates_checked == 1
    assert stack.client.stats.duplicates_resolved == 0


async def test_a_duplicate_never_sent_before_is_not_read_back() -> None:
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        await stack.client.write(inserts(lead(1)))
        [again] = await stack.client.write(inserts(lead(1)))
    assert (again.verdict, again.code) == (Verdict.REJECT, "DUPLICATE_DATA")
    assert stack.client.stats.duplicates_checked == 0


def test_pure_parts() -> None:
    memory = UnansweredInserts(limit=2)
    memory.remember("Leads", {"a": 1, "b": 2})
    assert memory.take("Leads", {"b": 2, "a": 1})  # same content, any key order
    assert not memory.take("Leads", {"b": 2, "a": 1})  # taken once
    assert not memory.take("Contacts", {"a": 1})
    assert existing_id({"api_name": "Email", "id": "42"}) == "42"
    assert existing_id({"duplicate_record": {"id": 43}}) == "43"
    assert existing_id({}) is None
    assert holds_values({"id": "1", "$x": 1, "Email": "a", "Owner": {"id": 7}, "N": 2},
                        {"Email": "a", "Owner": {"id": "7", "name": "x"}, "N": "2"})  # fmt: skip
    assert not holds_values({"Email": "a", "Company": "X"}, {"Email": "a", "Company": "Y"})
    assert not holds_values({"Flag": True}, {"Flag": 1})


async def test_a_run_of_inserts_with_answers_lost_ends_synced_without_failures(
    tmp_path: Path,
) -> None:
    """A real `syncengine run`: a fifth of the writes applied with no answer; all synced once."""
    async with running_simulator(admin=True, fault_drop_after=0.2, seed=1) as sim:
        path = write_config(tmp_path, sim, operation="insert")
        # One drop in five: a record whose every try is dropped would fail as
        # CONNECTION_ERROR, which is not what this test is about.
        path.write_text(path.read_text().replace("max_attempts = 8", "max_attempts = 30"))
        write_feed(tmp_path / "changes.jsonl", [lead(n) for n in range(2000)])
        result = await run_cli("run", "--config", str(path), cwd=tmp_path)
        failures = await run_cli("failures", "--config", str(path), "--json", cwd=tmp_path)
        leads = await sim_leads(sim)
        stats = await admin(sim.base_url, "GET", "stats")
    assert stats["dropped"] > 0
    assert orjson.loads(failures.stdout) == [], failures.stdout
    assert result.returncode == 0, result.stderr
    assert len(leads) == 2000

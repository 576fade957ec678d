"""Refusals a person must resolve, and business rules that hold one record (crm-api.md §1.6-1.7).

The simulator answers them on demand (`refuse_with`, `fault_blueprint`,
`fault_not_approved`, `fault_locked`); the real client and a real `syncengine
run` process must give each its documented class:

* whole-request refusals (403 `NO_PERMISSION`, 400 `AUTHORIZATION_FAILED`,
  403 `FEATURE_NOT_SUPPORTED`, 400 `LICENSE_LIMIT_EXCEEDED`) are fatal: the
  run ends with exit 3 and a one-line error naming the code, nothing synced,
  nothing resent or split;
* per-record business rules (`RECORD_IN_BLUEPRINT`, `NOT_APPROVED`) fail
  only the records they hold (exit 1), with the code in `failures --json`;
* `RECORD_LOCKED` is retried (the record is busy, not wrong).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from syncengine.crm.client import WriteRequest
from syncengine.errors import FatalError
from syncengine.model import Operation, Verdict
from syncengine.sim.server import SimHandle, running_simulator
from tests.crm.conftest import crm_stack, records, seed, stats
from tests.integration.conftest import (
    FIRST_ID,
    admin_post,
    failures_json,
    lead_updates,
    run_cli,
    seed_leads,
    sim_leads,
    write_config,
    write_feed,
)

#: Whole-request refusal → the HTTP status the simulator answers it with (§1.7).
REFUSALS = {
    "NO_PERMISSION": 403,
    "AUTHORIZATION_FAILED": 400,
    "FEATURE_NOT_SUPPORTED": 403,
    "LICENSE_LIMIT_EXCEEDED": 400,
}
#: Business-rule knob → the per-record code it produces.
RULES = {"fault_blueprint": "RECORD_IN_BLUEPRINT", "fault_not_approved": "NOT_APPROVED"}


def update(ids: list[str], value: str) -> WriteRequest:
    """An update of `ids` setting Company to `value`."""
    return WriteRequest("Leads", Operation.UPDATE, [{"id": i, "Company": value} for i in ids])


@pytest.mark.parametrize(("code", "status"), sorted(REFUSALS.items()))
async def test_the_client_stops_on_a_whole_request_refusal(code: str, status: int) -> None:
    """One request, one refusal: FatalError naming status and code; not resent, not split."""
    async with (
        running_simulator(admin=True, refuse_with=code) as sim,
        crm_stack(sim.base_url, configured_module="Leads") as stack,
    ):
        ids = await seed(sim.base_url, 5)
        with pytest.raises(FatalError) as caught:
            await stack.client.write(update(ids, "Refused"))
        answered = await stats(sim.base_url)
        stored = await records(sim.base_url)
    reason = str(caught.value)
    assert f"HTTP {status} {code}" in reason
    assert "\n" not in reason
    assert answered["by_code"][code] == 1
    refused = {key: n for key, n in answered["by_status"].items() if key != "200"}  # 200: token
    assert refused == {str(status): 1}
    assert all(stored[i]["writes"] == 0 for i in ids)


@pytest.mark.parametrize(("knob", "code"), sorted(RULES.items()))
async def test_a_business_rule_fails_only_the_records_it_holds(knob: str, code: str) -> None:
    """Half the records held (seeded draw): those are rejected, the rest written."""
    async with (
        running_simulator(admin=True, seed=3, **{knob: 0.5}) as sim,
        crm_stack(sim.base_url) as stack,
    ):
        ids = await seed(sim.base_url, 20)
        outcomes = await stack.client.write(update(ids, "Ruled"))
        stored = await records(sim.base_url)
    rejected = {i for i, o in zip(ids, outcomes, strict=True) if o.verdict is Verdict.REJECT}
    assert 0 < len(rejected) < len(ids)
    assert {o.code for o in outcomes if o.verdict is Verdict.REJECT} == {code}
    assert {o.verdict for o in outcomes} == {Verdict.REJECT, Verdict.SYNCED}
    for record_id in ids:
        written = stored[record_id]["fields"].get("Company") == "Ruled"
        assert written is (record_id not in rejected)


async def test_a_locked_record_comes_back_for_a_retry() -> None:
    """RECORD_LOCKED is no verdict on the record: RETRY, with the code kept."""
    async with (
        running_simulator(admin=True, fault_locked=1.0) as sim,
        crm_stack(sim.base_url) as stack,
    ):
        ids = await seed(sim.base_url, 2)
        outcomes = await stack.client.write(update(ids, "Locked"))
    assert {(o.verdict, o.code) for o in outcomes} == {(Verdict.RETRY, "RECORD_LOCKED")}


async def status_json(config: Path, cwd: Path) -> dict[str, Any]:
    """`syncengine status --json`, decoded."""
    result = await run_cli("status", "-c", str(config), "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = orjson.loads(result.stdout)
    return document


@pytest.mark.parametrize("code", sorted(REFUSALS))
async def test_a_run_ends_with_exit_3_on_a_refusal(
    sim: SimHandle, tmp_path: Path, code: str
) -> None:
    """`syncengine run` stops: exit 3, one error line naming the code, no record synced."""
    await seed_leads(sim, 4)
    await admin_post(sim, "config", {"refuse_with": code})
    write_feed(tmp_path / "changes.jsonl", lead_updates(4))
    config = write_config(tmp_path, sim)

    result = await run_cli("run", "-c", str(config), cwd=tmp_path)

    assert result.returncode == 3, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("syncengine: error:")]
    assert len(errors) == 1, result.stderr
    assert code in errors[0]
    assert "Traceback" not in result.stderr
    assert (await status_json(config, tmp_path))["records"]["synced"] == 0
    leads = await sim_leads(sim)
    assert all(leads[str(FIRST_ID + n)]["writes"] == 0 for n in range(4))


@pytest.mark.parametrize(("knob", "code"), sorted(RULES.items()))
async def test_a_run_fails_only_the_held_records(
    sim: SimHandle, tmp_path: Path, knob: str, code: str
) -> None:
    """Exit 1: the held records are in `failures --json` with the code, the others synced."""
    await seed_leads(sim, 12)
    await admin_post(sim, "config", {knob: 0.5, "seed": 11})
    write_feed(tmp_path / "changes.jsonl", lead_updates(12))
    config = write_config(tmp_path, sim)

    result = await run_cli("run", "-c", str(config), cwd=tmp_path)

    assert result.returncode == 1, result.stderr
    rows = await failures_json(config, tmp_path)
    assert rows
    assert {row["code"] for row in rows} == {code}
    assert all(row["attempts"] == 1 for row in rows)  # permanent: never resent
    leads = await sim_leads(sim)
    unwritten = {rid for rid, lead in leads.items() if lead["writes"] == 0}
    assert {row["id"] for row in rows} == unwritten
    records_state = (await status_json(config, tmp_path))["records"]
    assert records_state == {"synced": 12 - len(rows), "pending": 0, "failed": len(rows)}


async def test_a_run_retries_a_locked_record(sim: SimHandle, tmp_path: Path) -> None:
    """RECORD_LOCKED is sent again up to max_attempts, then failed with the code (exit 1)."""
    await seed_leads(sim, 2)
    await admin_post(sim, "config", {"fault_locked": 1.0})
    write_feed(tmp_path / "changes.jsonl", lead_updates(2))
    config = write_config(tmp_path, sim)
    config.write_text(config.read_text().replace("max_attempts = 8", "max_attempts = 3"))

    result = await run_cli("run", "-c", str(config), cwd=tmp_path)

    assert result.returncode == 1, result.stderr
    rows = await failures_json(config, tmp_path)
    assert {(row["code"], row["attempts"]) for row in rows} == {("RECORD_LOCKED", 3)}
    assert (await stats(sim.base_url))["by_code"]["RECORD_LOCKED"] == 6

"""CrmClient against the in-process simulator: outcomes by position, faults, fatal codes."""

from __future__ import annotations

import pytest

from syncengine.crm.client import WriteRequest
from syncengine.errors import FatalError
from syncengine.model import Operation, Verdict
from syncengine.sim.server import running_simulator
from tests.crm.conftest import crm_stack, records, seed, stats


def update(records_: list[dict[str, object]], **kwargs: object) -> WriteRequest:
    return WriteRequest("Leads", Operation.UPDATE, records_, **kwargs)  # type: ignore[arg-type]


async def test_update_all_ok_syncs_every_record() -> None:
    """Ten valid updates come back SYNCED with their ids, and the CRM holds the values."""
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        ids = await seed(sim.base_url, 10)
        outcomes = await stack.client.write(
            update([{"id": i, "Company": f"Acme {n}"} for n, i in enumerate(ids)])
        )
        stored = await records(sim.base_url)
    assert [o.verdict for o in outcomes] == [Verdict.SYNCED] * 10
    assert [o.crm_id for o in outcomes] == ids
    assert stored[ids[3]]["fields"]["Company"] == "Acme 3"
    assert stack.client.stats.by_status[200] == 1


@pytest.mark.parametrize("partial_status", [202, 207])
async def test_mixed_partial_answer_maps_by_position(partial_status: int) -> None:
    """A 202 or 207 with mixed results gives each record its own outcome, in order."""
    async with (
        running_simulator(admin=True, partial_status=partial_status) as sim,
        crm_stack(sim.base_url) as stack,
    ):
        ids = await seed(sim.base_url, 3)
        outcomes = await stack.client.write(
            update(
                [
                    {"id": ids[0], "Company": "Fine"},
                    {"id": ids[1], "Email": "not an email"},
                    {"id": "4876876999999999999", "Company": "Nobody"},
                    {"id": ids[2], "Company": "Also fine"},
                ]
            )
        )
    assert stack.client.stats.by_status[partial_status] == 1
    assert [o.verdict for o in outcomes] == [
        Verdict.SYNCED,
        Verdict.REJECT,
        Verdict.REJECT,
        Verdict.SYNCED,
    ]
    assert outcomes[1].code == "INVALID_DATA"
    assert outcomes[1].details.get("api_name") == "Email"
    assert outcomes[2].message == "the id given seems to be invalid"
    assert outcomes[3].crm_id == ids[2]


async def test_all_failed_400_rejects_each_record() -> None:
    """A 400 whose data[] fails every record rejects each one, without splitting."""
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        ids = await seed(sim.base_url, 4)
        outcomes = await stack.client.write(update([{"id": i, "Email": "bad"} for i in ids]))
        counts = await stats(sim.base_url)
    assert stack.client.stats.by_status[400] == 1
    assert {o.verdict for o in outcomes} == {Verdict.REJECT}
    assert stack.client.stats.split_requests == 0
    assert counts["by_status"].get("400") == 1


async def test_insert_learns_new_ids_and_upsert_passes_duplicate_check_fields() -> None:
    """Inserts return the new record ids; an upsert by Email updates the existing record."""
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        inserted = await stack.client.write(
            WriteRequest(
                "Leads",
                Operation.INSERT,
                [{"Last_Name": "Kim", "Company": "Acme", "Email": "kim@example.org"}],
            )
        )
        upserted = await stack.client.write(
            WriteRequest(
                "Leads",
                Operation.UPSERT,
                [{"Last_Name": "Kim", "Company": "Acme 2", "Email": "kim@example.org"}],
                duplicate_check_fields=("Email",),
            )
        )
        stored = await records(sim.base_url)
    assert inserted[0].verdict is Verdict.SYNCED
    assert inserted[0].crm_id is not None
    assert upserted[0].crm_id == inserted[0].crm_id
    assert stored[inserted[0].crm_id]["fields"]["Company"] == "Acme 2"


@pytest.mark.parametrize(("trigger", "runs"), [(None, 2), ((), 0)])
async def test_trigger_absent_runs_workflows_empty_runs_none(
    trigger: tuple[str, ...] | None, runs: int
) -> None:
    """trigger=None omits the key (automation runs); () sends [] (none runs)."""
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        ids = await seed(sim.base_url, 2)
        await stack.client.write(update([{"id": i, "Company": "X"} for i in ids], trigger=trigger))
        counts = await stats(sim.base_url)
    assert counts["workflow_runs"] == runs


async def test_append_values_pass_through() -> None:
    """`$append_values` reaches the CRM untouched: the option is appended, not replaced."""
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        ids = await seed(sim.base_url, 1)
        await stack.client.write(update([{"id": ids[0], "Languages": ["French"]}]))
        outcomes = await stack.client.write(
            update([{"id": ids[0], "Languages": ["German"], "$append_values": {"Languages": True}}])
        )
        stored = await records(sim.base_url)
    assert outcomes[0].verdict is Verdict.SYNCED
    assert stored[ids[0]]["fields"]["Languages"] == ["French", "German"]


async def test_record_locked_is_retried_per_record() -> None:
    """A per-record RECORD_LOCKED comes back RETRY (transient for that record)."""
    async with (
        running_simulator(admin=True, fault_locked=1.0) as sim,
        crm_stack(sim.base_url) as stack,
    ):
        ids = await seed(sim.base_url, 3)
        outcomes = await stack.client.write(update([{"id": i, "Company": "X"} for i in ids]))
    assert {(o.verdict, o.code) for o in outcomes} == {(Verdict.RETRY, "RECORD_LOCKED")}


async def test_server_error_returns_retry_for_every_record_without_resending() -> None:
    """A 500 is not retried inside write: each record comes back RETRY INTERNAL_ERROR."""
    async with (
        running_simulator(admin=True, fault_500=1.0) as sim,
        crm_stack(sim.base_url) as stack,
    ):
        ids = await seed(sim.base_url, 5)
        outcomes = await stack.client.write(update([{"id": i, "Company": "X"} for i in ids]))
        counts = await stats(sim.base_url)
    assert {(o.verdict, o.code) for o in outcomes} == {(Verdict.RETRY, "INTERNAL_ERROR")}
    assert counts["by_status"] == {"200": 1, "500": 1}  # one token call, one write


async def test_stall_past_the_timeout_is_a_timeout_for_every_record() -> None:
    """A request that outlives total_timeout_s comes back RETRY TIMEOUT, never synced."""
    async with (
        running_simulator(admin=True, fault_stall=1.0, stall_s=2.0) as sim,
        crm_stack(sim.base_url, total_timeout_s=0.2) as stack,
    ):
        ids = await seed(sim.base_url, 2)
        outcomes = await stack.client.write(update([{"id": i, "Company": "X"} for i in ids]))
    assert {(o.verdict, o.code) for o in outcomes} == {(Verdict.RETRY, "TIMEOUT")}
    assert stack.client.stats.by_code["TIMEOUT"] == 1


async def test_scope_mismatch_is_fatal_with_a_one_line_reason() -> None:
    """A token without the module's scope stops the run: FatalError naming the code."""
    async with (
        running_simulator(admin=True, scopes=("ZohoCRM.modules.Contacts.ALL",)) as sim,
        crm_stack(sim.base_url) as stack,
    ):
        ids = await seed(sim.base_url, 1)
        with pytest.raises(FatalError) as caught:
            await stack.client.write(update([{"id": ids[0], "Company": "X"}]))
    assert "OAUTH_SCOPE_MISMATCH" in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_unknown_module_is_fatal() -> None:
    """A module the CRM does not know stops the run with INVALID_MODULE."""
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        with pytest.raises(FatalError, match="INVALID_MODULE"):
            await stack.client.write(
                WriteRequest("Nope", Operation.UPDATE, [{"id": "1", "Company": "X"}])
            )


async def test_unencodable_record_is_rejected_alone() -> None:
    """A record JSON cannot carry fails as BAD_INPUT; its neighbours are still sent."""
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        ids = await seed(sim.base_url, 2)
        outcomes = await stack.client.write(
            update([{"id": ids[0], "Company": "\ud800"}, {"id": ids[1], "Company": "X"}])
        )
    assert [(o.verdict, o.code) for o in outcomes] == [
        (Verdict.REJECT, "BAD_INPUT"),
        (Verdict.SYNCED, "SUCCESS"),
    ]


def test_more_than_100_records_is_refused_before_sending() -> None:
    """A request of 101 records is a programming error, caught before any call."""
    with pytest.raises(ValueError):
        update([{"id": str(n)} for n in range(101)])


@pytest.mark.parametrize(
    ("features", "verdict"), [((), Verdict.SYNCED), (("layout_rules",), Verdict.REJECT)]
)
async def test_apply_feature_execution_passes_through(
    features: tuple[str, ...], verdict: Verdict
) -> None:
    """With layout_rules applied, a layout-mandated field missing on insert is refused."""
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        outcomes = await stack.client.write(
            WriteRequest(
                "Leads",
                Operation.INSERT,
                [{"Last_Name": "Lee", "Company": "Acme"}],
                apply_feature_execution=features,
            )
        )
    assert outcomes[0].verdict is verdict
    if verdict is Verdict.REJECT:
        assert (outcomes[0].code, outcomes[0].details.get("api_name")) == (
            "MANDATORY_NOT_FOUND",
            "Lead_Source",
        )

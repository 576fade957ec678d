"""`INVALID_MODULE` against the simulator: fatal for the configured module, per record otherwise."""

from __future__ import annotations

import pytest

from syncengine.crm.classification import refuses_feed_module
from syncengine.crm.client import WriteRequest
from syncengine.errors import FatalError
from syncengine.model import Operation, Verdict
from syncengine.sim.server import running_simulator
from tests.crm.conftest import crm_stack, records, seed, stats


@pytest.mark.parametrize(
    ("code", "module", "configured", "per_record"),
    [
        ("INVALID_MODULE", "Leadz", "Leads", True),
        ("INVALID_MODULE", "Leads", "Leads", False),
        ("INVALID_MODULE", "Leadz", None, False),
        ("OAUTH_SCOPE_MISMATCH", "Contacts", "Leads", False),
        ("NO_PERMISSION", "Contacts", "Leads", False),
    ],
)
def test_only_a_module_the_feed_names_is_refused_per_record(
    code: str, module: str, configured: str | None, per_record: bool
) -> None:
    assert refuses_feed_module(code, module, configured) is per_record


async def test_a_module_only_the_feed_names_fails_that_request_records() -> None:
    """Every record of a request to an unknown feed-named module is failed, not retried."""
    async with (
        running_simulator(admin=True) as sim,
        crm_stack(sim.base_url, configured_module="Leads") as stack,
    ):
        ids = await seed(sim.base_url, 2)
        outcomes = await stack.client.write(
            WriteRequest("Leadz", Operation.UPDATE, [{"id": i, "Company": "X"} for i in ids])
        )
        # The client goes on: the configured module is written as usual.
        written = await stack.client.write(
            WriteRequest("Leads", Operation.UPDATE, [{"id": ids[0], "Company": "Y"}])
        )
        stored = await records(sim.base_url)
        answered = await stats(sim.base_url)
    assert [(o.verdict, o.code) for o in outcomes] == [(Verdict.REJECT, "INVALID_MODULE")] * 2
    assert "invalid" in outcomes[0].message
    assert [o.verdict for o in written] == [Verdict.SYNCED]
    assert stored[ids[0]]["fields"]["Company"] == "Y"
    assert answered["by_code"]["INVALID_MODULE"] == 1  # refused once, never split or resent


async def test_the_configured_module_refused_stays_fatal() -> None:
    """`[crm] module` refused: nothing can be synced, the run stops with one line."""
    async with (
        running_simulator(admin=True) as sim,
        crm_stack(sim.base_url, configured_module="Leadz") as stack,
    ):
        with pytest.raises(FatalError, match="INVALID_MODULE") as caught:
            await stack.client.write(
                WriteRequest("Leadz", Operation.UPDATE, [{"id": "1", "Company": "X"}])
            )
    assert "\n" not in str(caught.value)

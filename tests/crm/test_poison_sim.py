"""Isolating a poison record (a 400 without data[]) by splitting the chunk.

The simulator's `poison_field` knob makes any write holding a record with
that field a bare 400 INVALID_DATA, the answer the real API gives for record
content it cannot parse; the client must split the chunk until only the bad
records fail.
"""

from __future__ import annotations

import math

import pytest

from syncengine.crm.client import WriteRequest
from syncengine.model import Operation, Verdict
from syncengine.sim.server import running_simulator
from tests.crm.conftest import crm_stack, records, seed

MARKER = "Poison_Marker"


@pytest.mark.parametrize("poisoned", [[0], [37], [99], [50], [10, 80]])
async def test_poison_records_are_isolated_and_the_rest_succeed(poisoned: list[int]) -> None:
    """Only the poison records fail; the others sync, within ⌈log2 100⌉+1 extra requests each."""
    async with running_simulator(admin=True, poison_field=MARKER) as sim:
        ids = await seed(sim.base_url, 100)
        batch: list[dict[str, object]] = [{"id": i, "Company": "Fine"} for i in ids]
        for index in poisoned:
            batch[index][MARKER] = True
        async with crm_stack(sim.base_url) as stack:
            outcomes = await stack.client.write(WriteRequest("Leads", Operation.UPDATE, batch))
            extra = stack.client.stats.requests - 1
        stored = await records(sim.base_url)
    bad = [n for n, o in enumerate(outcomes) if o.verdict is not Verdict.SYNCED]
    assert bad == poisoned
    assert all(outcomes[n].code == "INVALID_DATA" for n in poisoned)
    assert all(outcomes[n].verdict is Verdict.REJECT for n in poisoned)
    assert sum(stored[ids[n]]["writes"] for n in range(100)) == 100 - len(poisoned)
    bound = math.ceil(math.log2(100)) + 1
    print(f"poison at {poisoned}: {extra} extra requests (bound {bound} per poison record)")
    assert extra <= bound * len(poisoned)


async def test_single_record_poison_is_rejected_without_splitting() -> None:
    """A one-record request refused as a whole rejects that record; no further requests."""
    async with running_simulator(admin=True, poison_field=MARKER) as sim:
        ids = await seed(sim.base_url, 1)
        async with crm_stack(sim.base_url) as stack:
            outcomes = await stack.client.write(
                WriteRequest("Leads", Operation.UPDATE, [{"id": ids[0], MARKER: True}])
            )
            sent = stack.client.stats.requests
    assert (outcomes[0].verdict, outcomes[0].code) == (Verdict.REJECT, "INVALID_DATA")
    assert sent == 1

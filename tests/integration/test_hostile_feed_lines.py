"""Feed lines built to break the pass cost their own line only, with a real `run` process.

A value nested deeper than the JSON encoder can go used to stop every pass
for good (the journal write raised, the checkpoint never moved). It is a
`BAD_INPUT` found when the line is read; the rest of the feed is synced, and
the next run has nothing left to send.
"""

from __future__ import annotations

from pathlib import Path

from syncengine.sim.server import SimHandle
from tests.integration.conftest import (
    FIRST_ID,
    failures_json,
    lead_updates,
    run_cli,
    seed_leads,
    sim_leads,
    write_config,
    write_feed,
)


def nested(levels: int) -> bytes:
    """A lead update whose `Deep` field nests `levels` arrays."""
    return b'{"id": "1", "Company": "deep", "Deep": ' + b"[" * levels + b"]" * levels + b"}"


async def test_deeply_nested_lines_are_bad_input_and_the_feed_goes_on(
    sim: SimHandle, tmp_path: Path
) -> None:
    await seed_leads(sim, 10)
    rows: list[dict[str, object] | bytes] = list(lead_updates(10))
    rows[3] = nested(300)
    rows[6] = nested(1000)
    write_feed(tmp_path / "changes.jsonl", rows)
    config = write_config(tmp_path, sim)

    first = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr

    failures = await failures_json(config, tmp_path)
    assert sorted((row["position"], row["code"]) for row in failures) == [
        (4, "BAD_INPUT"),
        (7, "BAD_INPUT"),
    ]
    assert all("nested deeper than 64 levels" in row["message"] for row in failures)
    leads = await sim_leads(sim)
    sent = {str(FIRST_ID + index) for index in range(10) if index not in (3, 6)}
    assert all(leads[record_id]["writes"] == 1 for record_id in sent)
    assert all(leads[str(FIRST_ID + index)]["writes"] == 0 for index in (3, 6))

    second = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert await sim_leads(sim) == leads

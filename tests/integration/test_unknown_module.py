"""A module the CRM does not know, named by the feed or by the config, with a real `run`.

The config's own module refused (`INVALID_MODULE`) stops the run: nothing
could be synced. A module that only some feed lines name costs those lines:
they fail with `INVALID_MODULE` and their positions, and the feed goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

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


def unknown_module_line(index: int) -> dict[str, Any]:
    """An envelope naming a module the CRM does not have."""
    return {"module": "Leadz", "record": {"id": str(FIRST_ID + index), "Company": "nowhere"}}


async def test_a_module_named_by_the_feed_fails_its_lines_and_the_feed_goes_on(
    sim: SimHandle, tmp_path: Path
) -> None:
    await seed_leads(sim, 12)
    rows: list[dict[str, Any]] = lead_updates(12)
    rows[3] = unknown_module_line(3)
    rows[8] = unknown_module_line(8)
    write_feed(tmp_path / "changes.jsonl", rows)
    config = write_config(tmp_path, sim)

    first = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr

    failures = await failures_json(config, tmp_path)
    assert sorted((row["position"], row["code"]) for row in failures) == [
        (4, "INVALID_MODULE"),
        (9, "INVALID_MODULE"),
    ], failures
    leads = await sim_leads(sim)
    for index in range(12):
        stored = leads[str(FIRST_ID + index)]
        if index in (3, 8):
            assert stored["writes"] == 0
        else:
            assert stored["fields"]["Company"] == f"Company {index} v1"
    status = orjson.loads(
        (await run_cli("status", "-c", str(config), "--json", cwd=tmp_path)).stdout
    )
    assert status["records"] == {"synced": 10, "pending": 0, "failed": 2}, status

    second = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert second.returncode == 0, second.stderr


async def test_the_configured_module_refused_stops_the_run(sim: SimHandle, tmp_path: Path) -> None:
    await seed_leads(sim, 3)
    write_feed(tmp_path / "changes.jsonl", lead_updates(3))
    config = write_config(tmp_path, sim)
    config.write_text(
        config.read_text(encoding="utf-8").replace('module = "Leads"', 'module = "Leadz"'),
        encoding="utf-8",
    )

    result = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert "INVALID_MODULE" in result.stderr
    assert "Traceback" not in result.stderr
    assert all(lead["writes"] == 0 for lead in (await sim_leads(sim)).values())

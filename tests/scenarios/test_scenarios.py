"""Scripted fault scenarios (`*.toml` beside this file) with expected outcomes.

Each scenario configures the simulator's faults and the engine, runs `run`
passes in-process until everything is settled (at most `max_runs`), then
checks that the CRM holds exactly the last value of every record that is
reported synced, that rejected records are failed with the CRM's code, and
the expected bounds on throttling and token mints.
"""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import pytest

from syncengine.config import load_config
from syncengine.journal import Journal
from syncengine.runner import run_pass
from syncengine.sim.server import running_simulator
from tests.integration.conftest import (
    FIRST_ID,
    SECRET_ENV,
    lead_updates,
    seed_leads,
    sim_leads,
    write_config,
    write_feed,
)

SCENARIOS = sorted(Path(__file__).parent.glob("*.toml"))


def _feed(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    rows = lead_updates(scenario["records"])
    every = scenario.get("bad_email_every")
    if every:
        for index in range(0, len(rows), every):
            rows[index]["Email"] = f"bad-{index}"
    return rows


def _engine_config(folder: Path, sim: Any, engine: dict[str, Any]) -> Path:
    path = write_config(folder, sim, extra=f"timeout_s = {engine['timeout_s']}")
    text = path.read_text()
    text = text.replace("concurrency = 10", f"concurrency = {engine['concurrency']}")
    text = text.replace("max_attempts = 8", f"max_attempts = {engine['max_attempts']}")
    path.write_text(text)
    return path


@pytest.mark.parametrize("scenario_path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
async def test_scenario(scenario_path: Path, tmp_path: Path) -> None:
    """The scenario ends exact within its run budget and within its expected bounds."""
    scenario = tomllib.loads(scenario_path.read_text())
    rows = _feed(scenario)
    expect = scenario["expect"]
    async with running_simulator(port=0, admin=True, **scenario["sim"]) as sim:
        await seed_leads(sim, scenario["records"])
        write_feed(tmp_path / "changes.jsonl", rows)
        config = load_config(_engine_config(tmp_path, sim, scenario["engine"]), environ=SECRET_ENV)
        for _ in range(scenario["max_runs"]):
            await run_pass(config, command="run", stop=asyncio.Event())
            async with await Journal.open(config.journal.path) as journal:
                counts = await journal.counts()
            if counts["pending"] == 0:
                break
        leads = await sim_leads(sim)
        stats = sim.state.stats
    async with await Journal.open(config.journal.path) as journal:
        failed = {row.record_id: row.code for row in await journal.failures()}
    assert counts["pending"] == 0
    bad = {
        str(FIRST_ID + i)
        for i, row in enumerate(rows)
        if str(row.get("Email", "")).startswith("bad")
    }
    assert set(failed) == bad, failed
    assert set(failed.values()) <= {"INVALID_DATA"}
    assert counts["synced"] == scenario["records"] - len(bad)
    for index, row in enumerate(rows):
        record_id = str(FIRST_ID + index)
        if record_id not in failed:
            assert leads[record_id]["fields"]["Company"] == row["Company"], record_id
    assert stats.token_mints <= expect["max_token_mints"]
    if "max_throttled" in expect:
        assert stats.throttled <= expect["max_throttled"]
    print(
        f"{scenario_path.stem}: requests {stats.requests}, 429s {stats.throttled}, "
        f"mints {stats.token_mints}, written {stats.records_written}"
    )

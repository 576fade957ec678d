"""The daemon follows rotations, is stopped and started again: nothing written after is skipped.

A compact form of a long run with a rotation every few minutes and one
restart: after the daemon followed a rename rotation, its checkpoint and
high water belong to the new file, so the restarted daemon resumes there and
the old file's replay window never hides the new file's lines.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import orjson

from syncengine.sim.server import SimHandle
from tests.daemon.test_daemon import append, company_is, daemon_config, running_daemon, wait_until
from tests.integration.conftest import FIRST_ID, run_cli, seed_leads, sim_leads


def changes(ids: range, tag: str) -> list[dict[str, str]]:
    return [{"id": str(FIRST_ID + i), "Company": f"{tag}{i}"} for i in ids]


async def test_a_restart_after_followed_rotations_resumes_in_the_new_file(
    sim: SimHandle, tmp_path: Path
) -> None:
    """Two rotations, SIGTERM, start, more lines: all synced once, none skipped."""
    await seed_leads(sim, 300)
    feed = tmp_path / "changes.jsonl"
    append(feed, changes(range(200), "a"))
    config = daemon_config(tmp_path, sim)
    async with running_daemon(config, tmp_path) as process:
        await wait_until(company_is(sim, 199, "a199"), timeout_s=15)
        feed.rename(tmp_path / "changes.jsonl.1")
        append(feed, changes(range(50), "b"))
        await wait_until(company_is(sim, 49, "b49"), timeout_s=15)
        feed.rename(tmp_path / "changes.jsonl.2")
        append(feed, changes(range(50, 80), "c"))
        await wait_until(company_is(sim, 79, "c79"), timeout_s=15)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
        assert process.returncode == 0
    written_before_restart = sim.state.stats.records_written
    assert written_before_restart == 280

    async with running_daemon(config, tmp_path) as process:
        await asyncio.sleep(0.5)
        # Records last written at far-on lines of the first file, now at early
        # lines of the third: the old file's high water would have hidden them.
        append(feed, changes(range(100, 200), "d"))
        append(feed, changes(range(50), "e"))
        await wait_until(company_is(sim, 49, "e49"), timeout_s=15)
        await wait_until(company_is(sim, 199, "d199"), timeout_s=15)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
        assert process.returncode == 0

    # Nothing re-sent after the restart but what was written after it.
    assert sim.state.stats.records_written - written_before_restart == 150
    leads = await sim_leads(sim)
    expected = {
        **{i: f"a{i}" for i in range(200)},
        **{i: f"c{i}" for i in range(50, 80)},
        **{i: f"d{i}" for i in range(100, 200)},
        **{i: f"e{i}" for i in range(50)},
    }
    for index, company in expected.items():
        assert leads[str(FIRST_ID + index)]["fields"]["Company"] == company
    status = await run_cli("status", "-c", str(config), "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert orjson.loads(status.stdout)["last_run"]["counts"]["replay_skipped"] == 0

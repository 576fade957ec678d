"""migrate's progress bar through the bulk phase and the records pass that follows."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncengine.bulk.job_runner import BulkCounts
from syncengine.engine.recorder import PassCounts
from syncengine.progress import Watched, done_and_label, progress_bar
from syncengine.sim.server import SimHandle
from tests.integration.conftest import admin_get, admin_post, write_config, write_feed
from tests.integration.test_migrate_and_demo import _run_on_terminal
from tests.integration.test_progress_and_logs import screen_lines


@dataclass
class FakeEngine:
    """What the bar reads of an engine: its live counts and whether it stopped early."""

    counts: PassCounts = field(default_factory=PassCounts)
    stopped_early: bool = False


def test_no_bulk_phase_leaves_the_bar_as_it_was() -> None:
    watched = Watched()
    engine = FakeEngine()
    engine.counts.synced, engine.counts.failed = 30, 2
    watched.append(engine)
    assert done_and_label(watched) == (32, 2, 0, "", {})
    watched.bulk(BulkCounts())  # a phase that picked nothing
    assert done_and_label(watched) == (32, 2, 0, "", {})


def test_bulk_rows_count_first_then_the_records_pass_adds_to_them() -> None:
    watched = Watched()
    engine = FakeEngine()
    watched.append(engine)
    bulk = BulkCounts(planned=50_000)
    watched.bulk(bulk)
    assert done_and_label(watched) == (0, 0, 0, "bulk", {"jobs": 0})
    bulk.jobs, bulk.synced, bulk.failed, bulk.handed_over = 2, 24_000, 990, 10
    # Handed-over rows are counted when the records pass settles them, not twice.
    assert done_and_label(watched) == (24_990, 990, 0, "bulk", {"jobs": 2})
    engine.counts.synced, engine.counts.failed = 10, 0
    assert done_and_label(watched) == (25_000, 990, 0, "records", {})
    # run_pass adds the phase's rows to the engine's counts: counted once.
    engine.counts.synced += bulk.synced
    engine.counts.failed += bulk.failed
    bulk.merged = True
    assert done_and_label(watched) == (25_000, 990, 0, "records", {})


async def test_the_bar_follows_the_bulk_phase_then_the_records_pass() -> None:
    out = io.StringIO()
    async with progress_bar(100, stream=out, interval_s=0.01, force=True) as watched:
        engine = FakeEngine()
        watched.append(engine)
        bulk = BulkCounts(planned=80)
        watched.bulk(bulk)
        bulk.jobs, bulk.synced, bulk.failed = 1, 39, 1
        await asyncio.sleep(0.1)
        drawn_in_bulk = out.getvalue()
        engine.counts.synced = 60
        await asyncio.sleep(0.1)
        engine.counts.synced += bulk.synced
        engine.counts.failed += bulk.failed
        bulk.merged = True
    drawn = screen_lines(drawn_in_bulk)[-1]
    assert drawn.startswith("bulk:"), drawn
    assert "40/100" in drawn, drawn
    assert "jobs=1" in drawn, drawn
    assert "failed=1" in drawn, drawn
    final = screen_lines(out.getvalue())[-1]
    assert final.startswith("records:"), final
    assert "100/100" in final, final


async def test_no_bar_off_a_terminal() -> None:
    out = io.StringIO()
    async with progress_bar(100, stream=out, interval_s=0.01) as watched:
        watched.bulk(BulkCounts(planned=80, jobs=1, synced=40))
        await asyncio.sleep(0.05)
    assert out.getvalue() == ""


async def test_migrate_on_a_terminal_shows_the_bulk_phase(sim: SimHandle, tmp_path: Path) -> None:
    """6,000 inserts (600 credits by records, 500 by one job): `auto`, the default, goes
    by bulk write, and the bar says so while the job runs, then ends at the total."""
    feed: list[dict[str, Any] | bytes] = [
        {"record": {"Last_Name": f"L{n}", "Company": "Acme"}, "operation": "insert"}
        for n in range(6_000)
    ]
    write_feed(tmp_path / "changes.jsonl", feed)
    config = write_config(tmp_path, sim, limits="bulk_poll_s = 0.2")
    await admin_post(sim, "config", {"bulk_queue_s": 0.5, "bulk_job_s": 1.0})  # bar redraws
    status, drawn = await asyncio.to_thread(
        _run_on_terminal, ["migrate", "-c", str(config)], tmp_path, 120
    )
    assert status == 0, drawn[-2000:]
    lines = screen_lines(drawn)
    bars = [line for line in lines if "rec/s" in line or "rec]" in line]
    assert bars, lines
    assert "6000/6000" in bars[-1], bars[-1]
    assert any(part.lstrip().startswith("bulk:") for part in drawn.split("\r")), drawn[-3000:]
    assert any("jobs=1" in part for part in drawn.split("\r")), drawn[-3000:]
    assert (await admin_get(sim, "stats"))["bulk_jobs"] == 1

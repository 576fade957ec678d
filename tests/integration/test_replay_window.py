"""After a crash the feed is re-read from the low watermark; settled changes are not resent."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from syncengine.config import load_config
from syncengine.runner import run_pass
from syncengine.sim.server import SimHandle
from tests.integration.conftest import (
    FIRST_ID,
    SECRET_ENV,
    lead_updates,
    seed_leads,
    sim_leads,
    write_config,
    write_feed,
)


def rewind_checkpoint_to_top(journal: Path) -> None:
    """What a crash leaves when the watermark lagged: no checkpoint, a high water set."""
    with sqlite3.connect(journal) as db:
        db.execute("DELETE FROM checkpoints")


async def test_changes_settled_past_the_checkpoint_are_not_sent_again(
    sim: SimHandle, tmp_path: Path
) -> None:
    """Re-reading settled lines sends nothing; one line whose outcome was lost is resent."""
    await seed_leads(sim, 200)
    write_feed(tmp_path / "changes.jsonl", lead_updates(200))
    config = load_config(write_config(tmp_path, sim), environ=SECRET_ENV)
    first = await run_pass(config, command="run", stop=asyncio.Event())
    assert first.counts.synced == 200
    written_before = sim.state.stats.records_written

    rewind_checkpoint_to_top(config.journal.path)
    with sqlite3.connect(config.journal.path) as db:
        # Line 51's outcome never reached the journal: its row still shows line 3.
        db.execute("UPDATE records SET position = 3 WHERE key = ?", (f"Leads:{FIRST_ID + 50}",))
    second = await run_pass(config, command="run", stop=asyncio.Event())

    assert second.counts.replay_skipped == 199
    assert second.counts.synced == 1
    assert sim.state.stats.records_written - written_before == 1
    leads = await sim_leads(sim)
    assert leads[str(FIRST_ID + 50)]["writes"] == 2


async def test_a_later_feed_change_to_a_settled_record_is_still_sent(
    sim: SimHandle, tmp_path: Path
) -> None:
    """Past the high water, changes to records settled in the window are sent as usual."""
    await seed_leads(sim, 10)
    feed = tmp_path / "changes.jsonl"
    write_feed(feed, lead_updates(10))
    config = load_config(write_config(tmp_path, sim), environ=SECRET_ENV)
    await run_pass(config, command="run", stop=asyncio.Event())
    rewind_checkpoint_to_top(config.journal.path)
    with feed.open("ab") as out:
        out.write(b'{"id": "%d", "Company": "later"}\n' % FIRST_ID)

    result = await run_pass(config, command="run", stop=asyncio.Event())

    assert result.counts.replay_skipped == 10
    assert result.counts.synced == 1
    leads = await sim_leads(sim)
    assert leads[str(FIRST_ID)]["fields"]["Company"] == "later"

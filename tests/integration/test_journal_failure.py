"""A journal that stops taking writes mid-pass: the pass ends, and nothing is lost."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from syncengine.config import Config, load_config
from syncengine.errors import FatalError
from syncengine.journal import Journal
from syncengine.runner import run_pass
from syncengine.sim.server import running_simulator
from tests.integration.conftest import (
    SECRET_ENV,
    cli_env,
    lead_updates,
    run_cli,
    seed_leads,
    sim_leads,
    write_config,
    write_feed,
)

RECORDS = 20_000


def _load(path: Path) -> Config:
    return load_config(path, environ=SECRET_ENV)


async def test_a_commit_process_killed_mid_pass_ends_it_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """The pass ends with a fatal error instead of waiting on commits that cannot come;
    the next pass resumes from the last durable checkpoint and finishes the feed."""
    async with running_simulator(port=0, admin=True, latency_ms=5) as sim:
        await seed_leads(sim, RECORDS)
        write_feed(tmp_path / "changes.jsonl", lead_updates(RECORDS, tag="v2"))
        config = _load(write_config(tmp_path, sim))
        engines: list[Any] = []
        first = asyncio.create_task(
            run_pass(config, command="run", stop=asyncio.Event(), on_engine=engines.append)
        )
        while not engines or engines[0].counts.synced < 2_000:
            assert not first.done(), "the pass ended before the worker could be killed"
            await asyncio.sleep(0.005)
        committer = engines[0]._journal._committer
        assert committer is not None
        os.kill(committer._process.pid, signal.SIGKILL)
        await asyncio.wait({first}, timeout=30)
        assert first.done(), "the pass still waits on commits that cannot come"
        with pytest.raises(FatalError, match="commit process ended"):
            first.result()
        async with await Journal.open(config.journal.path) as journal:
            source_id = engines[0]._source.source_id
            checkpoint = await journal.checkpoint(source_id)
            synced_before = (await journal.counts())["synced"]
        assert synced_before < RECORDS
        # Invariant 1: the checkpoint never passed a record without its outcome.
        assert checkpoint is None or int(checkpoint.display) <= synced_before

        second = await run_pass(config, command="run", stop=asyncio.Event())
        assert second.exit_status == 0
        leads = await sim_leads(sim)
    async with await Journal.open(config.journal.path) as journal:
        assert await journal.counts() == {"synced": RECORDS, "pending": 0, "failed": 0}
    for row in lead_updates(RECORDS, tag="v2"):
        stored = leads[row["id"]]["fields"]
        assert {name: stored.get(name) for name in row if name != "id"} == {
            name: value for name, value in row.items() if name != "id"
        }, row["id"]


async def test_a_disk_that_fills_up_mid_pass_ends_it_with_one_line_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """A real `syncengine run` whose files may not grow past 1 MB (RLIMIT_FSIZE: writes
    past it fail as on a full disk) ends with exit 3 and one line naming the journal;
    a run with room afterwards finishes the feed, the CRM and the journal exact."""
    async with running_simulator(port=0, admin=True, latency_ms=5) as sim:
        await seed_leads(sim, RECORDS)
        write_feed(tmp_path / "changes.jsonl", lead_updates(RECORDS, tag="v2"))
        config_path = write_config(tmp_path, sim)

        def small_disk() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

        full = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "syncengine",
            "run",
            "-c",
            str(config_path),
            cwd=tmp_path,
            env=cli_env(),
            preexec_fn=small_disk,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(full.communicate(), 90)
        assert full.returncode == 3, stderr.decode()
        error = stderr.decode().strip().splitlines()[-1]
        assert error.startswith("syncengine: error: ")
        assert str(tmp_path / "journal.db") in error
        assert "group commit failed" in error
        assert "Traceback" not in stderr.decode()
        config = _load(config_path)
        async with await Journal.open(config.journal.path) as journal:
            source_id = f"jsonl:{tmp_path / 'changes.jsonl'}"
            checkpoint = await journal.checkpoint(source_id)
            synced_before = (await journal.counts())["synced"]
        assert 0 < synced_before < RECORDS
        assert checkpoint is None or int(checkpoint.display) <= synced_before

        roomy = await run_cli("run", "-c", str(config_path), cwd=tmp_path)
        assert roomy.returncode == 0, roomy.stderr
        leads = await sim_leads(sim)
    async with await Journal.open(config.journal.path) as journal:
        assert await journal.counts() == {"synced": RECORDS, "pending": 0, "failed": 0}
    for row in lead_updates(RECORDS, tag="v2"):
        stored = leads[row["id"]]["fields"]
        assert stored["Company"] == row["Company"], row["id"]

"""A daemon whose commit process stalls (SIGSTOP, as a hung disk): /healthz says so
with 503, then the daemon ends with exit 3 instead of waiting for ever."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from syncengine.sim.server import SimHandle
from tests.daemon.test_daemon import append, company_is, daemon_config, free_port, wait_until
from tests.integration.commit_workers import worker_of
from tests.integration.conftest import FIRST_ID, seed_leads, start_cli

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

TIMEOUT_S = 4


def _journaled(journal: Path) -> int:
    if not journal.exists():
        return 0
    db = sqlite3.connect(journal)
    try:
        return int(db.execute("SELECT count(*) FROM records").fetchone()[0])
    finally:
        db.close()


async def _health(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str]]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def test_a_stalled_commit_turns_healthz_503_then_ends_the_daemon_with_exit_3(
    sim: SimHandle, tmp_path: Path
) -> None:
    await seed_leads(sim, 200)
    feed = tmp_path / "changes.jsonl"
    append(feed, [{"id": str(FIRST_ID + i), "Company": f"a{i}"} for i in range(100)])
    port = free_port()
    config = daemon_config(tmp_path, sim, metrics_port=port)
    config.write_text(
        config.read_text().replace(
            'path = "journal.db"', f'path = "journal.db"\ncommit_timeout_s = {TIMEOUT_S}'
        )
    )
    healthz = f"http://127.0.0.1:{port}/healthz"
    process = await start_cli("daemon", "-c", str(config), cwd=tmp_path)
    worker = 0
    try:
        async with aiohttp.ClientSession() as http:
            await wait_until(company_is(sim, 99, "a99"), timeout_s=20)
            # Stalled mid-pass: the worker has opened the journal and committed.
            await wait_until(lambda: _journaled(tmp_path / "journal.db") == 100, timeout_s=20)
            assert (await _health(http, healthz))[0] == 200
            worker = await worker_of(process)
            os.kill(worker, signal.SIGSTOP)
            stopped_at = time.monotonic()
            append(feed, [{"id": str(FIRST_ID + i), "Company": f"b{i}"} for i in range(100, 200)])
            seen: list[tuple[int, dict[str, str]]] = []
            while process.returncode is None and time.monotonic() - stopped_at < 60:
                try:
                    seen.append(await _health(http, healthz))
                except aiohttp.ClientError:
                    break  # the daemon is ending: its server is gone
                await asyncio.sleep(0.1)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
        took = time.monotonic() - stopped_at
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if worker and Path(f"/proc/{worker}").exists():
            os.kill(worker, signal.SIGCONT)
    stalled = [body for status, body in seen if status == 503]
    assert stalled, seen
    assert stalled[0]["status"] == "stalled"
    assert str(tmp_path / "journal.db") in stalled[0]["reason"]
    assert seen[0][0] == 200  # healthy until half the deadline had passed
    text = stderr.decode()
    assert process.returncode == 3, text
    assert took < TIMEOUT_S + 15
    last = text.strip().splitlines()[-1]
    assert str(tmp_path / "journal.db") in last
    assert "journal.commit_timeout_s" in last
    assert "Traceback" not in text

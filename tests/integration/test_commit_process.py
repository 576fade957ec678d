"""The commit process of a real `syncengine run`: what it imports and inherits, and a
stalled one (SIGSTOP, as a hung disk) ending the pass instead of hanging it."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from syncengine.sim.server import running_simulator
from tests.integration.commit_workers import children, worker_of
from tests.integration.conftest import (
    REPO,
    cli_env,
    lead_updates,
    run_cli,
    seed_leads,
    sim_leads,
    write_config,
    write_feed,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

RECORDS = 20_000


async def _start_run(config: Path, cwd: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    """`syncengine run` as cron starts it: a script on PATH, so the pass itself never
    looks in the working directory (`-P`), whatever the commit process does."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-P",
        "-m",
        "syncengine",
        "run",
        "-c",
        str(config),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def _synced(journal: Path) -> int:
    db = sqlite3.connect(journal)
    try:
        return int(db.execute("SELECT count(*) FROM records WHERE state = 'synced'").fetchone()[0])
    finally:
        db.close()


async def test_the_worker_imports_nothing_from_the_working_directory_and_no_secret(
    tmp_path: Path,
) -> None:
    """A `syncengine` package planted in the working directory never runs in the commit
    process, which also sees none of the parent's secrets; the pass finishes exact."""
    marker = tmp_path / "planted-code-ran"
    planted = tmp_path / "syncengine"
    planted.mkdir()
    (planted / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        f"__path__.append({str(REPO / 'syncengine')!r})\n"  # and then work, to hide
    )
    env = cli_env(ZOHO_CLIENT_SECRET="zoho-secret-value", PYTHONPATH=str(REPO))
    async with running_simulator(port=0, admin=True, latency_ms=30) as sim:
        await seed_leads(sim, RECORDS)
        write_feed(tmp_path / "changes.jsonl", lead_updates(RECORDS, tag="v2"))
        config = write_config(tmp_path, sim)
        process = await _start_run(config, tmp_path, env)
        try:
            worker = await worker_of(process)
            environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
            _, stderr = await asyncio.wait_for(process.communicate(), 120)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, stderr.decode()
        leads = await sim_leads(sim)
    names = {item.split(b"=", 1)[0].decode() for item in environ if item}
    assert "PATH" in names
    assert not names & {"ZOHO_CLIENT_SECRET", "SE_TEST_SECRET", "SE_TEST_REFRESH", "PYTHONPATH"}
    assert not marker.exists()
    assert _synced(tmp_path / "journal.db") == RECORDS
    for row in lead_updates(RECORDS, tag="v2"):
        assert leads[row["id"]]["fields"]["Company"] == row["Company"], row["id"]


async def test_a_stopped_worker_ends_the_pass_with_exit_3_and_the_next_finishes(
    tmp_path: Path,
) -> None:
    """SIGSTOP on the commit worker mid-pass: within the configured deadline the pass
    exits 3 with one line naming the journal and the key, the stopped worker is killed,
    and the next run finishes the feed, the CRM and the journal exact."""
    async with running_simulator(port=0, admin=True, latency_ms=30) as sim:
        await seed_leads(sim, RECORDS)
        write_feed(tmp_path / "changes.jsonl", lead_updates(RECORDS, tag="v2"))
        config = write_config(tmp_path, sim)
        with config.open("a") as toml:
            toml.write("commit_timeout_s = 2\n")  # the [journal] table is the file's last
        journal = tmp_path / "journal.db"
        process = await _start_run(config, tmp_path, cli_env())
        try:
            worker = await worker_of(process)
            while not journal.exists() or _synced(journal) < 1_000:
                assert process.returncode is None, "the pass ended before the worker stopped"
                await asyncio.sleep(0.02)
            os.kill(worker, signal.SIGSTOP)
            stopped_at = time.monotonic()
            _, stderr = await asyncio.wait_for(process.communicate(), 60)
            took = time.monotonic() - stopped_at
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            if Path(f"/proc/{worker}").exists():
                os.kill(worker, signal.SIGCONT)
        text = stderr.decode()
        assert process.returncode == 3, text
        assert took < 2 + 15, took  # the deadline, and room for a loaded machine
        last = text.strip().splitlines()[-1]
        assert last.startswith("syncengine: error: "), text
        assert str(journal) in last
        assert "journal.commit_timeout_s" in last
        assert "Traceback" not in text
        assert not children(process.pid)
        status = Path(f"/proc/{worker}/status")
        assert not status.exists() or "\nState:\tZ" in status.read_text()
        synced_before = _synced(journal)
        assert synced_before < RECORDS

        again = await run_cli("run", "-c", str(config), cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        leads = await sim_leads(sim)
    assert _synced(journal) == RECORDS
    for row in lead_updates(RECORDS, tag="v2"):
        assert leads[row["id"]]["fields"]["Company"] == row["Company"], row["id"]

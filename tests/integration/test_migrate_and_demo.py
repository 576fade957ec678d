"""`migrate`'s progress bar on a terminal, the log formats, and the demo command."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import orjson

from syncengine.sim.server import SimHandle
from tests.integration.conftest import (
    REPO,
    cli_env,
    lead_updates,
    run_cli,
    seed_leads,
    write_config,
    write_feed,
)


def _run_on_terminal(args: list[str], cwd: Path, timeout_s: float = 60) -> tuple[int, str]:
    """Runs a command with a pseudo-terminal as stderr; returns (status, what it drew)."""
    master, slave = pty.openpty()
    # A new pseudo-terminal is 0 x 0; a real one has a size, and tqdm draws to fit it.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "syncengine", *args],
        cwd=cwd,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return process.wait(timeout_s), b"".join(chunks).decode(errors="replace")


async def test_migrate_draws_a_progress_bar_on_a_terminal(sim: SimHandle, tmp_path: Path) -> None:
    """On a terminal, migrate shows done/total, the rate and failures; then a summary."""
    await seed_leads(sim, 3000)
    changes = lead_updates(3000)
    changes[7]["Email"] = "bad"
    write_feed(tmp_path / "changes.jsonl", changes)
    config = write_config(tmp_path, sim)

    status, screen = await asyncio.to_thread(
        _run_on_terminal, ["migrate", "-c", str(config)], tmp_path
    )

    assert status == 1
    assert "3000/3000" in screen or "2999/3000" in screen.replace("3000/3000", "")
    assert "rec/s" in screen
    assert "failed=1" in screen
    assert "migrate: 2999 synced, 1 failed" in screen


async def test_json_logs_have_one_summary_line_per_run(sim: SimHandle, tmp_path: Path) -> None:
    """With --log-format json every stderr line is JSON, and one is the run summary."""
    await seed_leads(sim, 50)
    write_feed(tmp_path / "changes.jsonl", lead_updates(50))
    config = write_config(tmp_path, sim)

    result = await run_cli("run", "-c", str(config), cwd=tmp_path)

    events = [orjson.loads(line) for line in result.stderr.splitlines() if line.strip()]
    summaries = [event for event in events if event["event"] == "run.summary"]
    assert len(summaries) == 1
    assert summaries[0]["synced"] == 50
    assert summaries[0]["exit_status"] == 0


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    """`syncengine demo` migrates generated leads into its own simulator and reports."""
    completed = subprocess.run(
        [sys.executable, "-m", "syncengine", "demo", "--records", "1500", "--dir", "out"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        check=False,
        timeout=120,
    )
    output = completed.stdout.decode()
    assert completed.returncode == 0, completed.stderr.decode()[-2000:]
    assert "records: 1491 synced, 0 pending, 9 failed" in output
    assert "BAD_INPUT" in output
    assert "INVALID_DATA" in output
    assert "MANDATORY_NOT_FOUND" in output
    assert (tmp_path / "out" / "syncengine.db").exists()
    assert "open out/report.html in a browser" in output
    page = (tmp_path / "out" / "report.html").read_text()
    assert '<td class="n">1,491</td>' in page  # the run's synced count
    assert "MANDATORY_NOT_FOUND" in page

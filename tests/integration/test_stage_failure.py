"""A stage that raises something unexpected ends the pass at once, naming the stage.

Each test runs the real command line as a process against the simulator, with
one stage made to raise RuntimeError (see `faulty_cli`): the process must exit
3 within seconds with one line naming the stage and no traceback, instead of
waiting forever on a chunk that will never be answered; a run without the
fault then finishes the feed exact, in the CRM and in the journal.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from syncengine.config import load_config
from syncengine.journal import Journal
from syncengine.sim.server import SimHandle, running_simulator
from tests.integration.conftest import (
    SECRET_ENV,
    CliResult,
    cli_env,
    lead_updates,
    run_cli,
    seed_leads,
    sim_leads,
    write_config,
    write_feed,
)

RECORDS = 3_000
#: "A few seconds": from process start (imports, token) to exit, on a loaded machine.
PROMPT_EXIT_S = 20.0


async def run_faulty(fault: str, *args: str, cwd: Path) -> tuple[CliResult, float]:
    """Runs the command line with `fault`; its result and how long it took."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.faulty_cli",
        "--log-format",
        "json",
        *args,
        cwd=cwd,
        env=cli_env(SE_TEST_FAULT=fault),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()  # the hang this guards against: never leave it behind
        await process.wait()
        raise AssertionError(f"`syncengine {args[0]}` with fault {fault} did not end") from None
    assert process.returncode is not None
    return CliResult(process.returncode, stdout.decode(), stderr.decode()), (
        time.monotonic() - started
    )


def assert_one_line_naming(result: CliResult, stage: str, error: str) -> None:
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "stage failed" in line]
    assert lines == [
        f"syncengine: error: the {stage} stage failed: RuntimeError: {error};"
        " the journal is consistent, the next run resumes from the checkpoint"
    ], result.stderr
    assert result.stderr.strip().splitlines()[-1] == lines[0]


async def assert_next_run_finishes_exact(sim: SimHandle, folder: Path, config: Path) -> None:
    clean = await run_cli("run", "-c", str(config), cwd=folder)
    assert clean.returncode == 0, clean.stderr
    leads = await sim_leads(sim)
    for row in lead_updates(RECORDS, tag="v2"):
        assert leads[row["id"]]["fields"]["Company"] == row["Company"], row["id"]
    async with await Journal.open(load_config(config, environ=SECRET_ENV).journal.path) as j:
        assert await j.counts() == {"synced": RECORDS, "pending": 0, "failed": 0}


def daemon_config(folder: Path, sim: SimHandle) -> Path:
    path = write_config(folder, sim)
    path.write_text(path.read_text() + "\n[daemon]\npoll_interval_s = 0.05\ngrace_s = 5\n")
    return path


async def test_a_writer_raising_mid_run_exits_3_naming_the_sender_stage(tmp_path: Path) -> None:
    """Ten requests go through, the eleventh raises: the run ends promptly with exit 3."""
    async with running_simulator(port=0, admin=True, latency_ms=5) as sim:
        await seed_leads(sim, RECORDS)
        write_feed(tmp_path / "changes.jsonl", lead_updates(RECORDS, tag="v2"))
        config = write_config(tmp_path, sim)
        result, elapsed_s = await run_faulty("writer:10", "run", "-c", str(config), cwd=tmp_path)
        assert_one_line_naming(result, "sender", "injected writer fault")
        assert elapsed_s < PROMPT_EXIT_S
        async with await Journal.open(tmp_path / "journal.db") as journal:
            synced_before = (await journal.counts())["synced"]
        assert 0 < synced_before < RECORDS  # the answers that came in were journaled
        await assert_next_run_finishes_exact(sim, tmp_path, config)


async def test_a_writer_raising_in_the_daemon_exits_3_naming_the_sender_stage(
    tmp_path: Path,
) -> None:
    """The daemon ends with exit 3 (so its unit does not restart it in a loop)."""
    async with running_simulator(port=0, admin=True, latency_ms=5) as sim:
        await seed_leads(sim, RECORDS)
        write_feed(tmp_path / "changes.jsonl", lead_updates(RECORDS, tag="v2"))
        config = daemon_config(tmp_path, sim)
        result, elapsed_s = await run_faulty("writer:5", "daemon", "-c", str(config), cwd=tmp_path)
        assert_one_line_naming(result, "sender", "injected writer fault")
        assert elapsed_s < PROMPT_EXIT_S
        await assert_next_run_finishes_exact(sim, tmp_path, config)


async def test_a_redrive_raising_in_the_daemon_exits_3_naming_the_redrive_stage(
    tmp_path: Path,
) -> None:
    """The redrive task (every second here) raises: the daemon ends instead of running
    on without it, after journaling what it had synced."""
    async with running_simulator(port=0, admin=True, latency_ms=5) as sim:
        await seed_leads(sim, RECORDS)
        write_feed(tmp_path / "changes.jsonl", lead_updates(RECORDS, tag="v2"))
        config = daemon_config(tmp_path, sim)
        result, elapsed_s = await run_faulty("redrive", "daemon", "-c", str(config), cwd=tmp_path)
        assert_one_line_naming(result, "redrive", "injected journal read fault")
        assert elapsed_s < PROMPT_EXIT_S
        await assert_next_run_finishes_exact(sim, tmp_path, config)

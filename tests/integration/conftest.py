"""Fixtures for end-to-end tests: an in-process simulator, configs, and the CLI
run as a real process (so signals, exit statuses and output are the real ones).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from syncengine.sim.server import SimHandle

REPO = Path(__file__).resolve().parents[2]
FIRST_ID = 4_876_876_000_000_100_001


@dataclass
class CliResult:
    """What a `syncengine` process did."""

    returncode: int
    stdout: str
    stderr: str


def write_config(
    folder: Path,
    sim: SimHandle,
    *,
    feed: str = "changes.jsonl",
    source_type: str = "jsonl",
    operation: str = "update",
    extra: str = "",
    limits: str = "",
    concurrency: int = 10,
    journal: str = 'path = "journal.db"',
    tail: str = "",
    name: str = "sync",
) -> Path:
    """A config for the simulator with the demo credentials.

    `journal` is the `[journal]` table's body, `tail` more tables after it,
    `name` the file's stem (several configs in one folder).
    """
    path = folder / f"{name}.toml"
    path.write_text(
        f"""
[source]
type = "{source_type}"
path = "{feed}"

[crm]
api_domain = "{sim.base_url}"
accounts_url = "{sim.accounts_url}"
client_id = "demo-client"
client_secret = "${{SE_TEST_SECRET}}"
refresh_token = "${{SE_TEST_REFRESH}}"
module = "Leads"
operation = "{operation}"
{extra}

[limits]
concurrency = {concurrency}
max_attempts = 8
retry_base_s = 0.05
retry_cap_s = 0.5
grace_s = 5
{limits}

[journal]
{journal}
{tail}
""",
        encoding="utf-8",
    )
    return path


SECRET_ENV = {"SE_TEST_SECRET": "demo-secret", "SE_TEST_REFRESH": "demo-refresh"}


def write_feed(path: Path, rows: Iterable[dict[str, Any] | bytes]) -> None:
    """A JSONL feed; bytes rows are written as they are (for bad lines)."""
    with path.open("wb") as out:
        for row in rows:
            out.write((row if isinstance(row, bytes) else orjson.dumps(row)) + b"\n")


def lead_updates(count: int, *, start: int = FIRST_ID, tag: str = "v1") -> list[dict[str, Any]]:
    """Updates to seeded leads, each with a value that tells which change it was."""
    return [
        {"id": str(start + index), "Company": f"Company {index} {tag}", "No_of_Employees": index}
        for index in range(count)
    ]


async def seed_leads(sim: SimHandle, count: int, *, start: int = FIRST_ID) -> None:
    """Creates `count` leads with consecutive ids in the simulator."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{sim.base_url}/__admin/seed",
            json={"module": "Leads", "count": count, "id_start": start},
        ) as response,
    ):
        assert response.status == 200, await response.text()


async def admin_get(sim: SimHandle, path: str) -> Any:
    """GET an admin endpoint and decode its JSON."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sim.base_url}/__admin/{path}") as response,
    ):
        assert response.status == 200, await response.text()
        return orjson.loads(await response.read())


async def admin_post(sim: SimHandle, path: str, body: dict[str, Any]) -> Any:
    """POST an admin endpoint and decode its JSON."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.base_url}/__admin/{path}", json=body) as response,
    ):
        assert response.status == 200, await response.text()
        return orjson.loads(await response.read())


async def sim_leads(sim: SimHandle) -> dict[str, dict[str, Any]]:
    """The simulator's Leads: id → {"fields": ..., "writes": n}."""
    records = await admin_get(sim, "records?module=Leads")
    return dict(records["Leads"])


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI process: ours, the test secrets, and extras."""
    env = dict(os.environ)
    env.update(SECRET_ENV)
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


async def start_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """Starts `python -m syncengine ARGS` without waiting for it."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncengine",
        "--log-format",
        "json",
        *args,
        cwd=cwd,
        env=env or cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout_s: float = 90
) -> CliResult:
    """Runs `python -m syncengine ARGS` to its end (the simulator keeps serving meanwhile)."""
    process = await start_cli(*args, cwd=cwd, env=env)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()  # never leave a stuck process behind a failed test
        await process.wait()
        raise
    assert process.returncode is not None
    return CliResult(process.returncode, stdout.decode(), stderr.decode())


async def failures_json(config: Path, cwd: Path) -> list[dict[str, Any]]:
    """What `syncengine failures --json` prints for `config`, decoded (it must exit 0)."""
    result = await run_cli("failures", "-c", str(config), "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = orjson.loads(result.stdout)
    return rows

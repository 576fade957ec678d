"""Hardening seen from outside: real `syncengine` processes."""

from __future__ import annotations

import asyncio
import resource
import signal
import sys
from pathlib import Path

from syncengine.sim.server import SimHandle
from tests.integration.conftest import cli_env, run_cli, write_config

PG_CONFIG = """
[source]
type = "postgres"
dsn = "postgresql://feeduser:s3cr3t-pw@[::1:5432/x"
table = "changes"
cursor = "seq"

[crm]
api_domain = "http://127.0.0.1:9"
accounts_url = "http://127.0.0.1:9"
client_id = "demo-client"
client_secret = "${SE_TEST_SECRET}"
refresh_token = "${SE_TEST_REFRESH}"

[journal]
path = "journal.db"
"""


async def test_malformed_dsn_is_one_line_exit_2_without_the_password(tmp_path: Path) -> None:
    """`run` with an unparsable DSN: exit 2, one stderr line naming source.dsn, masked."""
    config = tmp_path / "pg.toml"
    config.write_text(PG_CONFIG, encoding="utf-8")

    result = await run_cli("run", "-c", str(config), cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "source.dsn" in lines[0]
    assert "feeduser:***@" in lines[0]
    assert "s3cr3t" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "journal.db").exists()


def _core_limits(pid: int) -> str:
    """The 'Max core file size' line of /proc/<pid>/limits, whitespace collapsed."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            return " ".join(line.split())
    raise AssertionError(f"no core limit line for pid {pid}")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _allow_core_dumps() -> None:
    """In the child before exec: core dumps on, so only syncengine itself can turn them off."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


async def test_daemon_and_its_children_run_without_core_dumps(
    sim: SimHandle, tmp_path: Path
) -> None:
    """A daemon started with core dumps on runs with 'Max core file size 0 0', as its children."""
    (tmp_path / "changes.jsonl").touch()
    config = write_config(tmp_path, sim)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncengine", "daemon", "-c", str(config),
        cwd=tmp_path,
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_allow_core_dumps,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        while b"daemon.started" not in await asyncio.wait_for(process.stderr.readline(), 30):
            pass
        assert _core_limits(process.pid) == "Max core file size 0 0 bytes"
        # Any process it started (a commit process, for one) inherits the limits.
        for child in _children(process.pid):
            assert _core_limits(child) == "Max core file size 0 0 bytes"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

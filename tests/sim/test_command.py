"""`syncengine sim` / `python -m syncengine.sim`: options, printed URLs, clean stop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from syncengine.sim.command import OPTIONS, admin_exposure, is_loopback_host, sim
from syncengine.sim.config import KNOBS
from tests.sim.conftest import TOKEN_FORM

ROOT = Path(__file__).resolve().parents[2]
INTERFACE_OPTIONS = [
    "--host", "--port", "--client-id", "--client-secret", "--refresh-token", "--token-ttl-s",
    "--edition", "--concurrency", "--credits", "--latency-ms", "--jitter-ms", "--per-record-ms",
    "--fault-500", "--fault-drop", "--fault-stall", "--fault-locked", "--partial-status",
    "--schema", "--seed", "--admin",
]  # fmt: skip


def test_help_documents_every_interface_option() -> None:
    """--help lists each option interface.md names, each with help text."""
    result = CliRunner().invoke(sim, ["--help"])
    assert result.exit_code == 0
    for option in INTERFACE_OPTIONS:
        assert option in result.output
    assert all(kwargs.get("help") for _, kwargs in OPTIONS)


def test_every_knob_has_an_option() -> None:
    """Each SimConfig knob is settable from the command line."""
    names = {name.split("/")[0].lstrip("-").replace("-", "_") for name, _ in OPTIONS}
    names = {"scopes" if n == "scope" else n for n in names}
    assert names == KNOBS


def test_bad_value_is_usage_error() -> None:
    """A probability above 1 is refused with click's usage exit status 2."""
    result = CliRunner().invoke(sim, ["--fault-500", "2"])
    assert result.exit_code == 2


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_process_prints_config_serves_and_stops_cleanly(stop_signal: signal.Signals) -> None:
    """The process prints the [crm] values, serves tokens, and exits 0 on the signal."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncengine.sim", "--port", "0", "--seed", "3",
        stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first)
        assert match is not None, first
        base_url = match.group(1)
        rest = (await asyncio.wait_for(proc.stdout.readuntil(b"Ctrl-C\n"), 5)).decode()
        assert f'api_domain    = "{base_url}"' in rest
        assert 'client_id     = "demo-client"' in rest
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{base_url}/oauth/v2/token", data=TOKEN_FORM) as resp,
        ):
            assert "access_token" in await resp.json()
        proc.send_signal(stop_signal)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("sim.example.com", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    """Only addresses this machine alone can reach count as loopback; names do not."""
    assert is_loopback_host(host) is loopback


async def _sim_process(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncengine", "sim", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=ROOT,
    )  # fmt: skip


async def test_admin_on_every_interface_is_refused_without_the_explicit_flag() -> None:
    """`syncengine sim --host 0.0.0.0 --admin` exits 2 naming the risk, serving nothing."""
    proc = await _sim_process("--host", "0.0.0.0", "--admin")
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:  # it served instead of refusing: stop it
            proc.kill()
            await proc.wait()
    assert proc.returncode == 2
    assert b"listening" not in stdout
    assert b"--admin-on-network" in stderr
    assert b"without authentication" in stderr


async def test_admin_on_network_serves_with_a_loud_warning() -> None:
    """With --admin-on-network it serves, and stderr warns that admin is unauthenticated."""
    proc = await _sim_process("--host", "0.0.0.0", "--admin", "--admin-on-network")
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert "listening on http://0.0.0.0:" in first
        warning = (await asyncio.wait_for(proc.stderr.readline(), 5)).decode()
        assert "WARNING" in warning
        assert "WITHOUT AUTHENTICATION on 0.0.0.0" in warning
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_admin_on_loopback_needs_no_flag_and_prints_no_warning() -> None:
    """The usual `--admin` on 127.0.0.1 is neither refused nor warned about."""
    assert admin_exposure("127.0.0.1", admin=True, on_network=False) is None
    assert admin_exposure("0.0.0.0", admin=False, on_network=False) is None

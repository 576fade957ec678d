"""Shared pieces of the benchmarks: feeds, configs, servers in their own processes."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
FIRST_ID = 4_876_876_000_000_100_001


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, *, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@contextlib.contextmanager
def server_process(args: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Starts a server (`python ARGS`) and stops it at the end."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def write_update_feed(path: Path, count: int) -> None:
    """`count` updates to leads with consecutive ids, streamed to disk."""
    with path.open("wb") as out:
        for index in range(count):
            record = {
                "id": str(FIRST_ID + index),
                "Company": f"Company {index}",
                "Lead_Status": "Contacted",
                "No_of_Employees": index % 5000,
            }
            out.write(orjson.dumps(record) + b"\n")


def write_config(
    folder: Path,
    *,
    port: int,
    feed: Path,
    concurrency: int = 10,
    extra_limits: str = "",
    extra_crm: str = "",
) -> Path:
    path = folder / "bench.toml"
    path.write_text(
        f"""
[source]
type = "jsonl"
path = "{feed}"

[crm]
api_domain = "http://127.0.0.1:{port}"
accounts_url = "http://127.0.0.1:{port}"
client_id = "demo-client"
client_secret = 'demo-secret'  # the simulator's fixed demo values
refresh_token = 'demo-refresh'
module = "Leads"
operation = "update"
{extra_crm}

[limits]
concurrency = {concurrency}
{extra_limits}

[journal]
path = "{folder / "bench.db"}"
""",
        encoding="utf-8",
    )
    return path


def _run_syncengine(config: Path, command: str) -> subprocess.CompletedProcess[bytes]:
    """`syncengine COMMAND -c CONFIG` with JSON logs; its standard error is captured."""
    return subprocess.run(
        [sys.executable, "-m", "syncengine", "--log-format", "json", command, "-c", str(config)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def admin(port: int, path: str, body: dict[str, object] | None = None) -> dict[str, Any]:
    """Calls the simulator's admin API; GET without a body, POST with one."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/__admin/{path}",
        data=data,
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return dict(json.loads(response.read()))


def run_summary(stderr: str) -> dict[str, object]:
    """The `run.summary` event from a JSON-lines log."""
    for line in reversed(stderr.splitlines()):
        if '"run.summary"' in line:
            return dict(orjson.loads(line))
    raise RuntimeError("no run.summary line in the log:\n" + stderr[-2000:])


def run_engine_logged(config: Path, command: str = "run") -> tuple[dict[str, object], int]:
    """Runs the engine and returns its summary event and exit status."""
    completed = _run_syncengine(config, command)
    return run_summary(completed.stderr.decode()), completed.returncode

"""Daemon change-to-CRM latency under a steady trickle.

The simulator runs in this process (200 ms latency) so that the moment a write
lands can be seen directly; `syncengine daemon` runs as its own process with
the default `linger_ms` (500). Changes are appended to a JSONL feed at a
steady rate; each one's latency is from its append to the simulator holding
its value. The bar: median at most linger + 300 ms.

    python -m benchmarks.bench_daemon_latency [--rate 50] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import orjson

from benchmarks.common import FIRST_ID, REPO
from syncengine.sim.server import SimHandle, running_simulator

LINGER_MS = 500


def _config(folder: Path, sim: SimHandle) -> Path:
    path = folder / "daemon.toml"
    path.write_text(
        f"""
[source]
type = "jsonl"
path = "feed.jsonl"

[crm]
api_domain = "{sim.base_url}"
accounts_url = "{sim.accounts_url}"
client_id = "demo-client"
client_secret = 'demo-secret'  # the simulator's fixed demo values
refresh_token = 'demo-refresh'

[journal]
path = "daemon.db"

[daemon]
linger_ms = {LINGER_MS}
poll_interval_s = 0.05
""",
        encoding="utf-8",
    )
    return path


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _watch(sim: SimHandle, sent: dict[int, float], landed: dict[int, float]) -> None:
    """Notes when each sent change's value is in the simulator (5 ms resolution)."""
    while True:
        now = time.monotonic()
        for index in [i for i in sent if i not in landed]:
            record = sim.state.store.get("Leads", str(FIRST_ID + index))
            if record is not None and record.fields.get("Company") == f"trickle {index}":
                landed[index] = now
        await asyncio.sleep(0.005)


async def measure(rate: float, seconds: float) -> list[float]:
    count = int(rate * seconds)
    sent: dict[int, float] = {}
    landed: dict[int, float] = {}
    async with running_simulator(port=0, admin=True, latency_ms=200) as sim:
        for index in range(count):
            sim.state.store.put(
                "Leads",
                str(FIRST_ID + index),
                {"Last_Name": f"L{index}", "Company": "seed"},
                "2026-01-01T00:00:00+00:00",
            )
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            feed = folder / "feed.jsonl"
            feed.touch()
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            daemon = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "syncengine",
                "--log-format",
                "json",
                "daemon",
                "-c",
                str(_config(folder, sim)),
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            watcher = asyncio.create_task(_watch(sim, sent, landed))
            await asyncio.sleep(1.5)  # start-up and first token
            started = time.monotonic()
            with feed.open("ab", buffering=0) as out:
                for index in range(count):
                    await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
                    row = {"id": str(FIRST_ID + index), "Company": f"trickle {index}"}
                    out.write(orjson.dumps(row) + b"\n")
                    sent[index] = time.monotonic()
            deadline = time.monotonic() + 10
            while len(landed) < count and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            watcher.cancel()
            daemon.send_signal(signal.SIGTERM)
            await daemon.wait()
    missing = count - len(landed)
    if missing:
        raise SystemExit(f"{missing} changes never reached the simulator")
    return [landed[i] - sent[i] for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=50.0, help="changes per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    latencies = asyncio.run(measure(args.rate, args.seconds))
    median_ms = 1000 * _percentile(latencies, 0.5)
    p99_ms = 1000 * _percentile(latencies, 0.99)
    print(
        f"{len(latencies)} changes at {args.rate:g}/s, simulator latency 200 ms, "
        f"linger {LINGER_MS} ms: median {median_ms:.0f} ms, p99 {p99_ms:.0f} ms, "
        f"max {1000 * max(latencies):.0f} ms"
    )
    print(f"median <= linger + 300 ms ({LINGER_MS + 300} ms): {median_ms <= LINGER_MS + 300}")


if __name__ == "__main__":
    main()

"""Throughput of the bundled CRM simulator alone: updates of 100 records per second.

The simulator runs in its own process (`python -m syncengine.sim`, faults off,
zero latency, default enterprise limits) and this process drives it with
`--workers` concurrent keep-alive connections sending pre-built bodies, so the
client spends as little CPU as it can. Each round runs for `--round-s`
seconds; the script prints every round and the median requests/s and
records/s. The target (issue 2) is at least 1,000 requests/s of 100 records,
so that the simulator is never the bottleneck when the engine is measured.

Usage: `PYTHONPATH=. .venv/bin/python benchmarks/bench_sim.py [--rounds 5]`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
ID_START = 4_876_876_000_000_000_001
RECORDS_PER_REQUEST = 100


def start_simulator(extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start the simulator process on a free port; returns it and its base URL."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "syncengine.sim", "--port", "0", "--admin", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    if match is None:
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, match.group(1)


def build_bodies(count: int, pool: int) -> list[bytes]:
    """`count` update bodies of 100 records each, cycling over `pool` seeded ids."""
    bodies = []
    for n in range(count):
        data = []
        for i in range(RECORDS_PER_REQUEST):
            number = (n * RECORDS_PER_REQUEST + i) % pool
            data.append(
                {
                    "id": str(ID_START + number),
                    "Lead_Status": "Contacted" if n % 2 else "Qualified",
                    "Phone": f"+1 555 {number % 10_000:04d}",
                    "Description": f"benchmark update {n}",
                }
            )
        bodies.append(orjson.dumps({"data": data, "trigger": []}))
    return bodies


async def token(session: aiohttp.ClientSession, base_url: str) -> str:
    """A fresh access token from the simulator's token endpoint."""
    form = {
        "grant_type": "refresh_token",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
        "refresh_token": "demo-refresh",
    }
    async with session.post(f"{base_url}/oauth/v2/token", data=form) as resp:
        body: dict[str, Any] = await resp.json()
    return str(body["access_token"])


async def run_round(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    bodies: list[bytes],
    workers: int,
    round_s: float,
) -> tuple[int, int, dict[int, int]]:
    """Drive the simulator for `round_s`: (requests, records updated, statuses)."""
    deadline = time.perf_counter() + round_s
    statuses: dict[int, int] = {}
    records = 0

    async def worker(offset: int) -> None:
        nonlocal records
        n = offset
        while time.perf_counter() < deadline:
            async with session.put(url, data=bodies[n % len(bodies)], headers=headers) as resp:
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.status == 200:
                    records += RECORDS_PER_REQUEST
            n += workers

    await asyncio.gather(*(worker(i) for i in range(workers)))
    return sum(statuses.values()), records, statuses


async def bench(args: argparse.Namespace, base_url: str) -> None:
    """Seed records, then run the rounds and print the figures."""
    connector = aiohttp.TCPConnector(limit=args.workers)
    async with aiohttp.ClientSession(connector=connector) as session:
        seed = {"module": "Leads", "count": args.pool, "id_start": ID_START}
        async with session.post(f"{base_url}/__admin/seed", json=seed) as resp:
            resp.raise_for_status()
        headers = {
            "Authorization": f"Zoho-oauthtoken {await token(session, base_url)}",
            "Content-Type": "application/json",
        }
        bodies = build_bodies(64, args.pool)
        url = f"{base_url}/crm/v2/Leads"
        await run_round(session, url, headers, bodies, args.workers, 0.5)  # warm-up
        rates = []
        for n in range(args.rounds):
            requests, records, statuses = await run_round(
                session, url, headers, bodies, args.workers, args.round_s
            )
            rate = requests / args.round_s
            rates.append((rate, records / args.round_s))
            print(
                f"round {n + 1}: {rate:,.0f} requests/s, "
                f"{records / args.round_s:,.0f} records/s, statuses {statuses}"
            )
        median_req = statistics.median(r for r, _ in rates)
        median_rec = statistics.median(r for _, r in rates)
        print(
            f"median: {median_req:,.0f} update requests/s of {RECORDS_PER_REQUEST} records, "
            f"{median_rec:,.0f} records/s ({args.workers} connections, {os.cpu_count()} cpus)"
        )


def main() -> None:
    """Parse options, run the benchmark against a fresh simulator process, stop it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round-s", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=8, help="concurrent connections")
    parser.add_argument("--pool", type=int, default=10_000, help="records seeded and updated")
    args = parser.parse_args()
    proc, base_url = start_simulator([])
    try:
        asyncio.run(bench(args, base_url))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()

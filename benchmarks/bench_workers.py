"""Workers: one, two and four `migrate --workers N` processes side by side.

The simulator runs in its own process with 200 ms latency and caps (total
and heavy-write concurrency) high enough for four workers of
`[limits] concurrency = 10` each, so one worker can reach
10 x 100 / 0.2 s = 5,000 records/s and N workers N times that, until the
machine's cores run out. Each worker reads the whole feed and keeps its
partitions, so the feed's parsing is paid once per worker.

For reference, the same migration by one `migrate` process without
workers, on the PostgreSQL journal and on the SQLite journal: what the
PostgreSQL journal costs. Rates are records over the command's wall time,
process start-up included.

    python -m benchmarks.bench_workers [--records 50000] [--workers 1,2,4] [--rounds 3]
        [--dsn postgresql://postgres@127.0.0.1:5432/test]

Each round runs every contender once, in an order rotated round by round;
the table quotes each contender's median wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import (
    FIRST_ID,
    REPO,
    admin,
    free_port,
    median,
    server_process,
    write_config,
    write_update_feed,
)

LATENCY_MS = 200
CONCURRENCY = 10


def drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()

    asyncio.run(drop())


def with_journal(config: Path, journal: str) -> None:
    """Replaces the config's `[journal]` table by `journal`."""
    text = config.read_text(encoding="utf-8")
    config.write_text(text[: text.index("[journal]")] + journal, encoding="utf-8")


def timed(args: list[str]) -> float:
    """Runs `syncengine ARGS` and returns its wall time; fails on a non-zero exit."""
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "syncengine", "--log-format", "json", *args],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.monotonic() - started
    if completed.returncode != 0:
        raise SystemExit(
            f"{args}: exit {completed.returncode}\n{completed.stderr.decode()[-3000:]}"
        )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    counts = [int(part) for part in args.workers.split(",")]
    port = free_port()
    cap = CONCURRENCY * max(counts) + 10
    sim_args = ["-m", "syncengine.sim", "--port", str(port), "--admin"]
    sim_args += ["--latency-ms", str(LATENCY_MS), "--concurrency", str(cap)]
    sim_args += ["--heavy-concurrency", str(cap), "--credits", "100000000", "--mint-limit", "1000"]
    one_worker_cap = CONCURRENCY * 100 / (LATENCY_MS / 1000)
    with tempfile.TemporaryDirectory() as tmp, server_process(sim_args, port):
        folder = Path(tmp)
        feed = folder / "feed.jsonl"
        write_update_feed(feed, args.records)
        config = write_config(folder, port=port, feed=feed, concurrency=CONCURRENCY)

        def fresh_sim() -> None:
            admin(port, "reset", {})
            admin(port, "seed", {"module": "Leads", "count": args.records, "id_start": FIRST_ID})

        contenders: list[tuple[str, list[str], bool]] = [
            ("migrate, SQLite journal", [], False),
            ("migrate, PostgreSQL journal", [], True),
        ] + [(f"migrate --workers {n}, PostgreSQL", ["--workers", str(n)], True) for n in counts]
        times: dict[str, list[float]] = {label: [] for label, _, _ in contenders}
        for round_index in range(args.rounds):
            shift = round_index % len(contenders)
            for label, extra, postgres in contenders[shift:] + contenders[:shift]:
                fresh_sim()
                schema = f"bench_{uuid.uuid4().hex[:10]}"
                if postgres:
                    journal = f'[journal]\nurl = "{args.dsn}"\nschema = "{schema}"\n'
                else:
                    for stale in folder.glob("bench.db*"):
                        stale.unlink()
                    journal = f'[journal]\npath = "{folder / "bench.db"}"\n'
                with_journal(config, journal)
                try:
                    times[label].append(timed(["migrate", "-c", str(config), *extra]))
                finally:
                    if postgres:
                        drop_schema(args.dsn, schema)
            print(
                f"round {round_index + 1}: "
                + ", ".join(f"{label} {values[-1]:.1f} s" for label, values in times.items())
            )
        rows = [(label, median(values)) for label, values in times.items()]
    reference = rows[0][1]
    print(
        f"{args.records:,} updates; simulator {LATENCY_MS} ms; one worker's cap "
        f"{one_worker_cap:,.0f} rec/s; {os.cpu_count()} cores"
    )
    print(f"median of {args.rounds} round(s)")
    print(f"{'':38} {'wall s':>8} {'rec/s':>9} {'vs SQLite':>10}")
    for label, elapsed in rows:
        rate = args.records / elapsed
        print(f"{label:38} {elapsed:8.1f} {rate:9,.0f} {reference / elapsed:9.2f}x")


if __name__ == "__main__":
    main()

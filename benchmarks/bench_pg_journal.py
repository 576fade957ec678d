"""What a PostgreSQL journal costs: the same `migrate` on an SQLite file and on PostgreSQL.

A simulator with zero latency (so the journal, not the CRM, sets the pace)
serves `--records` updates to seeded leads; `migrate` sends them with the
journal on an SQLite file, then with `[journal] url` on the local PostgreSQL
server, alternating round by round. Each round starts from a fresh journal
(file removed, schema dropped) and a freshly seeded simulator. Printed:
records per second of each (median of the rounds) and their ratio.

    python -m benchmarks.bench_pg_journal [--records 200000] [--rounds 3]
        [--dsn postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import (
    FIRST_ID,
    admin,
    free_port,
    median,
    run_engine_logged,
    server_process,
    write_config,
    write_update_feed,
)


async def _drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


def one_migrate(port: int, folder: Path, count: int, *, dsn: str | None) -> float:
    """Records per second of one `migrate` of `count` updates, from a fresh journal."""
    feed = folder / "feed.jsonl"
    config = write_config(folder, port=port, feed=feed)
    for stale in folder.glob("bench.db*"):
        stale.unlink()
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    if dsn is not None:
        text = config.read_text()
        journal = text[text.index("[journal]") :]
        config.write_text(text.replace(journal, f'[journal]\nurl = "{dsn}"\nschema = "{schema}"\n'))
    admin(port, "reset", {})
    admin(port, "seed", {"module": "Leads", "count": count, "id_start": FIRST_ID})
    try:
        started = time.perf_counter()
        summary, status = run_engine_logged(config, "migrate")
        elapsed = time.perf_counter() - started
    finally:
        if dsn is not None:
            asyncio.run(_drop_schema(dsn, schema))
    assert status == 0, f"engine exit status {status}: {summary}"
    assert summary["synced"] == count, summary
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    port = free_port()
    sim_args = ["-m", "syncengine.sim", "--port", str(port), "--admin", "--credits", "100000000"]
    rates: dict[str, list[float]] = {"sqlite": [], "postgres": []}
    with tempfile.TemporaryDirectory() as tmp, server_process(sim_args, port):
        folder = Path(tmp)
        write_update_feed(folder / "feed.jsonl", args.records)
        for round_no in range(args.rounds):
            for name, dsn in (("sqlite", None), ("postgres", args.dsn)):
                rate = one_migrate(port, folder, args.records, dsn=dsn)
                rates[name].append(rate)
                print(f"round {round_no + 1} {name:>8}: {rate:,.0f} records/s", flush=True)
    sqlite, postgres = median(rates["sqlite"]), median(rates["postgres"])
    print(
        f"migrate of {args.records:,} updates, median of {args.rounds} rounds: "
        f"SQLite journal {sqlite:,.0f} records/s, PostgreSQL journal {postgres:,.0f} records/s: "
        f"ratio {postgres / sqlite:.2f}"
    )


if __name__ == "__main__":
    main()

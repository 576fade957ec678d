"""Credits and wall time of one migration through the records API and through `auto`.

The same migration (updates of N seeded leads, one (module, operation)
group) runs twice on a fresh simulator: `migrate --api records`, then
`migrate --api auto`, which sends the group as bulk-write jobs of 25,000 rows
because 500 credits a job beat 1 credit per 10 records. The simulator's own
credit counter tells what each spent; the bar is auto <= 0.25 x records, with
the CRM holding every update both times.

    python -m benchmarks.bench_bulk_credits [--records 1000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    FIRST_ID,
    REPO,
    admin,
    free_port,
    run_summary,
    server_process,
    write_config,
    write_update_feed,
)


def migrate(config: Path, api: str) -> tuple[dict[str, object], float]:
    """`migrate --api API`: its summary event and wall time."""
    command = [sys.executable, "-m", "syncengine", "--log-format", "json", "migrate"]
    started = time.monotonic()
    completed = subprocess.run(
        [*command, "-c", str(config), "--api", api],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed_s = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr.decode()[-2000:]
    return run_summary(completed.stderr.decode()), elapsed_s


def one_migration(port: int, folder: Path, count: int, api: str) -> tuple[int, float]:
    """Credits the simulator counted and the wall time of one migration on a fresh CRM."""
    feed = folder / "feed.jsonl"
    if not feed.exists():
        write_update_feed(feed, count)
    config = write_config(folder, port=port, feed=feed, extra_limits="bulk_poll_s = 1")
    for stale in folder.glob("bench.db*"):
        stale.unlink()
    admin(port, "reset", {})
    admin(port, "seed", {"module": "Leads", "count": count, "id_start": FIRST_ID})
    before = int(admin(port, "stats")["credits_used"])
    summary, elapsed_s = migrate(config, api)
    credits = int(admin(port, "stats")["credits_used"]) - before
    assert summary["synced"] == count, summary
    assert summary["credits_spent"] == credits, (summary, credits)
    leads = admin(port, "records?module=Leads")["Leads"]
    sample = range(0, count, max(1, count // 1000))
    assert all(leads[str(FIRST_ID + n)]["fields"]["Company"] == f"Company {n}" for n in sample)
    return credits, elapsed_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    port = free_port()
    sim_args = ["-m", "syncengine.sim", "--port", str(port), "--admin", "--credits", "1000000000"]
    with tempfile.TemporaryDirectory() as tmp, server_process(sim_args, port):
        folder = Path(tmp)
        figures = {
            api: one_migration(port, folder, args.records, api) for api in ("records", "auto")
        }
    print(f"{args.records:,} updates in one migration")
    for api, (credits, elapsed_s) in figures.items():
        print(f"--api {api:>7}: {credits:>9,} credits, {elapsed_s:8.1f} s wall")
    ratio = figures["auto"][0] / figures["records"][0]
    print(f"auto / records credits: {ratio:.3f} (bar: <= 0.25): {ratio <= 0.25}")


if __name__ == "__main__":
    main()

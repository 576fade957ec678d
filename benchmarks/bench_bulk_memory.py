"""Peak memory and wall time of `migrate --api records` and `--api auto`, side by side.

Each size is migrated four times, each by a fresh `migrate` process: by
both APIs against the minimal sink (`sink.py`, which has no Bulk Write
endpoints, so `auto` finds bulk write unavailable at its org read and the
records pass sends everything) and against the simulator (which has them,
so `auto` sends the feed as jobs of 25,000 rows). The bars: `auto` peaks
within 1.5 x the records path's peak plus the census's fixed table
(32 MiB), and its peak does not grow with the feed (largest / smallest
size <= 1.2).

    python -m benchmarks.bench_bulk_memory [--sizes 1000000 2000000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

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

#: The census's table of 2^25 one-byte slots (`syncengine.bulk.census`).
CENSUS_MB = 32.0
APIS = ("records", "auto")


@dataclass(frozen=True, slots=True)
class Figures:
    """One migration: peak RSS of `migrate` alone and with its commit process, wall time."""

    peak_mb: float
    tree_mb: float
    wall_s: float


def migrate(config: Path, api: str, size: int) -> Figures:
    """`migrate --api API` in a fresh child, its RSS sampled every 20 ms; checks that it
    synced all `size` records."""
    command = [sys.executable, "-m", "syncengine", "--log-format", "json", "migrate"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    peak = tree_peak = 0
    log = config.with_name(f"migrate-{api}.log")
    started = time.monotonic()
    with (
        log.open("wb") as stderr,
        psutil.Popen(
            [*command, "-c", str(config), "--api", api],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        ) as process,
    ):
        while process.poll() is None:
            with contextlib.suppress(psutil.Error):
                rss = process.memory_info().rss
                tree = rss
                for child in process.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        tree += child.memory_info().rss
                peak, tree_peak = max(peak, rss), max(tree_peak, tree)
            time.sleep(0.02)
    wall_s = time.monotonic() - started
    text = log.read_text(encoding="utf-8", errors="replace")
    status = process.returncode
    assert status == 0, f"migrate --api {api}: exit {status}\n{text[-2000:]}"
    synced = run_summary(text)["synced"]
    assert synced == size, f"migrate --api {api}: {synced} of {size} synced"
    return Figures(peak / 2**20, tree_peak / 2**20, wall_s)


def fresh(folder: Path) -> None:
    for stale in folder.glob("bench.db*"):
        stale.unlink()


def against_sink(folder: Path, feed: Path, size: int) -> dict[str, Figures]:
    port = free_port()
    sink = [str(REPO / "benchmarks" / "sink.py"), "--port", str(port)]
    with server_process(sink, port):
        config = write_config(folder, port=port, feed=feed, extra_limits="bulk_poll_s = 1")
        figures = {}
        for api in APIS:
            fresh(folder)
            figures[api] = migrate(config, api, size)
    return figures


def against_simulator(folder: Path, feed: Path, size: int) -> dict[str, Figures]:
    port = free_port()
    sim = ["-m", "syncengine.sim", "--port", str(port), "--admin", "--credits", "1000000000"]
    with server_process(sim, port):
        config = write_config(folder, port=port, feed=feed, extra_limits="bulk_poll_s = 1")
        figures = {}
        for api in APIS:
            fresh(folder)
            admin(port, "reset", {})
            admin(port, "seed", {"module": "Leads", "count": size, "id_start": FIRST_ID})
            figures[api] = migrate(config, api, size)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 2_000_000])
    args = parser.parse_args()
    auto_peaks: dict[str, list[float]] = {"sink": [], "simulator": []}
    bar_met = True
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size in args.sizes:
            feed = folder / "feed.jsonl"
            write_update_feed(feed, size)
            rounds = {
                "sink": against_sink(folder, feed, size),
                "simulator": against_simulator(folder, feed, size),
            }
            feed.unlink()
            for target, figures in rounds.items():
                records, auto = figures["records"], figures["auto"]
                bar = 1.5 * records.peak_mb + CENSUS_MB
                bar_met &= auto.peak_mb <= bar
                auto_peaks[target].append(auto.peak_mb)
                print(
                    f"{size:>10,} updates, {target:>9}: "
                    f"records {records.peak_mb:6.1f} MB ({records.tree_mb:6.1f} with commits) "
                    f"{records.wall_s:6.1f} s | "
                    f"auto {auto.peak_mb:6.1f} MB ({auto.tree_mb:6.1f}) {auto.wall_s:6.1f} s | "
                    f"auto - records {auto.peak_mb - records.peak_mb:+6.1f} MB "
                    f"(bar: auto <= 1.5 x records + {CENSUS_MB:.0f} = {bar:.1f} MB)",
                    flush=True,
                )
    print(f"auto within 1.5 x records + census at every size: {bar_met}")
    for target, peaks in auto_peaks.items():
        if len(peaks) > 1:
            ratio = peaks[-1] / peaks[0]
            print(f"auto peak, {target}, largest / smallest size: {ratio:.2f} (bar: <= 1.2)")


if __name__ == "__main__":
    main()

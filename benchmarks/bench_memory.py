"""(c) Memory: peak RSS of `migrate` on 1,000,000 and 5,000,000 records.

Bounded queues and a constant-memory reader mean the peak must not grow with
the feed: the bar is at most 150 MB at 1M, and at most 1.2 x that at 5M. The
engine sends to the minimal sink (`sink.py`) so the figure is the engine's.

    python -m benchmarks.bench_memory [--sizes 1000000 5000000] [--api records|auto]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from benchmarks.common import REPO, free_port, server_process, write_config, write_update_feed


def peak_rss_mb(config: Path, api: str) -> tuple[float, float, int]:
    """Runs `migrate` in a fresh child: (peak RSS of its whole process tree in MB,
    peak RSS of the `migrate` process alone in MB, exit status).

    The tree is `migrate` and its commit process (`journal/commit_worker.py`),
    sampled every 20 ms and summed, so the figure is what the machine gives the
    pass; the kernel's own peak (`ru_maxrss`) is per process, not per tree.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-m",
        "syncengine",
        "--log-format",
        "json",
        "migrate",
        "-c",
        str(config),
        "--api",
        api,
    ]
    tree_peak = main_peak = 0
    with psutil.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as process:
        while process.poll() is None:
            with contextlib.suppress(psutil.Error):
                main_rss = process.memory_info().rss
                tree = main_rss
                for child in process.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        tree += child.memory_info().rss
                tree_peak, main_peak = max(tree_peak, tree), max(main_peak, main_rss)
            time.sleep(0.02)
        status = process.returncode
    return tree_peak / 2**20, main_peak / 2**20, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument(
        "--api",
        choices=["records", "auto"],
        default="records",
        help="migrate's write API (records: the engine's own path; the sink has no Bulk "
        "Write, so auto measures the bulk phase giving up; bench_bulk_memory measures it "
        "against the simulator)",
    )
    args = parser.parse_args()
    port = free_port()
    peaks: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        server_process([str(REPO / "benchmarks" / "sink.py"), "--port", str(port)], port),
    ):
        folder = Path(tmp)
        for size in args.sizes:
            feed = folder / f"feed-{size}.jsonl"
            write_update_feed(feed, size)
            config = write_config(folder, port=port, feed=feed)
            for stale in folder.glob("bench.db*"):
                stale.unlink()
            peak, main_peak, status = peak_rss_mb(config, args.api)
            assert status == 0, f"migrate exit status {status}"
            peaks.append(peak)
            feed.unlink()
            print(
                f"{size:>10,} records: peak RSS {peak:.1f} MB "
                f"(migrate and its commit process; migrate alone {main_peak:.1f} MB)"
            )
    if len(peaks) > 1:
        print(f"ratio largest/smallest: {peaks[-1] / peaks[0]:.2f} (bar: <= 1.2; first <= 150 MB)")


if __name__ == "__main__":
    main()

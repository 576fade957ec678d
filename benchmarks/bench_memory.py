"""(c) Memory: peak RSS of `migrate` on 1,000,000 and 5,000,000 records.

Bounded queues and a constant-memory reader mean the peak must not grow with
the feed: the bar is at most 150 MB at 1M, and at most 1.2 x that at 5M. The
engine sends to the minimal sink (`sink.py`) so the figure is the engine's.

    python -m benchmarks.bench_memory [--sizes 1000000 5000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import REPO, free_port, server_process, write_config, write_update_feed

_MEASURE = """
import resource, subprocess, sys
completed = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(completed.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_rss_mb(config: Path) -> tuple[float, int]:
    """Runs `migrate` in a fresh child and returns (its peak RSS in MB, exit status)."""
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
    ]
    output = (
        subprocess.run(
            [sys.executable, "-c", _MEASURE, *command], env=env, capture_output=True, check=True
        )
        .stdout.decode()
        .split()
    )
    return int(output[1]) / 1024, int(output[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
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
            peak, status = peak_rss_mb(config)
            assert status == 0, f"migrate exit status {status}"
            peaks.append(peak)
            feed.unlink()
            print(f"{size:>10,} records: peak RSS {peak:.1f} MB")
    if len(peaks) > 1:
        print(f"ratio largest/smallest: {peaks[-1] / peaks[0]:.2f} (bar: <= 1.2; first <= 150 MB)")


if __name__ == "__main__":
    main()

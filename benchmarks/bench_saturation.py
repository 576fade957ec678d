"""(b) Saturation: does the engine fill the CRM's concurrency cap, and no more?

The simulator runs in its own process with 200 ms ± 50 ms latency and a cap of
10 concurrent calls. With chunks of 100 the most any client can do is
10 × 100 / 0.2 s = 5,000 records/s; the bar is 0.95 of that with zero 429s.

    python -m benchmarks.bench_saturation [--records 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
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

LATENCY_S = 0.2
CAP = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    # 200 ms ± 50 ms: the simulator adds uniform(0, jitter) to its base latency.
    sim_args = ["-m", "syncengine.sim", "--port", str(port), "--admin"]
    sim_args += ["--latency-ms", "150", "--jitter-ms", "100", "--concurrency", str(CAP)]
    theoretical = CAP * 100 / LATENCY_S
    with tempfile.TemporaryDirectory() as tmp, server_process(sim_args, port):
        folder = Path(tmp)
        feed = folder / "feed.jsonl"
        write_update_feed(feed, args.records)
        config = write_config(folder, port=port, feed=feed, concurrency=CAP)
        rates, throttled = [], []
        for round_index in range(args.rounds):
            admin(port, "reset", {})
            admin(port, "seed", {"module": "Leads", "count": args.records, "id_start": FIRST_ID})
            for stale in folder.glob("bench.db*"):
                stale.unlink()
            summary, status = run_engine_logged(config)
            assert status == 0, f"engine exit status {status}"
            stats = admin(port, "stats")
            rate = float(summary["synced"]) / float(summary["elapsed_s"])  # type: ignore[arg-type]
            rates.append(rate)
            throttled.append(int(stats["throttled"]))  # type: ignore[call-overload]
            print(
                f"round {round_index + 1}: {rate:,.0f} rec/s = {rate / theoretical:.3f} of "
                f"{theoretical:,.0f}; 429s {throttled[-1]}; max in flight {stats['max_in_flight']}"
            )
        print(
            f"median: {median(rates):,.0f} rec/s, {median(rates) / theoretical:.3f} of theoretical "
            f"(bar: >= 0.95); 429s in all rounds: {sum(throttled)} (bar: 0)"
        )


if __name__ == "__main__":
    main()

"""Credits of a nightly full export, with and without `[crm] skip_unchanged`.

A 100,000-row table is exported to the feed's path, synced with `run`,
exported again with 5 % of its rows changed (a new file moved into place, as
a nightly dump does) and synced again. Side by side: the same two nights
with skip_unchanged off. The simulator's own credit counter tells what each
run spent; the bar is that the second night with skip_unchanged spends at
most 0.06 x the first night's credits, sends exactly the changed records,
and leaves the CRM equal to the export.

    python -m benchmarks.bench_skip_unchanged [--records 100000] [--changed 0.05]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import orjson

from benchmarks.common import (
    FIRST_ID,
    admin,
    free_port,
    run_engine_logged,
    server_process,
    write_config,
)


def export(path: Path, count: int, changed: set[int]) -> None:
    """The table as JSONL, written beside the feed and moved into place."""
    fresh = path.with_suffix(".tmp")
    with fresh.open("wb") as out:
        for n in range(count):
            tag = "v2" if n in changed else "v1"
            row = {"id": str(FIRST_ID + n), "Company": f"Company {n} {tag}", "Phone": f"555-{n}"}
            out.write(orjson.dumps(row) + b"\n")
    os.replace(fresh, path)


def crm_matches(port: int, count: int, changed: set[int]) -> bool:
    leads = admin(port, "records?module=Leads")["Leads"]
    return len(leads) == count and all(
        leads[str(FIRST_ID + n)]["fields"]["Company"]
        == f"Company {n} {'v2' if n in changed else 'v1'}"
        for n in range(count)
    )


def two_nights(port: int, folder: Path, count: int, changed: set[int], *, skip: bool) -> list[int]:
    """Credits and records written of each night: [credits 1, written 1, credits 2, written 2]."""
    feed = folder / "export.jsonl"
    config = write_config(folder, port=port, feed=feed)
    text = config.read_text().replace(
        'operation = "update"', f'operation = "update"\nskip_unchanged = {str(skip).lower()}'
    )
    config.write_text(text)
    for stale in folder.glob("bench.db*"):
        stale.unlink()
    admin(port, "reset", {})
    admin(port, "seed", {"module": "Leads", "count": count, "id_start": FIRST_ID})
    figures = []
    for night in (set(), changed):
        export(feed, count, night)
        before = admin(port, "stats")
        summary, status = run_engine_logged(config)
        assert status == 0, f"engine exit status {status}"
        after = admin(port, "stats")
        figures.append(int(after["credits_used"]) - int(before["credits_used"]))
        figures.append(int(after["records_written"]) - int(before["records_written"]))
        assert summary["credits_spent"] == figures[-2], (summary, figures)
    assert crm_matches(port, count, changed), "the CRM differs from the export"
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.05)
    args = parser.parse_args()
    step = round(1 / args.changed)
    changed = set(range(0, args.records, step))
    port = free_port()
    sim_args = ["-m", "syncengine.sim", "--port", str(port), "--admin", "--credits", "100000000"]
    with tempfile.TemporaryDirectory() as tmp, server_process(sim_args, port):
        folder = Path(tmp)
        off = two_nights(port, folder, args.records, changed, skip=False)
        on = two_nights(port, folder, args.records, changed, skip=True)
    print(f"{args.records:,} rows, {len(changed):,} changed on the second night")
    for name, (c1, w1, c2, w2) in (("skip_unchanged off", off), ("skip_unchanged on", on)):
        print(
            f"{name:>19}: night 1 {c1:,} credits ({w1:,} written); "
            f"night 2 {c2:,} credits ({w2:,} written) = {c2 / c1:.3f} of night 1"
        )
    c1, _, c2, w2 = on
    print(
        f"second night with skip_unchanged: {c2 / c1:.3f} x the first (bar: <= 0.06); "
        f"records sent {w2:,} = changed {len(changed):,}: {w2 == len(changed)}; "
        f"vs off: {c2 / off[2]:.3f} x the credits"
    )


if __name__ == "__main__":
    main()

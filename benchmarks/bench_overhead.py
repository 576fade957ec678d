"""(a) Overhead: the engine against a bare aiohttp loop, same chunks, same sink.

Both send the same JSONL feed, in chunks of 100 updates with 10 requests in
flight, to the minimal sink (`sink.py`) running in its own process. The bare
loop only reads, chunks and PUTs; the engine also parses, coalesces, keeps
per-record order, journals every outcome and checkpoints. The ratio of their
records per second is the engine's overhead figure (the bar is ≥ 0.3).

    python -m benchmarks.bench_overhead [--records 300000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from benchmarks.common import (
    REPO,
    free_port,
    median,
    run_engine_logged,
    server_process,
    write_config,
    write_update_feed,
)


async def bare_loop(feed: Path, port: int, *, concurrency: int = 10) -> float:
    """Reads the feed, cuts chunks of 100, PUTs them with `concurrency` workers; returns s."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(concurrency * 2)
    url = f"http://127.0.0.1:{port}/crm/v2/Leads"
    headers = {"Authorization": "Zoho-oauthtoken sink-token", "Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while (body := await queue.get()) is not None:
            async with session.put(url, data=body, headers=headers) as response:
                answer = orjson.loads(await response.read())
                assert len(answer["data"]) > 0

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        workers = [asyncio.create_task(worker(session)) for _ in range(concurrency)]
        with feed.open("rb") as lines:
            chunk: list[object] = []
            for line in lines:
                chunk.append(orjson.loads(line))
                if len(chunk) == 100:
                    await queue.put(orjson.dumps({"data": chunk, "trigger": []}))
                    chunk = []
            if chunk:
                await queue.put(orjson.dumps({"data": chunk, "trigger": []}))
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-validate",
        action="store_true",
        help="Run the engine with [crm] validate = false (no checks before sending).",
    )
    parser.add_argument(
        "--compare-validation",
        action="store_true",
        help="Each round also runs the engine with validate = false: what validation costs.",
    )
    args = parser.parse_args()
    if args.compare_validation:
        compare_validation(args.records, args.rounds)
        return
    port = free_port()
    with (
        tempfile.TemporaryDirectory() as tmp,
        server_process([str(REPO / "benchmarks" / "sink.py"), "--port", str(port)], port),
    ):
        folder = Path(tmp)
        feed = folder / "feed.jsonl"
        write_update_feed(feed, args.records)
        extra_crm = "validate = false" if args.no_validate else ""
        config = write_config(folder, port=port, feed=feed, extra_crm=extra_crm)
        engine_rates, bare_rates = [], []
        for round_index in range(args.rounds):
            for stale in folder.glob("bench.db*"):
                stale.unlink()
            summary, status = run_engine_logged(config)
            assert status == 0, f"engine exit status {status}"
            # The pass's own rate (its summary line): interpreter start-up excluded,
            # journal, token and every stage included.
            engine_rates.append(float(summary["synced"]) / float(summary["elapsed_s"]))  # type: ignore[arg-type]
            bare_rates.append(args.records / asyncio.run(bare_loop(feed, port)))
            print(
                f"round {round_index + 1}: engine {engine_rates[-1]:,.0f} rec/s, "
                f"bare loop {bare_rates[-1]:,.0f} rec/s, "
                f"ratio {engine_rates[-1] / bare_rates[-1]:.2f}"
            )
        ratios = [e / b for e, b in zip(engine_rates, bare_rates, strict=True)]
        print(
            f"median: engine {median(engine_rates):,.0f} rec/s, bare {median(bare_rates):,.0f} "
            f"rec/s, ratio {median(ratios):.2f} (bar: >= 0.30)"
        )


def compare_validation(records: int, rounds: int) -> None:
    """The engine with and without `[crm] validate`, side by side, round by round.

    The bar: validation costs the pass at most 10 % of its records per second.
    """
    port = free_port()
    with (
        tempfile.TemporaryDirectory() as tmp,
        server_process([str(REPO / "benchmarks" / "sink.py"), "--port", str(port)], port),
    ):
        folder = Path(tmp)
        feed = folder / "feed.jsonl"
        write_update_feed(feed, records)
        rates: dict[bool, list[float]] = {True: [], False: []}
        for round_index in range(rounds):
            for validate in (True, False) if round_index % 2 == 0 else (False, True):
                for stale in folder.glob("bench.db*"):
                    stale.unlink()
                extra_crm = "" if validate else "validate = false"
                config = write_config(folder, port=port, feed=feed, extra_crm=extra_crm)
                summary, status = run_engine_logged(config)
                assert status == 0, f"engine exit status {status}"
                rates[validate].append(float(summary["synced"]) / float(summary["elapsed_s"]))  # type: ignore[arg-type]
            print(
                f"round {round_index + 1}: with validation {rates[True][-1]:,.0f} rec/s, "
                f"without {rates[False][-1]:,.0f} rec/s, "
                f"ratio {rates[True][-1] / rates[False][-1]:.3f}"
            )
        ratios = [w / o for w, o in zip(rates[True], rates[False], strict=True)]
        print(
            f"median: with validation {median(rates[True]):,.0f} rec/s, without "
            f"{median(rates[False]):,.0f} rec/s; ratio of medians "
            f"{median(rates[True]) / median(rates[False]):.3f}, median of round ratios "
            f"{median(ratios):.3f} (bar: >= 0.90)"
        )


if __name__ == "__main__":
    main()

"""The live progress bar of `migrate`: done / total, rate, ETA, failures so far.

tqdm draws the bar (it handles terminal width, rate smoothing and ETA, which
is why it is a dependency rather than hand-written code). The bar polls the
pass's counters a few times a second instead of being called per record, so
it costs the hot path nothing.

One bar covers the whole pass. While the bulk phase runs (`migrate --api
bulk|auto`) it is labelled `bulk` and counts the rows bulk-write jobs
settled, with the jobs created; the records pass that follows is labelled
`records` and adds what it sends to those rows, so the bar ends at the
pass's total either way. Rows a job handed to the records pass are counted
once, when that pass settles them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from tqdm import tqdm


class _Counts(Protocol):
    @property
    def synced(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def retries_scheduled(self) -> int: ...


class _Engine(Protocol):
    """What the bar reads of the records pass (`engine.Engine`)."""

    @property
    def counts(self) -> _Counts: ...
    @property
    def stopped_early(self) -> bool: ...


class _BulkCounts(Protocol):
    """What the bar reads of the bulk phase (`bulk.job_runner.BulkCounts`)."""

    @property
    def planned(self) -> int: ...
    @property
    def jobs(self) -> int: ...
    @property
    def synced(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def merged(self) -> bool: ...


@dataclass(slots=True)
class Watched:
    """What the bar follows: the pass's engine, and the bulk phase's counts once it runs.

    `append` takes the engine (`run_pass(on_engine=...)`), `bulk` the bulk
    phase's live counts (`run_pass(on_bulk=...)`).
    """

    engine: _Engine | None = None
    bulk_counts: _BulkCounts | None = None

    def append(self, engine: _Engine) -> None:
        """Follow `engine`'s counts (the records pass)."""
        self.engine = engine

    def bulk(self, counts: _BulkCounts) -> None:
        """Follow the bulk phase's counts."""
        self.bulk_counts = counts


def done_and_label(watched: Watched) -> tuple[int, int, int, str, dict[str, int]]:
    """(done, failed, retrying, label, extra postfix) of the pass as it stands; pure.

    The label is empty when no bulk phase picked rows (the bar then looks
    as it always did); else `bulk` until the records pass has settled
    something, then `records`. Once `run_pass` has added the bulk phase's rows into the
    engine's counts (`merged`), they are not added again.
    """
    engine_done = engine_failed = retrying = 0
    if watched.engine is not None:
        counts = watched.engine.counts
        engine_done, engine_failed = counts.synced + counts.failed, counts.failed
        retrying = counts.retries_scheduled
    bulk = watched.bulk_counts
    if bulk is None or not bulk.planned:  # no bulk phase, or it picked nothing
        return engine_done, engine_failed, retrying, "", {}
    if bulk.merged:
        return engine_done, engine_failed, retrying, "records", {}
    done = engine_done + bulk.synced + bulk.failed
    failed = engine_failed + bulk.failed
    if engine_done:
        return done, failed, retrying, "records", {}
    return done, failed, retrying, "bulk", {"jobs": bulk.jobs}


@contextlib.asynccontextmanager
async def progress_bar(
    total: int | None,
    *,
    stream: TextIO | None = None,
    interval_s: float = 0.25,
    force: bool = False,
) -> AsyncIterator[Watched]:
    """Shows a bar while the block runs; the block hands it the engine (and bulk counts).

    The bar is drawn only on a terminal (tqdm's `disable=None`), so cron
    output and CI logs stay clean; the run's summary line is logged anyway,
    as each bulk-write job's `bulk.job_done` line is. `force` draws it on any
    stream (tests).
    """
    out = stream or sys.stderr
    watched = Watched()
    bar: tqdm[Any] = tqdm(
        total=total,
        unit="rec",
        file=out,
        disable=False if force else None,
        dynamic_ncols=True,
        smoothing=0.1,
    )
    task = asyncio.create_task(_refresh(bar, watched, interval_s))
    try:
        yield watched
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        _update(bar, watched, final=True)
        bar.close()


def _update(bar: tqdm[Any], watched: Watched, *, final: bool = False) -> None:
    if watched.engine is None and watched.bulk_counts is None:
        return
    done, failed, retrying, label, extra = done_and_label(watched)
    stopped = watched.engine is not None and watched.engine.stopped_early
    finished = final and not stopped
    if bar.total is not None and (done > bar.total or finished):
        bar.total = done  # the total was an estimate from the file size
    bar.n = done
    bar.set_description_str(label, refresh=False)
    bar.set_postfix({"failed": failed, "retrying": retrying, **extra}, refresh=False)
    bar.refresh()


async def _refresh(bar: tqdm[Any], watched: Watched, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        _update(bar, watched)

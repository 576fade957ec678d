"""The live progress bar of `migrate`: done / total, rate, ETA, failures so far.

tqdm draws the bar (it handles terminal width, rate smoothing and ETA, which
is why it is a dependency rather than hand-written code). The bar polls the
engine's counters a few times a second instead of being called per record, so
it costs the hot path nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

from tqdm import tqdm

from syncengine.engine import Engine


@contextlib.asynccontextmanager
async def progress_bar(
    total: int | None, *, stream: TextIO | None = None, interval_s: float = 0.25
) -> AsyncIterator[list[Engine]]:
    """Shows a bar while the block runs; the block appends the engine to watch.

    The bar is drawn only on a terminal (tqdm's `disable=None`), so cron
    output and CI logs stay clean; the run's summary line is logged anyway.
    """
    out = stream or sys.stderr
    watched: list[Engine] = []
    bar: tqdm[Any] = tqdm(
        total=total, unit="rec", file=out, disable=None, dynamic_ncols=True, smoothing=0.1
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


def _update(bar: tqdm[Any], watched: list[Engine], *, final: bool = False) -> None:
    if not watched:
        return
    engine = watched[0]
    counts = engine.counts
    done = counts.synced + counts.failed
    finished = final and not engine.stopped_early
    if bar.total is not None and (done > bar.total or finished):
        bar.total = done  # the total was an estimate from the file size
    bar.n = done
    bar.set_postfix(failed=counts.failed, retrying=counts.retries_scheduled, refresh=False)
    bar.refresh()


async def _refresh(bar: tqdm[Any], watched: list[Engine], interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        _update(bar, watched)

"""The run timeline: rows between readings, the sampler, storage and thinning."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from syncengine.config import JournalConfig
from syncengine.journal import Journal
from syncengine.journal.schema import prepare_file
from syncengine.journal.timeline import (
    KEEP_S,
    THIN_AFTER_S,
    THIN_SPAN_S,
    Reading,
    TimelineRow,
    row_between,
)
from syncengine.sampler import TimelineSampler
from tests.journal_backends import journal_target  # noqa: F401 - a fixture (both backends)


def _reading(n: int = 0, *, in_flight: int = 0, throttled: int = 0) -> Reading:
    return Reading(
        read=n,
        synced=n,
        failed=0,
        retried=0,
        requests=n // 100,
        throttled=throttled,
        in_flight=in_flight,
        limit=8,
        queue_depth=3,
        sync_lag_s=0.5,
        credits=None,
    )


def _row(t: float, *, synced: int = 500, span_s: float = 5.0, requests: int = 5) -> TimelineRow:
    return TimelineRow(t, span_s, synced, synced, 0, 0, requests, 0, 2.0, 8, 0, 0.0, 900)


def test_a_row_holds_the_counts_of_its_span_and_the_gauges_at_its_end() -> None:
    row = row_between(
        _reading(1000), _reading(1500, throttled=2), t=10.0, span_s=5.0, mean_in_flight=4.0
    )
    assert (row.read, row.synced, row.requests, row.throttled) == (500, 500, 5, 2)
    assert (row.limit, row.queue_depth, row.in_flight) == (8, 3, 4.0)
    # Little's law: 4 in flight at 1 request/s means 4 s per request.
    assert row.latency_s == 4.0


def test_latency_is_unknown_when_nothing_was_sent() -> None:
    assert _row(1.0, requests=0).latency_s is None


async def test_the_sampler_writes_a_row_per_period_with_the_mean_in_flight() -> None:
    now = [100.0]
    current = [_reading(0)]
    written: list[TimelineRow] = []

    async def write(row: TimelineRow) -> None:
        written.append(row)

    sampler = TimelineSampler(lambda: current[0], write, clock=lambda: now[0])
    for in_flight in (2, 4, 6):
        current[0] = _reading(300, in_flight=in_flight)
        sampler.tick()
    now[0] = 105.0
    await sampler.emit()
    now[0] = 105.0
    await sampler.emit()  # an empty span writes nothing
    assert len(written) == 1
    assert written[0].t == 105.0
    assert written[0].span_s == 5.0
    assert written[0].synced == 300
    assert written[0].in_flight == 4.0


async def test_rows_are_stored_per_run_in_time_order(
    journal_target: Path | JournalConfig,  # noqa: F811
) -> None:
    async with await Journal.open(journal_target) as journal:
        run_a = await journal.start_run("migrate", now=1.0)
        run_b = await journal.start_run("run", now=2.0)
        await journal.add_timeline(run_a, _row(20.0))
        await journal.add_timeline(run_a, _row(10.0, synced=7))
        await journal.add_timeline(run_b, _row(30.0))
        rows = await journal.timeline(run_a)
        assert [(row.t, row.synced, row.credits) for row in rows] == [
            (10.0, 7, 900),
            (20.0, 500, 900),
        ]
        assert [run.run_id for run in await journal.runs(since=1.5)] == [run_b]
        assert [run.command for run in await journal.runs(run_id=run_a)] == ["migrate"]


async def test_old_rows_are_merged_into_long_spans_and_expired_ones_dropped(
    journal_target: Path | JournalConfig,  # noqa: F811
) -> None:
    now = 1_000 * THIN_SPAN_S + THIN_AFTER_S + 1_000.0
    old = now - THIN_AFTER_S - 10 * THIN_SPAN_S  # a whole 5-minute bucket, one day back
    bucket_start = (int(old // THIN_SPAN_S)) * THIN_SPAN_S
    async with await Journal.open(journal_target) as journal:
        run_id = await journal.start_run("daemon", now=0.0)
        for i in range(60):  # 60 rows of 5 s: exactly one thinned span
            await journal.add_timeline(run_id, _row(bucket_start + 5.0 * i + 1.0))
        await journal.add_timeline(run_id, _row(now - KEEP_S - 1.0))  # expired
        await journal.add_timeline(run_id, _row(now - 10.0))  # recent: kept as it is
        await journal.thin_timeline(now=now)
        rows = await journal.timeline(run_id)
    assert len(rows) == 2
    merged, recent = rows
    assert merged.span_s == THIN_SPAN_S
    assert merged.synced == 60 * 500
    assert merged.requests == 300
    assert merged.in_flight == 2.0
    assert recent.t == now - 10.0
    assert recent.span_s == 5.0


def test_a_version_3_journal_gains_the_timeline(tmp_path: Path) -> None:
    from syncengine.journal.schema import MIGRATIONS, migrate

    path = tmp_path / "j.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, path, migrations=MIGRATIONS[:3])
    conn.close()
    assert prepare_file(path, busy_timeout_s=1.0) == 3
    conn = sqlite3.connect(path)
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "timeline" in tables


async def test_rows_are_fine_in_the_first_minute_then_coarse() -> None:
    """1-second rows while the pass is young (a short run still has a shape), then 5 s."""
    now = [0.0]
    written: list[TimelineRow] = []

    def read() -> Reading:
        now[0] += 0.5  # each reading is half a second after the last
        return _reading(int(now[0] * 100))

    async def write(row: TimelineRow) -> None:
        written.append(row)

    sampler = TimelineSampler(
        read,
        write,
        tick_s=0.0005,
        period_s=5.0,
        fine_period_s=1.0,
        fine_for_s=4.0,
        clock=lambda: now[0],
    )
    task = asyncio.create_task(sampler.run())
    while now[0] < 40.0:
        await asyncio.sleep(0.005)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    young = [row.span_s for row in written if row.t <= 4.5]
    old = [row.span_s for row in written if row.t > 10.0]
    assert young
    assert all(span < 2.0 for span in young)
    assert old
    assert all(5.0 <= span < 6.0 for span in old)

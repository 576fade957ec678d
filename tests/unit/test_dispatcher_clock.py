"""Linger, grace, the retry schedule and the sync lag of a pass, on a fake clock.

A real engine over a real journal, with a feed and a writer in memory; only
time is fake, so each test says exactly when something must (not) happen.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

from syncengine.backoff import backoff_s
from syncengine.crm.client import WriteRequest
from syncengine.engine import Engine, EngineSettings
from syncengine.journal import Journal
from syncengine.model import Change, Checkpoint, Operation, RecordOutcome, SourcePosition, Verdict
from syncengine.sources.base import Item
from tests.fake_clock import FakeClock


class MemoryFeed:
    """`count` updates, then either the end or a feed that stays quiet."""

    def __init__(self, count: int, *, ends: bool) -> None:
        self._count = count
        self._ends = ends

    @property
    def source_id(self) -> str:
        return "memory:feed"

    async def read(self, start: Checkpoint | None) -> AsyncGenerator[list[Item], None]:
        yield [
            Change(
                "Leads",
                Operation.UPDATE,
                {"id": str(n), "Company": f"c{n}"},
                f"Leads:{n}",
                [SourcePosition(n, n + 1, n + 1)],
            )
            for n in range(self._count)
        ]
        if not self._ends:
            await asyncio.Event().wait()  # a feed with nothing more yet

    def follow(
        self, start: Checkpoint | None, *, poll_interval_s: float
    ) -> AsyncGenerator[list[Item], None]:
        return self.read(start)

    def estimate_total(self, start: Checkpoint | None) -> int | None:
        return None


class ScriptedWriter:
    """Answers with `verdicts` in turn (SYNCED after them); waits for `release` if not set."""

    def __init__(self, *verdicts: Verdict, gated: bool = False) -> None:
        self.requests: list[WriteRequest] = []
        self._verdicts = list(verdicts)
        self.release = asyncio.Event()
        if not gated:
            self.release.set()

    async def write(self, request: WriteRequest) -> list[RecordOutcome]:
        self.requests.append(request)
        await self.release.wait()
        verdict = self._verdicts.pop(0) if self._verdicts else Verdict.SYNCED
        code = "SUCCESS" if verdict is Verdict.SYNCED else "TOO_MANY_REQUESTS"
        return [RecordOutcome(verdict, code) for _ in request.records]


async def until(check: Callable[[], bool]) -> None:
    """Lets the event loop run (real time, in milliseconds) until `check` holds."""
    for _ in range(2_000):
        if check():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("not true within 2 s of real time")


async def idle() -> None:
    """A few milliseconds of real time for anything that was going to happen."""
    await asyncio.sleep(0.005)


def engine(
    journal: Journal, feed: MemoryFeed, writer: ScriptedWriter, clock: FakeClock, **knobs: float
) -> Engine:
    settings = EngineSettings(module="Leads", workers=2, flush_interval_s=0.001, **knobs)  # type: ignore[arg-type]
    return Engine(
        journal=journal,
        writer=writer,
        settings=settings,
        source=feed,
        clock=clock,
        rng=random.Random(7),
    )


async def test_a_partial_chunk_waits_exactly_linger_s_of_clock_time(tmp_path: Path) -> None:
    clock, writer = FakeClock(), ScriptedWriter()
    async with await Journal.open(
        tmp_path / "journal.db", holder="test", commit_process=True
    ) as journal:
        pass_ = engine(journal, MemoryFeed(3, ends=False), writer, clock, linger_s=5.0)
        stop = asyncio.Event()
        running = asyncio.create_task(pass_.run(stop))
        await until(lambda: pass_.counts.read == 3)
        clock.advance(4.9)
        await idle()
        assert writer.requests == []  # 4.9 s in: the partial chunk still waits for company
        clock.advance(0.2)
        await until(lambda: len(writer.requests) == 1)
        assert len(writer.requests[0].records) == 3
        await until(lambda: pass_.counts.synced == 3)
        stop.set()
        await asyncio.wait_for(running, 2)


async def test_a_stop_waits_grace_s_of_clock_time_for_chunks_in_flight(tmp_path: Path) -> None:
    clock, writer = FakeClock(), ScriptedWriter(gated=True)
    async with await Journal.open(
        tmp_path / "journal.db", holder="test", commit_process=True
    ) as journal:
        pass_ = engine(journal, MemoryFeed(3, ends=True), writer, clock, grace_s=30.0)
        stop = asyncio.Event()
        running = asyncio.create_task(pass_.run(stop))
        await until(lambda: len(writer.requests) == 1)
        stop.set()
        await idle()  # the pass has seen the stop and waits for the answer
        clock.advance(29.0)
        await idle()
        assert not running.done()  # within the grace period the answer may still come
        clock.advance(2.0)
        counts = await asyncio.wait_for(running, 2)
        assert pass_.stopped_early
        assert counts.synced == 0


async def test_a_retry_goes_out_when_its_backoff_has_passed_on_the_clock(tmp_path: Path) -> None:
    clock, writer = FakeClock(), ScriptedWriter(Verdict.RETRY)
    delay_s = backoff_s(1, base_s=10.0, cap_s=60.0, rng=random.Random(7))
    async with await Journal.open(
        tmp_path / "journal.db", holder="test", commit_process=True
    ) as journal:
        pass_ = engine(
            journal, MemoryFeed(1, ends=True), writer, clock, retry_base_s=10.0, retry_cap_s=60.0
        )
        running = asyncio.create_task(pass_.run(asyncio.Event()))
        await until(lambda: pass_.counts.retries_scheduled == 1)
        clock.advance(delay_s - 0.01)
        await idle()
        assert len(writer.requests) == 1  # not due yet
        clock.advance(0.02)
        counts = await asyncio.wait_for(running, 2)
        assert len(writer.requests) == 2
        assert counts.synced == 1


async def test_sync_lag_is_the_clock_time_since_the_oldest_unsettled_read(
    tmp_path: Path,
) -> None:
    clock, writer = FakeClock(), ScriptedWriter(gated=True)
    async with await Journal.open(
        tmp_path / "journal.db", holder="test", commit_process=True
    ) as journal:
        pass_ = engine(journal, MemoryFeed(2, ends=False), writer, clock, linger_s=0.0)
        assert pass_.sync_lag_s() == 0.0  # before the pass: nothing read
        stop = asyncio.Event()
        running = asyncio.create_task(pass_.run(stop))
        await until(lambda: len(writer.requests) == 1)
        clock.advance(7.0)
        assert pass_.sync_lag_s() == 7.0
        writer.release.set()
        await until(lambda: pass_.counts.synced == 2)
        await until(lambda: pass_.sync_lag_s() == 0.0)  # settled once journaled
        stop.set()
        await asyncio.wait_for(running, 2)


class LockedOnceWriter(ScriptedWriter):
    """Answers RECORD_LOCKED (a transient per-record code) once, then SUCCESS."""

    async def write(self, request: WriteRequest) -> list[RecordOutcome]:
        self.requests.append(request)
        if len(self.requests) == 1:
            return [RecordOutcome(Verdict.RETRY, "RECORD_LOCKED") for _ in request.records]
        return [RecordOutcome(Verdict.SYNCED, "SUCCESS") for _ in request.records]


async def test_a_locked_record_waits_a_minute_not_its_usual_backoff(tmp_path: Path) -> None:
    clock, writer = FakeClock(), LockedOnceWriter()
    async with await Journal.open(
        tmp_path / "journal.db", holder="test", commit_process=True
    ) as journal:
        pass_ = engine(
            journal, MemoryFeed(1, ends=True), writer, clock, retry_base_s=0.1, retry_cap_s=600.0
        )
        running = asyncio.create_task(pass_.run(asyncio.Event()))
        await until(lambda: pass_.counts.retries_scheduled == 1)
        clock.advance(59.0)  # far past the usual backoff of at most 0.1 s
        await idle()
        assert len(writer.requests) == 1  # a lock holder is given a minute
        clock.advance(1.5)
        counts = await asyncio.wait_for(running, 2)
        assert len(writer.requests) == 2
        assert counts.synced == 1

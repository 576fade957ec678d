"""One pass of the pipeline: feed → chunker → senders → recorder.

::

    journal (pending) ─┐
                       ├─▶ intake (bounded) ─▶ dispatcher ─▶ senders × N ─▶ CRM
    source (feed) ─────┘        ▲                │  ▲              │
                                │                │  └── outcomes ◀─┘
                           backpressure          ▼
                                              recorder ─▶ journal + checkpoint

The dispatcher is the only task that touches the chunker, the watermark and
the retry schedule, so they need no locks. Senders only call the CRM client;
the recorder only writes the journal. A stop request (signal) stops intake at
a batch boundary, lets the chunks already handed out finish within the grace
period and journals their outcomes; changes not yet sent stay before the
checkpoint and are read again by the next pass.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable

import structlog

from syncengine.backoff import backoff_s
from syncengine.engine.admission import Admission
from syncengine.engine.chunker import Chunker
from syncengine.engine.flusher import Flusher, wait_event
from syncengine.engine.intake import END, Intake
from syncengine.engine.read_times import ReadTimes
from syncengine.engine.recorder import PassCounts, Recorder
from syncengine.engine.replay import ReplayWindow
from syncengine.engine.retry_queue import RetrySchedule
from syncengine.engine.senders import Senders, Writer
from syncengine.engine.settings import EngineSettings
from syncengine.engine.watermark import Watermark
from syncengine.journal import Journal
from syncengine.model import (
    MAX_CHUNK_RECORDS,
    Change,
    Chunk,
    RecordOutcome,
    Verdict,
)
from syncengine.sources.base import Source

log = structlog.get_logger("syncengine.engine")


class Engine:
    """Runs one pass (`run`, `migrate`) or, with `follow`, until stopped."""

    def __init__(
        self,
        *,
        journal: Journal,
        writer: Writer,
        settings: EngineSettings,
        source: Source | None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._journal = journal
        self._settings = settings
        self._source = source
        self._clock = clock
        self._rng = rng or random.Random()
        self._chunker = Chunker(max_records=100)
        self._wake = asyncio.Event()
        self._intake = Intake(
            journal,
            source,
            batches=settings.intake_batches,
            follow_poll_interval_s=settings.follow_poll_interval_s,
            wake=self._wake.set,
            fail=self._fail,
        )
        self._senders = Senders(
            writer,
            workers=settings.workers,
            apply_feature_execution=settings.apply_feature_execution,
            duplicate_check_fields=settings.duplicate_check_fields,
            on_answer=self._wake.set,
            on_fatal=self._fail_and_wake,
        )
        self._ready: deque[Chunk] = deque()
        self._flusher: Flusher | None = None
        self._retries = RetrySchedule()
        self._fatal: BaseException | None = None
        self._watermark: Watermark | None = None
        self._recorder: Recorder | None = None
        self._admission: Admission | None = None
        self._replay = ReplayWindow(journal, None, None)
        self._read_times = ReadTimes()
        self._drain_deadline: float | None = None
        #: At most this many records are ever sent-but-not-journaled: one full
        #: round in flight and one round of answers waiting for the group commit.
        self._max_unjournaled = 2 * settings.workers * MAX_CHUNK_RECORDS
        self.stopped_early = False

    @property
    def counts(self) -> PassCounts:
        """Live counts of this pass (the progress bar reads them)."""
        return self._recorder.counts if self._recorder else PassCounts()

    @property
    def in_flight(self) -> int:
        """Chunks handed to senders and not yet answered."""
        return self._senders.handed_out

    async def run(self, stop: asyncio.Event) -> PassCounts:
        """Drain pending records and the feed; returns the counts of this pass.

        Raises FatalError when the CRM or the accounts server refuses the run;
        the journal is consistent either way.
        """
        source_id = self._source.source_id if self._source else None
        start = await self._journal.checkpoint(source_id) if source_id else None
        high_water = await self._journal.high_water(source_id) if source_id else None
        self._replay = ReplayWindow(self._journal, source_id, high_water)
        self._watermark = Watermark(start)
        self._recorder = Recorder(
            self._journal,
            source_id=source_id,
            watermark=self._watermark,
            high_water=high_water,
            flush_rows=max(100, self._settings.workers * 50),
        )
        self._admission = Admission(
            watermark=self._watermark,
            recorder=self._recorder,
            chunker=self._chunker,
            redriving=self._intake.redriving,
            source_id=source_id or "journal",
            module=self._settings.module,
        )
        reader = asyncio.create_task(
            self._intake.read(start, self._replay, stop), name="engine.read"
        )
        workers = self._senders.start()
        self._flusher = Flusher(
            self._recorder,
            interval_s=self._settings.flush_interval_s,
            on_durable=self._wake.set,  # the dispatcher may be holding chunks back for it
            on_failure=self._fail_and_wake,
        )
        flusher = asyncio.create_task(self._flusher.run(), name="engine.flush")
        stop_watch = asyncio.create_task(self._wake_on(stop), name="engine.stop_watch")
        if self._settings.follow_poll_interval_s is not None:
            redrive = self._intake.redrive(
                stop,
                interval_s=self._settings.redrive_interval_s,
                is_held=self._holds,
                settle=self._recorder.flush,
            )
            workers.append(asyncio.create_task(redrive, name="engine.redrive"))
        try:
            await self._dispatch(stop)
        finally:
            stop_watch.cancel()
            await self._shutdown(reader, workers, flusher)
        if self._fatal is not None:
            raise self._fatal
        return self._recorder.counts

    def _fail(self, error: BaseException) -> None:
        self._fatal = self._fatal or error

    def _holds(self, key: str) -> bool:
        """True while the engine itself will still send (or is sending) `key`."""
        return self._chunker.holds(key) or key in self._retries.held_keys()

    async def _wake_on(self, stop: asyncio.Event) -> None:
        """A stop request must reach a dispatcher that sleeps with nothing to do."""
        await stop.wait()
        self._wake.set()

    # -- dispatcher -----------------------------------------------------------

    async def _dispatch(self, stop: asyncio.Event) -> None:
        """The loop that owns chunker, watermark and retry schedule.

        A partial chunk waits at most `linger_s` from the moment its first
        change was taken in, so a lone change goes out quickly while a burst
        still fills whole chunks (vector's batcher does the same).
        """
        end_of_input = False
        partial_since: float | None = None
        while self._fatal is None:
            self._wake.clear()
            self._take_results()
            if stop.is_set():
                self.stopped_early = True
                if await self._drained_after_stop():
                    return
                continue
            end_of_input = self._take_intake(end_of_input)
            self._release_due_retries()
            now = time.monotonic()
            if partial_since is None and self._chunker.buffered:
                partial_since = now
            flush = end_of_input or (
                partial_since is not None and now - partial_since >= self._settings.linger_s
            )
            self._hand_out(flush=flush)
            if flush:
                partial_since = None
            if end_of_input and self._is_drained():
                return
            linger_left = (
                None if partial_since is None else partial_since + self._settings.linger_s - now
            )
            await self._sleep_until_woken(linger_left)

    async def _drained_after_stop(self) -> bool:
        """After a stop: True to end the loop now, False to go on draining.

        A pass (`run`) ends at once: what was read and not sent is read again
        next time. The daemon (`drain_on_stop`) first sends what it has read,
        within the grace period, so a clean stop leaves little for later.
        """
        if not self._settings.drain_on_stop:
            return True
        now = time.monotonic()
        if self._drain_deadline is None:
            self._drain_deadline = now + self._settings.grace_s
        self._hand_out(flush=True)
        if (not self._ready and self._senders.handed_out == 0) or now >= self._drain_deadline:
            return True
        await self._sleep_until_woken(self._drain_deadline - now)
        return False

    def _is_drained(self) -> bool:
        return (
            self._chunker.idle
            and not self._ready
            and not self._retries
            and self._senders.handed_out == 0
        )

    async def _sleep_until_woken(self, timeout_s: float | None) -> None:
        """Sleeps until a stage wakes the dispatcher, the timeout or the next retry is due."""
        due_in = self._retries.due_in(time.monotonic())
        if due_in is not None:
            timeout_s = due_in if timeout_s is None else min(timeout_s, due_in)
        await wait_event(self._wake, None if timeout_s is None else max(0.0, timeout_s))

    def _take_intake(self, end_of_input: bool) -> bool:
        """Moves feed batches into the chunker while it has room."""
        assert self._watermark is not None
        assert self._recorder is not None
        while not end_of_input and self._buffered() < self._settings.max_buffered:
            try:
                batch = self._intake.take()
            except asyncio.QueueEmpty:
                break
            if batch is END:
                return True
            assert self._admission is not None
            self._admission.take(batch)
            self._mark_read_time()
        return end_of_input

    def _mark_read_time(self) -> None:
        """Remembers when the feed's latest position was read, for `sync_lag_s`."""
        assert self._watermark is not None
        self._read_times.mark(self._watermark.next_ordinal - 1, time.monotonic())

    def sync_lag_s(self) -> float:
        """Age of the oldest change read from the feed and not yet settled (0 when none)."""
        if self._watermark is None:
            return 0.0
        return self._read_times.age_s(self._watermark.lowest_unfinished, time.monotonic())

    @property
    def queue_depth(self) -> int:
        """Changes read and not yet handed to a sender."""
        return self._buffered() + self._intake.items

    def _buffered(self) -> int:
        """Changes read and not yet handed to a sender (invariant 4's bound)."""
        return self._chunker.buffered + sum(len(chunk.changes) for chunk in self._ready)

    def _release_due_retries(self) -> None:
        now = time.monotonic()
        for change in self._retries.pop_due(now):
            self._chunker.retry(change)

    def _hand_out(self, *, flush: bool) -> None:
        """Gives senders at most one chunk each, so a stop leaves nothing queued.

        Chunks are taken from the chunker only when a sender is free: a chunk
        still in the chunker can absorb later changes to its records.
        """
        assert self._recorder is not None
        while self._senders.has_room:
            if not self._ready:
                self._ready.extend(self._chunker.pop_ready(flush=flush))
                if not self._ready:
                    return
            chunk = self._ready[0]
            undurable = self._recorder.backlog + self._senders.records
            if undurable and undurable + len(chunk.changes) > self._max_unjournaled:
                # Records sent or answered but not yet journaled are what a
                # crash would make us send again: keep them under the bound.
                self._wake_flusher()
                return
            self._senders.hand(self._ready.popleft())

    def _take_results(self) -> None:
        assert self._recorder is not None
        for chunk, outcomes in self._senders.take_answered():
            others = self._recorder.synced_many(chunk.changes, outcomes)
            if not others:  # the common case: the whole chunk synced
                self._chunker.complete_many(chunk.changes)
            else:
                unsettled = {id(change) for change, _ in others}
                self._chunker.complete_many(
                    [change for change in chunk.changes if id(change) not in unsettled]
                )
                for change, outcome in others:
                    self._settle(change, outcome)
            if self._recorder.should_flush:
                self._wake_flusher()

    def _settle(self, change: Change, outcome: RecordOutcome) -> None:
        """A change whose answer was not SYNCED: failed for good, or sent again later."""
        assert self._recorder is not None
        if outcome.verdict is Verdict.REJECT or change.attempts >= self._settings.max_attempts:
            self._recorder.failed(change, outcome)
        else:
            self._schedule_retry(change, outcome)
            return
        self._chunker.fail(change)  # the record keeps its owed state for its next change
        if self._recorder.should_flush:
            self._wake_flusher()

    def _schedule_retry(self, change: Change, outcome: RecordOutcome) -> None:
        assert self._recorder is not None
        delay_s = backoff_s(
            change.attempts,
            base_s=self._settings.retry_base_s,
            cap_s=self._settings.retry_cap_s,
            rng=self._rng,
        )
        self._recorder.pending(change, outcome, next_attempt_at=self._clock() + delay_s)
        log.debug(
            "engine.retry_scheduled", key=change.key, code=outcome.code, delay_s=round(delay_s, 3)
        )
        self._retries.push(change, due_at=time.monotonic() + delay_s)

    def _wake_flusher(self) -> None:
        if self._flusher is not None:
            self._flusher.wake()

    def _fail_and_wake(self, error: BaseException) -> None:
        self._fail(error)
        self._wake.set()

    # -- shutdown -------------------------------------------------------------

    async def _shutdown(
        self,
        reader: asyncio.Task[None],
        workers: list[asyncio.Task[None]],
        flusher: asyncio.Task[None],
    ) -> None:
        """Stop intake, let handed-out chunks finish within the grace period, journal them."""
        assert self._recorder is not None
        reader.cancel()
        self._senders.stop()
        if self._senders.handed_out and self._fatal is None:
            await self._await_in_flight()
        for task in workers:
            task.cancel()
        await asyncio.gather(reader, *workers, return_exceptions=True)
        self._take_results_after_stop()
        assert self._flusher is not None
        self._flusher.close()
        await asyncio.gather(flusher, return_exceptions=True)
        await self._recorder.flush()

    async def _await_in_flight(self) -> None:
        deadline = time.monotonic() + self._settings.grace_s
        while self._senders.unanswered:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("engine.grace_expired", in_flight=self._senders.unanswered)
                return
            self._wake.clear()
            await wait_event(self._wake, remaining)

    def _take_results_after_stop(self) -> None:
        """Journal what came back; retries become durable pending rows, not resent now."""
        self._take_results()
        self._retries.clear()

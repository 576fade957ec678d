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

`Engine` is what the rest of syncengine holds; each `run` builds a complete
`Pass` (everything it needs made before it starts) and runs its tasks in one
`asyncio.TaskGroup`. Every stage task is guarded: an exception nobody
expected becomes the pass's `StageFailed`, which ends the dispatcher's loop;
the answers already in are journaled and the pass raises it, naming the
stage, instead of waiting forever on a chunk that will never be answered.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import structlog

from syncengine.backoff import backoff_s
from syncengine.clock import SYSTEM_CLOCK, Clock
from syncengine.crm.classification import retry_floor_s
from syncengine.engine.admission import Admission
from syncengine.engine.chunker import Chunker
from syncengine.engine.flusher import Flusher
from syncengine.engine.intake import END, Intake, RedriveBatch
from syncengine.engine.known_values import KnownValues
from syncengine.engine.owed_loader import OwedLoader
from syncengine.engine.read_times import ReadTimes
from syncengine.engine.recorder import PassCounts, Recorder
from syncengine.engine.reference_waits import ReferenceWaits
from syncengine.engine.references import IdMap
from syncengine.engine.replay import ReplayWindow, read_start
from syncengine.engine.resolver import Resolver
from syncengine.engine.retry_queue import RetrySchedule
from syncengine.engine.senders import Senders, Writer
from syncengine.engine.settings import EngineSettings
from syncengine.engine.watermark import Watermark
from syncengine.errors import StageFailed, SyncError
from syncengine.journal import Journal
from syncengine.keys import source_record_key
from syncengine.model import (
    MAX_CHUNK_RECORDS,
    Change,
    Checkpoint,
    Chunk,
    Operation,
    RecordOutcome,
    Verdict,
)
from syncengine.sources.base import Source

log = structlog.get_logger("syncengine.engine")


class PassView(Protocol):
    """What the progress bar, the metrics and the runner read of a pass, live."""

    @property
    def counts(self) -> PassCounts:
        """Live counts of the pass."""
        ...

    @property
    def in_flight(self) -> int:
        """Chunks handed to senders and not yet answered."""
        ...

    @property
    def queue_depth(self) -> int:
        """Changes read and not yet handed to a sender."""
        ...

    @property
    def stopped_early(self) -> bool:
        """True when a stop request ended the pass before its input did."""
        ...

    def sync_lag_s(self) -> float:
        """Age of the oldest change read from the feed and not yet settled."""
        ...


class _NotStarted:
    """The view before the first pass starts: nothing read, nothing in flight."""

    def __init__(self) -> None:
        self.counts = PassCounts()
        self.in_flight = 0
        self.queue_depth = 0
        self.stopped_early = False

    def sync_lag_s(self) -> float:
        return 0.0


class Engine:
    """Runs one pass (`run`, `migrate`) or, with `follow`, until stopped."""

    def __init__(
        self,
        *,
        journal: Journal,
        writer: Writer,
        settings: EngineSettings,
        source: Source | None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        keys: Callable[[str], bool] | None = None,
    ) -> None:
        """`keys`, when given, keeps the pass to the records whose key it accepts
        among those the journal holds as pending: a worker's partition
        (`syncengine.workers`), whose feed `source` already yields only them."""
        self._journal = journal
        self._writer = writer
        self._settings = settings
        self._source = source
        self._keys = keys
        self._clock = clock
        self._rng = rng or random.Random()
        self._current: PassView = _NotStarted()

    @property
    def counts(self) -> PassCounts:
        """Live counts of the current pass (the progress bar reads them)."""
        return self._current.counts

    @property
    def in_flight(self) -> int:
        """Chunks handed to senders and not yet answered."""
        return self._current.in_flight

    @property
    def queue_depth(self) -> int:
        """Changes read and not yet handed to a sender."""
        return self._current.queue_depth

    @property
    def stopped_early(self) -> bool:
        """True when a stop request ended the pass before its input did."""
        return self._current.stopped_early

    def sync_lag_s(self) -> float:
        """Age of the oldest change read from the feed and not yet settled (0 when none)."""
        return self._current.sync_lag_s()

    async def run(self, stop: asyncio.Event) -> PassCounts:
        """Drain pending records and the feed; returns the counts of this pass.

        Raises FatalError when the CRM or the accounts server refuses the run,
        StageFailed when a stage raised something unexpected; the journal is
        consistent either way.
        """
        source_id = self._source.source_id if self._source else None
        checkpoint = await self._journal.checkpoint(source_id) if source_id else None
        high_water = await self._journal.high_water(source_id) if source_id else None
        start = read_start(checkpoint, high_water)
        owed_elsewhere = await self._journal.failed_keys()
        one_pass = Pass(
            journal=self._journal,
            writer=self._writer,
            settings=self._settings,
            source=self._source,
            start=start,
            high_water=high_water,
            owed_elsewhere=owed_elsewhere,
            stop=stop,
            clock=self._clock,
            rng=self._rng,
            keys=self._keys,
        )
        self._current = one_pass
        return await one_pass.run()


class Pass:
    """One pass, complete from the start: every stage is built in `__init__`."""

    def __init__(
        self,
        *,
        journal: Journal,
        writer: Writer,
        settings: EngineSettings,
        source: Source | None,
        start: Checkpoint | None,
        high_water: Checkpoint | None,
        owed_elsewhere: set[str],
        stop: asyncio.Event,
        clock: Clock,
        rng: random.Random,
        keys: Callable[[str], bool] | None = None,
    ) -> None:
        source_id = source.source_id if source else None
        self._settings = settings
        self._start = start
        self._stop = stop
        self._clock = clock
        self._rng = rng
        self._wake = asyncio.Event()
        self._chunker = Chunker(max_records=MAX_CHUNK_RECORDS, owed_elsewhere=owed_elsewhere)
        self._intake = Intake(
            journal,
            source,
            batches=settings.intake_batches,
            follow_poll_interval_s=settings.follow_poll_interval_s,
            wake=self._wake.set,
            clock=clock,
            keys=keys,
        )
        self._id_map = IdMap(journal)
        self._resolver = Resolver(
            self._id_map,
            accepted=KnownValues(journal.accepted_values) if settings.track_unchanged else None,
            skip=settings.skip_unchanged,
        )
        self._waits = ReferenceWaits()
        self._senders = Senders(
            writer,
            workers=settings.workers,
            apply_feature_execution=settings.apply_feature_execution,
            duplicate_check_fields=settings.duplicate_check_fields,
            on_answer=self._wake.set,
            on_fatal=lambda error: self._fail("sender", error),
            resolver=self._resolver,
        )
        self._replay = ReplayWindow(journal, source_id, high_water, start)
        self._watermark = Watermark(start)
        self._recorder = Recorder(
            journal,
            source_id=source_id,
            watermark=self._watermark,
            high_water=high_water,
            flush_rows=max(100, settings.workers * 50),
        )
        self._admission = Admission(
            watermark=self._watermark,
            recorder=self._recorder,
            chunker=self._chunker,
            redriving=self._intake.redriving,
            source_id=source_id or "journal",
            module=settings.module,
            supersedes=self._supersedes_journal,
        )
        self._owed_loader = OwedLoader(
            journal, settle=self._recorder.flush, on_loaded=self._wake.set
        )
        #: The daemon's redrive reads begun and not yet taken in: each collects
        #: the records whose outcome was taken since it began (their rows in
        #: that read are older than what the engine knows).
        self._open_reads: list[RedriveBatch] = []
        #: The redrive read being taken in (None for any other batch).
        self._admitting: RedriveBatch | None = None
        self._flusher = Flusher(
            self._recorder,
            interval_s=settings.flush_interval_s,
            on_durable=self._wake.set,  # the dispatcher may be holding chunks back for it
            on_failure=lambda error: self._fail("flusher", error),
        )
        self._ready: deque[Chunk] = deque()
        self._retries = RetrySchedule()
        self._read_times = ReadTimes()
        #: The first failure of a stage; it ends the pass.
        self._failure: SyncError | None = None
        #: At most this many records are ever sent-but-not-journaled: one full
        #: round in flight and one round of answers waiting for the group commit.
        self._max_unjournaled = 2 * settings.workers * MAX_CHUNK_RECORDS
        self.stopped_early = False

    # -- the public face ------------------------------------------------------

    @property
    def counts(self) -> PassCounts:
        """Live counts of this pass."""
        counts = self._recorder.counts
        counts.coalesced = self._chunker.merged
        return counts

    @property
    def in_flight(self) -> int:
        """Chunks handed to senders and not yet answered."""
        return self._senders.handed_out

    @property
    def queue_depth(self) -> int:
        """Changes read and not yet handed to a sender."""
        return self._buffered() + self._intake.items

    def sync_lag_s(self) -> float:
        """Age of the oldest change read from the feed and not yet settled (0 when none)."""
        return self._read_times.age_s(self._watermark.lowest_unfinished, self._clock.monotonic())

    # -- the tasks ------------------------------------------------------------

    async def run(self) -> PassCounts:
        """Runs every task of the pass in one task group; raises the first stage failure."""
        async with asyncio.TaskGroup() as group:
            reader = self._spawn(
                group, "reader", self._intake.read(self._start, self._replay, self._stop)
            )
            workers = self._senders.start(group)
            if self._settings.follow_poll_interval_s is not None:
                redrive = self._intake.redrive(
                    self._stop,
                    interval_s=self._settings.redrive_interval_s,
                    is_held=self._holds,
                    settle=self._recorder.flush,
                    begin_read=self._begin_redrive_read,
                    end_read=self._end_redrive_read,
                )
                workers.append(self._spawn(group, "redrive", redrive))
            workers.append(self._spawn(group, "owed-loader", self._owed_loader.run()))
            flusher = self._spawn(group, "flusher", self._flusher.run())
            stop_watch = group.create_task(self._wake_on_stop(), name="engine.stop_watch")
            try:
                await self._guarded("dispatcher", self._dispatch())
            finally:
                stop_watch.cancel()
                await self._guarded("dispatcher", self._shutdown(reader, workers, flusher))
        if self._failure is not None:
            raise self._failure
        return self.counts

    def _spawn(
        self, group: asyncio.TaskGroup, stage: str, work: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None]:
        return group.create_task(self._guarded(stage, work), name=f"engine.{stage}")

    async def _guarded(self, stage: str, work: Coroutine[Any, Any, None]) -> None:
        """Runs one stage; what it raises becomes the pass's failure instead of vanishing."""
        try:
            await work
        except Exception as exc:  # noqa: BLE001 - any stage failure must end the pass, named
            self._fail(stage, exc)

    def _fail(self, stage: str, error: BaseException) -> None:
        """Records the first failure (our own errors as they are) and wakes the dispatcher."""
        if self._failure is None:
            self._failure = error if isinstance(error, SyncError) else StageFailed(stage, error)
            if not isinstance(error, SyncError):
                log.debug("engine.stage_failed", stage=stage, error=repr(error), exc_info=error)
        self._wake.set()

    def _holds(self, key: str) -> bool:
        """True while the engine itself will still send (or is sending) `key`."""
        return self._chunker.holds(key) or key in self._retries.held_keys()

    def _supersedes_journal(self, key: str) -> bool:
        """True when the engine knows newer of record `key` than a journal row re-driven now."""
        read = self._admitting
        return self._holds(key) or (read is not None and key in read.settled)

    def _begin_redrive_read(self, read: RedriveBatch) -> None:
        self._open_reads.append(read)

    def _end_redrive_read(self, read: RedriveBatch) -> None:
        self._open_reads = [other for other in self._open_reads if other is not read]

    def _note_settled(self, changes: list[Change]) -> None:
        if self._open_reads:
            keys = [change.key for change in changes if change.key is not None]
            for read in self._open_reads:
                read.settled.update(keys)

    async def _wake_on_stop(self) -> None:
        """A stop request must reach a dispatcher that sleeps with nothing to do."""
        await self._stop.wait()
        self._wake.set()

    # -- dispatcher -----------------------------------------------------------

    async def _dispatch(self) -> None:
        """The loop that owns chunker, watermark and retry schedule.

        A partial chunk waits at most `linger_s` from the moment its first
        change was taken in, so a lone change goes out quickly while a burst
        still fills whole chunks (vector's batcher does the same).
        """
        end_of_input = False
        partial_since: float | None = None
        drain_deadline: float | None = None
        while self._failure is None:
            self._wake.clear()
            self._take_results()
            for key, owed in self._owed_loader.take_loaded():
                self._chunker.owed_loaded(key, owed)
            now = self._clock.monotonic()
            if self._stop.is_set():
                self.stopped_early = True
                if not self._settings.drain_on_stop:
                    return  # what was read and not sent is read again next time
                if drain_deadline is None:
                    drain_deadline = now + self._settings.grace_s
                if self._drained_after_stop(now, drain_deadline):
                    return
                await self._sleep_until_woken(drain_deadline - now)
                continue
            end_of_input = self._take_intake(end_of_input)
            self._release_due_retries(now)
            self._give_up_waits(now, end_of_input=end_of_input)
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

    def _drained_after_stop(self, now: float, deadline: float) -> bool:
        """Daemon (`drain_on_stop`): sends what it has read, within the grace period,
        so a clean stop leaves little for later; True once that is done or too late."""
        self._hand_out(flush=True)
        return (not self._ready and self._senders.handed_out == 0) or now >= deadline

    def _give_up_waits(self, now: float, *, end_of_input: bool) -> None:
        """Fails the changes that wait for a reference when waiting can no longer help.

        A pass with an end (`run`, `migrate`) gives up once its feed is read
        and nothing else can still give a referenced record an id; the daemon
        gives up on changes that waited longer than `reference_wait_s`.
        """
        if not self._waits:
            return
        if self._settings.follow_poll_interval_s is not None:
            given_up = self._waits.give_up(older_than=now - self._settings.reference_wait_s)
        elif end_of_input and self._only_waits_left():
            given_up = self._waits.give_up()
        else:
            return
        for change, outcome in given_up:
            self._recorder.failed(change, outcome)
            self._chunker.fail_held(change)
        if given_up and self._recorder.should_flush:
            self._flusher.wake()

    def _only_waits_left(self) -> bool:
        """True when nothing is on its way that could settle a change or learn an id."""
        chunker = self._chunker
        return (
            chunker.placeable == 0
            and chunker.in_flight == 0
            and not chunker.loading
            and not self._ready
            and not self._retries
            and self._senders.handed_out == 0
        )

    def _is_drained(self) -> bool:
        return (
            self._chunker.idle
            and not self._ready
            and not self._retries
            and self._senders.handed_out == 0
        )

    async def _sleep_until_woken(self, timeout_s: float | None) -> None:
        """Sleeps until a stage wakes the dispatcher, the timeout or the next retry is due."""
        now = self._clock.monotonic()
        due_in = self._retries.due_in(now)
        waiting_since = self._waits.oldest_since()
        if waiting_since is not None and self._settings.follow_poll_interval_s is not None:
            give_up_in = waiting_since + self._settings.reference_wait_s - now
            due_in = give_up_in if due_in is None else min(due_in, give_up_in)
        if due_in is not None:
            timeout_s = due_in if timeout_s is None else min(timeout_s, due_in)
        await self._clock.wait(self._wake, None if timeout_s is None else max(0.0, timeout_s))

    def _take_intake(self, end_of_input: bool) -> bool:
        """Moves feed batches into the chunker while it has room.

        Changes queued behind one that waits for a reference count against
        the room, yet cannot move until the feed brings the referenced
        record: when nothing else is on its way, intake goes on regardless.
        """
        while not end_of_input and (
            self._buffered() < self._settings.max_buffered
            or (self._waits and self._only_waits_left())
        ):
            try:
                batch = self._intake.take()
            except asyncio.QueueEmpty:
                break
            if batch is END:
                return True
            if type(batch) is RedriveBatch:
                self._admitting = batch
                try:
                    self._admission.take(batch)
                finally:
                    self._admitting = None
                self._end_redrive_read(batch)  # that read's rows are all taken in
            else:
                self._admission.take(batch)
            if self._chunker.to_load:
                # Changes to records rejected earlier wait for their owed state.
                self._owed_loader.request(self._chunker.to_load)
                self._chunker.to_load = []
            # When the feed's latest position was read, for `sync_lag_s`.
            self._read_times.mark(self._watermark.next_ordinal - 1, self._clock.monotonic())
        return end_of_input

    def _buffered(self) -> int:
        """Changes read and not yet handed to a sender (invariant 4's bound)."""
        return self._chunker.buffered + sum(len(chunk.changes) for chunk in self._ready)

    def _release_due_retries(self, now: float) -> None:
        for change in self._retries.pop_due(now):
            self._chunker.retry(change)

    def _hand_out(self, *, flush: bool) -> None:
        """Gives senders at most one chunk each, so a stop leaves nothing queued.

        Chunks are taken from the chunker only when a sender is free: a chunk
        still in the chunker can absorb later changes to its records.
        """
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
                self._flusher.wake()
                return
            self._senders.hand(self._ready.popleft())

    def _take_results(self) -> None:
        for chunk, outcomes in self._senders.take_answered():
            self._note_settled(chunk.changes)
            if chunk.resolved:
                self._learn_ids(chunk.changes, outcomes)
            accepted = self._learn_accepted(chunk.changes, outcomes)
            others = self._recorder.synced_many(chunk.changes, outcomes, accepted)
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
                self._flusher.wake()

    def _learn_ids(self, changes: list[Change], outcomes: list[RecordOutcome]) -> None:
        """What the answers teach the id map; changes waiting for a record now mapped go."""
        for change, outcome in zip(changes, outcomes, strict=True):
            key = change.key
            if change.source_key is None or key is None or outcome.verdict is not Verdict.SYNCED:
                continue
            if change.operation is Operation.DELETE:
                self._id_map.learn(key, None)
            elif outcome.crm_id is not None:
                self._id_map.learn(key, outcome.crm_id)
                for waiting in self._waits.release(key):
                    self._chunker.resume(waiting)

    def _learn_accepted(
        self, changes: list[Change], outcomes: list[RecordOutcome]
    ) -> dict[int, str] | None:
        """With `skip_unchanged`: what the CRM now holds of each record answered, by
        id(change), for its journal row; anything but a success makes it unknown."""
        known = self._resolver.accepted
        if known is None:
            return None
        sent_by_change = self._resolver.sent
        rows: dict[int, str] = {}
        for change, outcome in zip(changes, outcomes, strict=True):
            if outcome.verdict is Verdict.REGROUP:
                continue  # not sent yet: what it would teach stays noted
            sent = sent_by_change.pop(id(change), None)
            if change.key is None or outcome.verdict is Verdict.WAIT:
                continue
            text = None
            if sent is not None and outcome.verdict is Verdict.SYNCED:
                text = sent.after(outcome.details)
            known.learn(change.key, text)
            if text is not None:
                rows[id(change)] = text
        return rows

    def _wait_for_reference(self, change: Change, outcome: RecordOutcome) -> None:
        """The change names a record with no id yet: held (its record's later changes
        queue behind it) until that record is journaled with one."""
        change.attempts -= 1  # nothing was sent
        self._chunker.hold(change)
        key = source_record_key(str(outcome.details["module"]), str(outcome.details["key"]))
        known, crm_id = self._id_map.get(key)
        if known and crm_id is not None:
            self._chunker.resume(change)  # learned while this chunk was being sent
        else:
            self._waits.add(key, change, outcome, now=self._clock.monotonic())

    def _settle(self, change: Change, outcome: RecordOutcome) -> None:
        """A change whose answer was not a plain SUCCESS: synced with a code of its own,
        waiting for a reference, failed for good, or sent again later."""
        if outcome.verdict is Verdict.SYNCED:
            self._recorder.synced_with_code(change, outcome)
            self._chunker.complete(change)
            return
        if outcome.verdict is Verdict.WAIT:
            self._wait_for_reference(change, outcome)
            return
        if outcome.verdict is Verdict.REGROUP:
            change.attempts -= 1  # nothing was sent
            self._chunker.retry(change)  # its key stays in flight: later changes wait
            return
        if outcome.verdict is Verdict.REJECT or change.attempts >= self._settings.max_attempts:
            self._recorder.failed(change, outcome)
        else:
            self._schedule_retry(change, outcome)
            return
        self._chunker.fail(change)  # the record keeps its owed state for its next change
        if self._recorder.should_flush:
            self._flusher.wake()

    def _schedule_retry(self, change: Change, outcome: RecordOutcome) -> None:
        delay_s = backoff_s(
            change.attempts,
            base_s=self._settings.retry_base_s,
            cap_s=self._settings.retry_cap_s,
            rng=self._rng,
        )
        # A locked record waits minutes (within the cap), not the usual seconds.
        delay_s = max(delay_s, min(self._settings.retry_cap_s, retry_floor_s(outcome.code)))
        self._recorder.pending(change, outcome, next_attempt_at=self._clock.wall() + delay_s)
        log.debug(
            "engine.retry_scheduled", key=change.key, code=outcome.code, delay_s=round(delay_s, 3)
        )
        self._retries.push(change, due_at=self._clock.monotonic() + delay_s)

    # -- shutdown -------------------------------------------------------------

    async def _shutdown(
        self,
        reader: asyncio.Task[None],
        workers: list[asyncio.Task[None]],
        flusher: asyncio.Task[None],
    ) -> None:
        """Stop intake, let handed-out chunks finish within the grace period, journal them."""
        reader.cancel()
        self._senders.stop()
        if self._senders.handed_out and self._failure is None:
            await self._await_in_flight()
        for task in workers:
            task.cancel()
        await asyncio.wait([reader, *workers])
        # Journal what came back; retries become durable pending rows, not resent now.
        self._take_results()
        self._retries.clear()
        self._flusher.close()
        await asyncio.wait([flusher])
        await self._guarded("recorder", self._recorder.flush())

    async def _await_in_flight(self) -> None:
        deadline = self._clock.monotonic() + self._settings.grace_s
        while self._senders.unanswered:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                log.warning("engine.grace_expired", in_flight=self._senders.unanswered)
                return
            self._wake.clear()
            await self._clock.wait(self._wake, remaining)

"""The journal's only writer: outcomes in, group commits out.

Sits at the end of the pipeline. Every outcome the engine learns (synced,
failed, pending retry, bad input) is buffered here with the feed positions it
settles; a flush writes the buffered rows and the advanced checkpoint in one
transaction. Positions are marked finished only in the flush that makes their
outcome durable, so the checkpoint never moves past a change whose outcome
could still be lost (design.md invariant 1).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from syncengine.engine.owed import blamed_position
from syncengine.engine.unchanged import UNCHANGED
from syncengine.engine.watermark import Watermark
from syncengine.errors import FatalError
from syncengine.journal import Journal, RecordUpdate, SyncedRow, encode_payload
from syncengine.model import (
    BadInput,
    Change,
    Checkpoint,
    Cursor,
    Operation,
    RecordOutcome,
    RecordState,
    SourcePosition,
    Verdict,
)
from syncengine.sources.generation import row_source


@dataclass(slots=True)
class PassCounts:
    """What one pass did, for the summary line, the progress bar and the exit status."""

    read: int = 0
    synced: int = 0
    failed: int = 0
    bad_input: int = 0
    retries_scheduled: int = 0
    redriven: int = 0
    replay_skipped: int = 0
    #: Synced without a send: the CRM held every value already (`skip_unchanged`).
    unchanged: int = 0
    #: Feed changes folded into another change to their record before sending.
    coalesced: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain mapping, for logs and the runs table."""
        return {
            "read": self.read,
            "synced": self.synced,
            "failed": self.failed,
            "bad_input": self.bad_input,
            "retries_scheduled": self.retries_scheduled,
            "redriven": self.redriven,
            "replay_skipped": self.replay_skipped,
            "unchanged": self.unchanged,
            "coalesced": self.coalesced,
        }


#: An operation's journal text by member: `.value` on an enum is a slow property.
_OPERATION_TEXT = {operation: operation.value for operation in Operation}


def is_past(position: Cursor, mark: Cursor) -> bool:
    """True when feed position `position` lies after `mark` (cursors of one kind compare)."""
    if type(position) is not type(mark):
        return True
    return position > mark  # type: ignore[operator]


class Recorder:
    """Buffers outcomes and commits them with the checkpoint in one transaction.

    Not safe to share across event loops; all calls come from the engine's
    tasks on one loop, and only `flush` awaits. Each flush is one group
    commit (`Journal.submit`); several may be on their way at once.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        source_id: str | None,
        watermark: Watermark | None,
        flush_rows: int = 2000,
        high_water: Checkpoint | None = None,
    ) -> None:
        self._journal = journal
        self._source_id = source_id
        self._watermark = watermark
        self._flush_rows = flush_rows
        self._updates: list[RecordUpdate | SyncedRow] = []
        self._positions: list[SourcePosition] = []
        self._flushing = 0
        self._last_checkpoint: Checkpoint | None = watermark.checkpoint if watermark else None
        self._high = high_water
        #: The ordinal of the position `_high` was raised to in this pass; -1
        #: while it is the journal's (which no ordinal of this pass precedes).
        self._high_ordinal = -1
        self._high_changed = False
        #: Each file's row source, made once per file (see `_row_source`).
        self._row_sources: dict[str | None, str | None] = {}
        self._write_failure: str | None = None
        self._last_durable: asyncio.Future[None] | None = None
        self.counts = PassCounts()

    @property
    def backlog(self) -> int:
        """Rows not yet durable: waiting for the next flush, or in the one under way."""
        return len(self._updates) + self._flushing

    @property
    def should_flush(self) -> bool:
        """True when enough rows wait that a flush should not be deferred."""
        return len(self._updates) >= self._flush_rows

    def synced_many(
        self,
        changes: list[Change],
        outcomes: list[RecordOutcome],
        accepted: dict[int, str] | None = None,
    ) -> list[tuple[Change, RecordOutcome]]:
        """A lean journal row for each change the CRM said SUCCESS for; returns the other pairs.

        One chunk's answers at a time, because it runs for nearly every
        record of a migration. A synced row keeps no message or details (the
        success details, times and owner, are the CRM's to keep). `accepted`
        holds, by id(change), the digests a synced row keeps for
        `skip_unchanged` (`engine.unchanged`); such rows take the general path.
        """
        others: list[tuple[Change, RecordOutcome]] = []
        append, settled = self._updates.append, self._positions.extend
        row_sources = self._row_sources
        synced = Verdict.SYNCED
        done = 0
        for change, outcome in zip(changes, outcomes, strict=True):
            if accepted is not None and outcome.verdict is synced and id(change) in accepted:
                self.synced_with_code(change, outcome, accepted=accepted[id(change)])
                continue
            if outcome.verdict is not synced or outcome.code != "SUCCESS":
                others.append((change, outcome))
                continue
            # A synced change is done with: its positions need no reset (see `_add`).
            positions = change.positions
            append(
                (
                    change.key,  # type: ignore[arg-type]  # the engine keys every change
                    change.module,
                    outcome.crm_id or change.record_id,
                    _OPERATION_TEXT[change.operation],
                    change.attempts,
                    positions[-1].display if positions else None,
                    (row_sources.get(positions[-1].generation) or self._row_source(positions[-1]))
                    if positions
                    else None,
                )
            )
            if positions:
                settled(positions)
            done += 1
        self.counts.synced += done
        return others

    def synced_with_code(
        self, change: Change, outcome: RecordOutcome, *, accepted: str | None = None
    ) -> None:
        """Synced with a code of its own (a delete of a record already gone, a record
        found unchanged) or with digests of what the CRM now holds: the row keeps them."""
        self.counts.synced += 1
        if outcome.code == UNCHANGED:
            self.counts.unchanged += 1
        self._add(change, RecordState.SYNCED, outcome, payload=None, accepted=accepted)

    def failed(self, change: Change, outcome: RecordOutcome) -> None:
        """Permanent failure, or attempts exhausted: kept with its whole owed state.

        The payload is what `retry` re-sends and what a later change to the
        record absorbs; it names the change that supplied the rejected field.
        """
        self.counts.failed += 1
        blamed = blamed_position(change, outcome.details.get("api_name"))
        self._add(
            change, RecordState.FAILED, outcome, payload=encode_payload(change, blamed=blamed)
        )

    def pending(self, change: Change, outcome: RecordOutcome, *, next_attempt_at: float) -> None:
        """A transient failure: the payload is made durable so the feed can move on."""
        self.counts.retries_scheduled += 1
        self._add(
            change,
            RecordState.PENDING,
            outcome,
            payload=encode_payload(change),
            next_attempt_at=next_attempt_at,
        )

    def already_settled(self, positions: list[SourcePosition]) -> None:
        """Re-read changes whose outcome the journal already holds: finish them, write nothing."""
        self._positions.extend(positions)

    def bad_input(self, item: BadInput, *, key: str, module: str) -> None:
        """A feed line or row that cannot be sent becomes a failed record at once."""
        self.counts.bad_input += 1
        self.counts.failed += 1
        self._updates.append(
            RecordUpdate(
                key=key,
                module=item.module or module,
                record_id=item.record_id,
                operation=None,
                state=RecordState.FAILED,
                attempts=0,
                code=item.code,
                message=item.reason,
                details={},
                next_attempt_at=None,
                payload=None,
                position=item.position.display,
                source_id=self._row_source(item.position),
            )
        )
        self._positions.append(item.position)

    def _add(
        self,
        change: Change,
        state: RecordState,
        outcome: RecordOutcome,
        *,
        payload: bytes | None,
        record_id: str | None = None,
        next_attempt_at: float | None = None,
        accepted: str | None = None,
    ) -> None:
        assert change.key is not None, "the engine gives every change a journal key"
        display = change.positions[-1].display if change.positions else None
        self._updates.append(
            RecordUpdate(
                key=change.key,
                module=change.module,
                record_id=record_id or outcome.crm_id or change.record_id,
                operation=change.operation,
                state=state,
                attempts=change.attempts,
                code=outcome.code,
                message=outcome.message or None,
                details=outcome.details or None,
                next_attempt_at=next_attempt_at,
                payload=payload,
                position=display,
                source_id=self._row_source(change.positions[-1]) if change.positions else None,
                accepted=accepted,
            )
        )
        # The positions are settled by this row; a later outcome for the same
        # change (a retry) must not settle them twice. Their display form
        # stays with the change: it still owes them if it fails for good.
        if change.positions:
            self._positions.extend(change.positions)
            change.earlier_positions = change.owed_positions
            change.positions = []

    def _row_source(self, position: SourcePosition) -> str | None:
        """The feed, and its file, a row settling `position` names (see `row_source`)."""
        found = self._row_sources.get(position.generation)
        if found is None:
            found = row_source(self._source_id, position.generation)
            self._row_sources[position.generation] = found
        return found

    def _raise_high_water(self, position: SourcePosition) -> None:
        """Make `position` the high water when it was read later than the present one.

        Within one file, later means further on. A position of another file
        (generation) than the high water's was read after it when its ordinal
        is higher, or when the high water is the journal's: a feed's files
        are read in the order they had at the path. So the high water after
        a followed rotation is in the new file, never the old file's offset,
        and a late outcome from the old file does not take it back there. A
        journal high water without a generation (written before files had
        one) is replaced by the first position of a file feed that has one.
        """
        high = self._high
        if high is not None:
            if position.ordinal <= self._high_ordinal:
                return
            same_file = position.generation == high.generation
            if same_file and not is_past(position.resume_after, high.resume_after):
                return
        self._high = Checkpoint(position.resume_after, position.display, position.generation)
        self._high_ordinal = position.ordinal
        self._high_changed = True

    async def flush(self) -> None:
        """Send the buffered rows and the advanced checkpoint; return once they, and every
        flush sent before, are durable.

        Shielded: a cancellation during shutdown must not half-record a batch.
        Raises FatalError when this or an earlier flush failed.
        """
        durable = self.flush_soon()
        if durable is not None:
            await asyncio.shield(durable)

    def flush_soon(self) -> asyncio.Future[None] | None:
        """Send the buffered rows and the advanced checkpoint now, as one group commit.

        Returns a future that completes once they, and every flush sent
        before, are durable (None when nothing was ever sent); the next flush
        need not wait for it. Raises FatalError when an earlier flush failed.
        """
        self._refuse_after_failure()
        batch = self._take_batch()
        if batch is None:
            return self._last_durable
        updates, checkpoints, high_water = batch
        durable = self._journal.submit(updates, checkpoints, high_water)
        rows = len(updates)
        self._flushing += rows

        def settled(future: asyncio.Future[None]) -> None:
            self._flushing -= rows
            if future.cancelled():
                self._write_failure = self._write_failure or "a group commit was cancelled"
            elif (error := future.exception()) is not None:
                self._write_failure = self._write_failure or str(error) or type(error).__name__

        durable.add_done_callback(settled)
        self._last_durable = durable
        return durable

    def _refuse_after_failure(self) -> None:
        if self._write_failure is not None:
            # The failed flush already advanced the watermark past rows that
            # never became durable: no later checkpoint may be written.
            raise FatalError(f"journal writes stopped after a failure: {self._write_failure}")

    def _take_batch(
        self,
    ) -> tuple[list[RecordUpdate | SyncedRow], dict[str, Checkpoint], dict[str, Checkpoint]] | None:
        """The buffered rows, with the checkpoint and high water they allow; None if none."""
        if not self._updates and not self._positions:
            return None
        updates, positions = self._updates, self._positions
        self._updates, self._positions = [], []
        checkpoints: dict[str, Checkpoint] = {}
        high_water: dict[str, Checkpoint] = {}
        if self._watermark is not None and self._source_id is not None:
            highest = self._watermark.note_finished_many(positions)
            if highest is not None:
                self._raise_high_water(highest)
            checkpoint = self._watermark.checkpoint
            if checkpoint is not None and checkpoint != self._last_checkpoint:
                checkpoints[self._source_id] = checkpoint
                self._last_checkpoint = checkpoint
            if self._high is not None and self._high_changed:
                high_water[self._source_id] = self._high
                self._high_changed = False
        return updates, checkpoints, high_water

"""The replay window: after a crash, re-read changes the journal already settled.

The checkpoint is a low watermark: a pass that was killed left changes
finished *after* it (their outcomes durable) that the next pass reads again.
The journal keeps, per feed, the furthest position settled (the high water)
and, per record, the position of its latest settled change. A re-read change
up to the high water whose record shows a position at or past its own is
marked settled instead of being sent again, so a crash costs at most what was
in flight (design.md invariant 6).

The window belongs to one file of a file feed (its generation, see
`sources.generation`): positions read from another file (rotated, replaced,
truncated) say nothing about what the journal settled, so the window ends
at the first batch of such a file. A high water journaled before files had
generations applies only to a read that continued from a checkpoint of the
same age, never to a file read from its start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from syncengine.engine.recorder import is_past
from syncengine.journal import Journal
from syncengine.model import BadInput, Change, Checkpoint, Cursor, SourcePosition
from syncengine.sources.generation import row_source


@dataclass(frozen=True, slots=True)
class AlreadySettled:
    """A re-read change whose outcome the journal holds: only its positions move on."""

    positions: list[SourcePosition]


Batch = Sequence["Change | BadInput | AlreadySettled"]


def _is_settled(change: Change, settled: dict[str, int | str]) -> bool:
    if change.key is None or change.key not in settled:
        return False
    stored, own = settled[change.key], change.positions[-1].display
    return type(stored) is type(own) and not is_past(own, stored)


def _first_position(item: object) -> SourcePosition | None:
    positions = getattr(item, "positions", None)
    return positions[0] if positions else getattr(item, "position", None)


def _restarted(batch: Batch, last_resume: Cursor | None) -> bool:
    """True when `batch` begins at or before where the previous batch ended."""
    if last_resume is None or not batch:
        return False
    first = _first_position(batch[0])
    return first is not None and not is_past(first.resume_after, last_resume)


def _last_resume(batch: Batch, previous: Cursor | None) -> Cursor | None:
    for item in reversed(batch):
        positions = getattr(item, "positions", None) or [getattr(item, "position", None)]
        if positions[-1] is not None:
            return positions[-1].resume_after  # type: ignore[no-any-return]
    return previous


def _same_file(position: SourcePosition, high_water: Checkpoint, start: Checkpoint | None) -> bool:
    """True when `position`, the first of a read, lies in the high water's file."""
    if high_water.generation is not None or position.generation is None:
        return position.generation == high_water.generation
    # A high water from before generations, and a file position: trust it only
    # for a read that went on from an old checkpoint (the same file, checked
    # by its lines), not for a file read from its start.
    return (
        start is not None
        and start.generation is None
        and type(position.display) is type(start.display)
        and is_past(position.display, start.display)
    )


def read_start(checkpoint: Checkpoint | None, high_water: Checkpoint | None) -> Checkpoint | None:
    """Where a pass reads its feed from: the checkpoint, or the top of the high water's file.

    Without a checkpoint (a crash before the first one, or a checkpoint
    removed by hand) the feed is read from its top; naming the high water's
    file there lets a file source recognise it (its fingerprint, taken when
    the file was shorter, covers fewer bytes than one taken now would), so
    the replay window still applies to that file and to no other.
    """
    if checkpoint is not None or high_water is None or high_water.generation is None:
        return checkpoint
    return Checkpoint(0, 0, high_water.generation)


def _in_window(item: object, high_water: Checkpoint) -> bool:
    positions = getattr(item, "positions", None) or [getattr(item, "position", None)]
    last = positions[-1]
    return last is not None and not is_past(last.resume_after, high_water.resume_after)


class ReplayWindow:
    """Filters the batches of one read of a feed until it is past the high water."""

    def __init__(
        self,
        journal: Journal,
        source_id: str | None,
        high_water: Checkpoint | None,
        start: Checkpoint | None = None,
    ) -> None:
        self._journal = journal
        self._source_id = source_id
        self._high_water = high_water if source_id is not None else None
        self._start = start
        #: The generation the window applies to, once the first batch showed it.
        self._generation: str | None = None
        self._first = True
        self._last_resume: Cursor | None = None

    @property
    def active(self) -> bool:
        """False once the feed is past the high water (or there was none)."""
        return self._high_water is not None

    def _in_another_file(self, first: SourcePosition) -> bool:
        """True when a batch starting at `first` is not in the high water's file.

        The first batch of the read tells the file read (a new file is read
        from its start); a later one in another file follows a rotation.
        """
        assert self._high_water is not None
        if not self._first:
            return first.generation != self._generation
        self._first = False
        self._generation = first.generation
        return not _same_file(first, self._high_water, self._start)

    async def filter(self, batch: Batch) -> Batch:
        """In the replay window after a crash, drops changes the journal already settled.

        The checkpoint is a low watermark, so a run that was killed re-reads
        changes that finished after it. A re-read change whose record's row
        shows a position at or past its own has a durable outcome already
        (its own, or a later change's that absorbed it): it is marked
        settled instead of being sent again (design.md invariant 6).
        """
        assert self._high_water is not None
        assert self._source_id is not None
        first = _first_position(batch[0]) if batch else None
        if first is not None and self._in_another_file(first):
            self._high_water = None  # nothing settled applies to another file
            return batch
        if _restarted(batch, self._last_resume):
            # The feed started over (a rotated or truncated file): the journal's
            # positions belong to the old file and say nothing about this one.
            self._high_water = None
            return batch
        self._last_resume = _last_resume(batch, self._last_resume)
        window = [
            item
            for item in batch
            if isinstance(item, Change)
            and item.key is not None
            and item.positions
            and not is_past(item.positions[-1].resume_after, self._high_water.resume_after)
        ]
        if not window:
            if batch and not _in_window(batch[-1], self._high_water):
                self._high_water = None  # past the window: no more look-ups
            return batch
        keys = [item.key for item in window if item.key is not None]
        own_file = row_source(self._source_id, self._generation)
        assert own_file is not None
        settled = await self._journal.settled_positions(own_file, keys)
        if self._high_water.generation is None and own_file != self._source_id:
            # Rows journaled before files had generations name the feed alone.
            settled = {**await self._journal.settled_positions(self._source_id, keys), **settled}
        out: list[Change | BadInput | AlreadySettled] = []
        for item in batch:
            if isinstance(item, Change) and _is_settled(item, settled):
                out.append(AlreadySettled(item.positions))
            else:
                out.append(item)
        return out

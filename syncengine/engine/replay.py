"""The replay window: after a crash, re-read changes the journal already settled.

The checkpoint is a low watermark: a pass that was killed left changes
finished *after* it (their outcomes durable) that the next pass reads again.
The journal keeps, per feed, the furthest position settled (the high water)
and, per record, the position of its latest settled change. A re-read change
up to the high water whose record shows a position at or past its own is
marked settled instead of being sent again, so a crash costs at most what was
in flight (design.md invariant 6).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from syncengine.engine.recorder import is_past
from syncengine.journal import Journal
from syncengine.model import BadInput, Change, Checkpoint, Cursor, SourcePosition


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


def _in_window(item: object, high_water: Checkpoint) -> bool:
    positions = getattr(item, "positions", None) or [getattr(item, "position", None)]
    last = positions[-1]
    return last is not None and not is_past(last.resume_after, high_water.resume_after)


class ReplayWindow:
    """Filters the batches of one read of a feed until it is past the high water."""

    def __init__(
        self, journal: Journal, source_id: str | None, high_water: Checkpoint | None
    ) -> None:
        self._journal = journal
        self._source_id = source_id
        self._high_water = high_water if source_id is not None else None
        self._last_resume: Cursor | None = None

    @property
    def active(self) -> bool:
        """False once the feed is past the high water (or there was none)."""
        return self._high_water is not None

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
        settled = await self._journal.settled_positions(
            self._source_id, [item.key for item in window if item.key is not None]
        )
        out: list[Change | BadInput | AlreadySettled] = []
        for item in batch:
            if isinstance(item, Change) and _is_settled(item, settled):
                out.append(AlreadySettled(item.positions))
            else:
                out.append(item)
        return out

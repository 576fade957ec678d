"""The low watermark of finished feed positions: what the checkpoint may say.

Invariant 1 (design.md) lets the checkpoint move only past changes whose
outcome is durable. Changes finish out of order (chunks complete in any
order, retries come back late), so the checkpoint is the last position of the
longest run of finished positions from the start of the read. The pipeline
calls `note_read` as the source hands out positions and `note_finished` once a
position's outcome (or retry payload) is journaled; the journal then stores
`checkpoint`.
"""

from __future__ import annotations

from syncengine.model import Checkpoint, SourcePosition


class Watermark:
    """Tracks read and finished positions of one `Source.read` call.

    O(1) amortised per position, memory proportional to the finished
    positions still above the watermark (the in-flight window, not the feed).
    """

    __slots__ = ("_checkpoint", "_finished_above", "_last", "_low", "_next")

    def __init__(self, start: Checkpoint | None) -> None:
        self._checkpoint = start
        self._last: SourcePosition | None = None  # newest watermark, not yet a Checkpoint
        self._next = 0  # ordinal the next note_read must carry
        self._low = 0  # lowest ordinal not yet known finished
        self._finished_above: dict[int, SourcePosition] = {}

    @property
    def checkpoint(self) -> Checkpoint | None:
        """Where to resume: after the highest ordinal below which all is finished.

        The start checkpoint until the first read position is finished.
        """
        last = self._last
        if last is not None:  # built on demand: the journal asks per flush, not per change
            self._checkpoint = Checkpoint(last.resume_after, last.display, last.generation)
            self._last = None
        return self._checkpoint

    @property
    def outstanding(self) -> int:
        """Positions read but not yet finished."""
        return self._next - self._low - len(self._finished_above)

    @property
    def next_ordinal(self) -> int:
        """The ordinal the next position read will carry (how many were read)."""
        return self._next

    @property
    def lowest_unfinished(self) -> int | None:
        """The ordinal of the oldest position read and not finished; None when none is."""
        return self._low if self._low < self._next else None

    def note_read(self, position: SourcePosition) -> None:
        """Record that `position` was read; ordinals must be consecutive from 0.

        Raises ValueError on a gap or repeat, which would otherwise let the
        checkpoint skip a position.
        """
        if position.ordinal != self._next:
            raise ValueError(f"position ordinal {position.ordinal} read, expected {self._next}")
        self._next += 1

    def note_read_many(self, positions: list[SourcePosition]) -> None:
        """`note_read` for each of `positions`, in order (the admission of a batch)."""
        expected = self._next
        for position in positions:
            if position.ordinal != expected:
                self._next = expected
                raise ValueError(f"position ordinal {position.ordinal} read, expected {expected}")
            expected += 1
        self._next = expected

    def note_finished(self, position: SourcePosition) -> None:
        """Record that `position`'s outcome is durable; any order, repeats ignored.

        Raises ValueError for a position never read, because finishing it
        would say something about a change the pipeline has not seen.
        """
        ordinal = position.ordinal
        if ordinal >= self._next:
            raise ValueError(f"position ordinal {ordinal} finished before it was read")
        if ordinal < self._low:
            return
        finished = self._finished_above
        if ordinal != self._low:
            finished[ordinal] = position  # waits for the gap below it to close
            return
        low = ordinal + 1
        last = position
        while low in finished:
            last = finished.pop(low)
            low += 1
        self._low = low
        self._last = last

    def note_finished_many(self, positions: list[SourcePosition]) -> SourcePosition | None:
        """`note_finished` for each of `positions`; returns the one of highest ordinal.

        The recorder settles a whole flush at once; this is its loop, inlined.
        """
        highest: SourcePosition | None = None
        top = -1
        note_finished = self.note_finished
        for position in positions:
            ordinal = position.ordinal
            if ordinal > top:
                top, highest = ordinal, position
            if ordinal == self._low and ordinal < self._next and not self._finished_above:
                self._low = ordinal + 1  # the usual case: finished in feed order
                self._last = position
            else:
                note_finished(position)
        return highest

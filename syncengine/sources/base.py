"""The seam between a change feed and the pipeline.

A `Source` turns one feed (a file, a table) into batches of `Change` or
`BadInput`, in feed order, from a `Checkpoint`. The pipeline reads batches
into a bounded queue, the chunker coalesces them, and the watermark turns
finished positions back into the next `Checkpoint`, which the journal stores.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from syncengine.model import BadInput, Change, Cursor

#: Most items a source puts in one batch: large enough that per-batch async
#: overhead (an await, a queue put) is negligible per change, small enough that
#: a batch is a few hundred kilobytes at most.
BATCH_ITEMS = 500

#: One item read from a feed: a change to send, or a line that cannot be sent.
Item = Change | BadInput


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a feed resumes: just after the position it names.

    `resume_after` is what the source seeks past (a byte offset for files, a
    cursor value for tables); `display` is what users see for that position
    (the 1-based line number for files, the cursor value for tables), and lets
    a file source continue its line numbering without re-reading.
    """

    resume_after: Cursor
    display: int | str


class Source(Protocol):
    """A change feed that can be read from a checkpoint.

    Implementations stream (constant memory, whatever the feed's size) and
    never drop anything silently: every line or row becomes a `Change` or a
    `BadInput`, except blank lines of file feeds.
    """

    @property
    def source_id(self) -> str:
        """A stable id for the feed, under which the journal keeps its checkpoint."""
        ...

    def read(self, start: Checkpoint | None) -> AsyncIterator[list[Item]]:
        """Batches of at most `BATCH_ITEMS` items, after `start` (from the top if None).

        Positions carry consecutive ordinals starting at 0 for each call. The
        iterator ends at the feed's current end; close it (`contextlib.aclosing`)
        when stopping early so the file or connection is released.
        """
        ...

    def estimate_total(self, start: Checkpoint | None) -> int | None:
        """About how many items remain after `start`, for a progress bar; None if unknown."""
        ...

"""The seam between a change feed and the pipeline.

A `Source` turns one feed (a file, a table) into batches of `Change` or
`BadInput`, in feed order, from a `Checkpoint`. The pipeline reads batches
into a bounded queue, the chunker coalesces them, and the watermark turns
finished positions back into the next `Checkpoint`, which the journal stores.

`read` ends at the feed's current end (the `run` and `migrate` passes);
`follow` never ends by itself (the daemon): at the end it waits for more,
and it stops when the consumer closes it or cancels the task reading it.

The helpers at the end serve the file feeds (JSONL, CSV), whose checkpoint is
a byte offset and a line number.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

import structlog

from syncengine.errors import ConfigError, FatalError
from syncengine.model import BadInput, Change, Checkpoint, Cursor
from syncengine.sources.generation import fingerprint, is_generation

_log = structlog.get_logger(__name__)

#: Most items a source puts in one batch: large enough that per-batch async
#: overhead (an await, a queue put) is negligible per change, small enough that
#: a batch is a few hundred kilobytes at most.
BATCH_ITEMS = 500

#: One item read from a feed: a change to send, or a line that cannot be sent.
Item = Change | BadInput


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

    def read(self, start: Checkpoint | None) -> AsyncGenerator[list[Item], None]:
        """Batches of at most `BATCH_ITEMS` items, after `start` (from the top if None).

        Positions carry consecutive ordinals starting at 0 for each call. The
        iterator ends at the feed's current end; close it (`contextlib.aclosing`)
        when stopping early so the file or connection is released.
        """
        ...

    def follow(
        self, start: Checkpoint | None, *, poll_interval_s: float
    ) -> AsyncGenerator[list[Item], None]:
        """As `read`, but at the feed's end it waits for more instead of ending.

        Never ends by itself. A batch is whatever is available now (at most
        `BATCH_ITEMS`), yielded at once rather than held to fill up. A quiet
        feed is checked every `poll_interval_s` seconds (a change notification
        may wake it sooner). Stops promptly, releasing the file or connection,
        when the consumer closes it (`aclose`) or cancels the task awaiting it.
        Raises ConfigError for a feed that cannot be followed at all.
        """
        ...

    def estimate_total(self, start: Checkpoint | None) -> int | None:
        """About how many items remain after `start`, for a progress bar; None if unknown."""
        ...

    async def check_reachable(self, *, timeout_s: float = 2.0) -> str | None:
        """Readiness: None when the feed can be reached now, else a short reason (no secret).

        Cheap and bounded by `timeout_s`; the daemon's `/readyz` asks it, at
        most once at a time.
        """
        ...


#: Longest line a file feed reads, its line end included (8 MiB). A longer line
#: is a `BadInput` naming it, skipped in 1 MiB reads without being held whole,
#: and reading goes on at the next line: one runaway line must neither exhaust
#: memory nor stop the feed.
MAX_LINE_BYTES = 8 * 1024 * 1024

#: Bytes read from the resume point to estimate bytes per line.
_SAMPLE_BYTES = 1 << 16
#: Read buffer of file feeds: few system calls per batch.
_READ_BUFFER_BYTES = 1 << 20
#: Step in which an oversized line is read past.
_SKIP_BYTES = 1 << 20


def cursor_increases(last: Cursor, value: Cursor) -> bool:
    """True when `value` comes strictly after `last` (both integers or both text).

    Table feeds check every cursor value read against the previous one: a
    repeat or a step back would make the checkpoint skip or re-read rows.
    """
    if isinstance(last, int) and isinstance(value, int):
        return value > last
    if isinstance(last, str) and isinstance(value, str):
        return value > last
    return False


def oversized_reason(length: int, max_line_bytes: int) -> str:
    """The `BadInput` reason of a line of `length` bytes over `max_line_bytes`."""
    return f"line too long: {length} bytes, over the limit of {max_line_bytes}; not read"


def skip_rest_of_line(handle: BinaryIO) -> tuple[int, bool]:
    """Read past the current line in 1 MiB steps: (bytes read, True when its end was found).

    The line is never held whole. Without an end, the handle is at the end
    of the file and the line is unfinished.
    """
    skipped = 0
    while part := handle.readline(_SKIP_BYTES):
        skipped += len(part)
        if part.endswith(b"\n"):
            return skipped, True
    return skipped, False


def complete_lines(
    handle: BinaryIO, path: Path, line_number: int, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[bytes | int]:
    """Each complete line from the handle's position: its bytes, or its length when oversized.

    A line over `max_line_bytes` (line end included) comes as an int, the
    bytes it spans, so the caller reports it bad and counts its offset. A
    last line without its line end is never consumed: a writer may be in the
    middle of appending it, and a cut row sent as final would be a wrong
    value synced for good. The iterator stops before it (logging
    `source.incomplete_last_line`, with `line_number` counted on to name it)
    and a later read takes it once finished.
    """
    readline = handle.readline
    while raw := readline(max_line_bytes):
        line_number += 1
        if raw.endswith(b"\n"):
            yield raw
            continue
        if len(raw) == max_line_bytes:
            skipped, ended = skip_rest_of_line(handle)
            if ended:
                yield len(raw) + skipped
                continue
        if not raw.isspace():
            _log.warning("source.incomplete_last_line", path=str(path), line=line_number)
        return


def file_start(start: Checkpoint | None) -> tuple[int, int]:
    """The byte offset to seek to and the line number of the line before it.

    Raises ValueError for a checkpoint that is not a file checkpoint.
    """
    if start is None:
        return 0, 0
    offset, line_number = start.resume_after, start.display
    if not isinstance(offset, int) or not isinstance(line_number, int) or offset < 0:
        raise ValueError(f"not a file checkpoint: {start!r}")
    return offset, line_number


@contextmanager
def open_feed(path: Path) -> Iterator[BinaryIO]:
    """The feed file opened for buffered binary reading.

    Raises ConfigError naming the file when it cannot be opened: the run
    must not start on a feed that is not there.
    """
    try:
        handle = path.open("rb", buffering=_READ_BUFFER_BYTES)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot open feed: {exc.strerror or exc}") from None
    with handle:
        yield handle


def seek_line_start(handle: BinaryIO, offset: int, path: Path) -> None:
    """Seek to `offset`, which must start a line (or be the end of the file).

    Raises FatalError when it does not: the file was replaced or truncated
    since the checkpoint, and resuming would send garbage or skip lines.
    """
    if offset:
        size = os.fstat(handle.fileno()).st_size
        handle.seek(offset - 1)
        around = handle.read(2)
        at_boundary = around[:1] == b"\n" or around[1:2] in (b"\n", b"\r") or offset == size
        if offset > size or not at_boundary:
            raise FatalError(
                f"{path}: the checkpoint (byte {offset}) is not a line start of this file"
                f" ({size} bytes); was the feed replaced or truncated?"
            )
    handle.seek(offset)


#: Up to this offset a resume counts the lines before its checkpoint to check
#: that the file is still the one the checkpoint was taken in (about 0.1 s).
LINE_CHECK_BYTES = 64 * 1024 * 1024


def check_line_number(handle: BinaryIO, offset: int, line_number: int, path: Path) -> None:
    """Check that the checkpoint's line number is the file's line count at `offset`.

    A rotated or replaced feed can have a line start at the checkpoint's byte
    offset by chance; resuming there would skip lines silently. Counting the
    lines before it tells the two files apart. Raises FatalError on a
    mismatch; leaves the handle where it was. Skipped past `LINE_CHECK_BYTES`.
    """
    if not offset or offset > LINE_CHECK_BYTES:
        return
    here = handle.tell()
    handle.seek(0)
    remaining, newlines = offset, 0
    while remaining:
        block = handle.read(min(remaining, 1 << 20))
        if not block:
            break
        newlines += block.count(b"\n")
        remaining -= len(block)
    handle.seek(offset - 1)
    unterminated = handle.read(1) != b"\n"  # a last line read without its newline
    handle.seek(here)
    if line_number not in (newlines, newlines + unterminated):
        raise FatalError(
            f"{path}: the checkpoint says line {line_number} ends at byte {offset}, but this"
            f" file has {newlines} lines there; was the feed rotated or replaced while"
            " syncengine was stopped?"
        )


#: What to do when a file rewritten in place still looks like the checkpointed one.
_READ_AGAIN_ADVICE = (
    "If it is a new file, make it one (cp {path} {path}.new && mv {path}.new {path}):"
    " it is then read from its start"
)


def resume_point(
    handle: BinaryIO, start: Checkpoint | None, path: Path, *, count_lines: bool = True
) -> tuple[int, int, str]:
    """The byte offset, line number and generation a read of the open feed continues from.

    The generation is `start`'s when the file is the one `start` was taken
    in, so every checkpoint and high water of one file names it alike (a
    fingerprint taken now would cover more bytes); else the file's own
    fingerprint. (0, 0) when the file is not the one `start` was taken in
    (see `generation`), with a `source.new_file` warning when `start` was
    past its top: a new file is read from its start. A checkpoint journaled
    before fingerprints existed is checked the old way, by where its lines
    fall; a file that fails it is new too. A file
    whose fingerprint matches but whose lines do not (rewritten in place
    with the same first bytes) raises FatalError with advice, since it is
    neither safely the old file nor certainly a new one. `count_lines`
    checks the line number too (the display of a JSONL checkpoint is the
    line count at its offset; a CSV checkpoint's is its row's first line).
    """
    offset, line_number = file_start(start)
    fd = handle.fileno()
    if start is None:
        return 0, 0, fingerprint(fd)
    if start.generation is not None and not is_generation(fd, start.generation):
        return _new_file(handle, path, announce=offset > 0)
    generation = start.generation or fingerprint(fd)
    if offset == 0:
        return 0, 0, generation
    try:
        seek_line_start(handle, offset, path)
        if count_lines:
            check_line_number(handle, offset, line_number, path)
    except FatalError as error:
        if start.generation is None:
            return _new_file(handle, path, announce=True)
        raise FatalError(f"{error} {_READ_AGAIN_ADVICE.format(path=path)}") from None
    return offset, line_number, generation


def _new_file(handle: BinaryIO, path: Path, *, announce: bool) -> tuple[int, int, str]:
    if announce:
        _log.warning(
            "source.new_file",
            path=str(path),
            detail=f"feed {path} is a new file (rotated or replaced): reading it from the start",
        )
    handle.seek(0)
    return 0, 0, fingerprint(handle.fileno())


def sample_estimate(path: Path, offset: int) -> int | None:
    """Lines after `offset`: remaining bytes over a sample's bytes per line.

    None when the file cannot be read; a guess, for progress bars only.
    """
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(offset)
            sample = handle.read(_SAMPLE_BYTES)
    except OSError:
        return None
    remaining = max(size - offset, 0)
    lines = sample.count(b"\n")
    if lines == 0 or len(sample) == remaining:
        return lines + (1 if sample and not sample.endswith(b"\n") else 0)
    return round(remaining * lines / len(sample))

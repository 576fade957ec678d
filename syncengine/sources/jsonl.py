"""The JSONL feed: one JSON object per line, read as a stream of bytes.

A position's `resume_after` is the byte offset just past its line and its
`display` the 1-based line number, so a resume seeks instead of re-reading
and keeps numbering lines from the checkpoint. Each line is decoded on its
own, so a bad byte or bad JSON costs that line only (a `BadInput`). Blank
lines are skipped but counted. A last line without a newline is never
consumed until its newline is there (an appender may be mid-line), in `read`
as in `follow`. A line over `MAX_LINE_BYTES` is a `BadInput`, read past
without being held whole. Reads are plain blocking reads through a 1 MiB buffer: a local
file answers in microseconds, far below the cost of the requests it feeds,
and batching keeps the event loop responsive.

Follow mode (`JsonlSource.follow`, see `_Tail`) polls the file for growth and
survives log rotation. A rename followed by a new file at the path (the inode
at the path changes) drains the old file to its end, one poll interval after
the new file is seen so a writer that has not reopened yet is not cut off,
then reads the new file from offset 0 (line numbers restart at 1). A file
shorter than the offset read so far, or whose first bytes changed (same
inode, see `generation`), was truncated (`copytruncate`) and is read again
from 0; lines appended between the last poll and the truncation are lost,
which is why rotation by rename is the one to use. Each position carries the
generation of the file it was read in, so checkpoints taken after a rotation
name the new file. A last line without a newline is waited for, except when draining a
rotated file, where it is final. A missing file is waited for.
"""

from __future__ import annotations

import asyncio
import codecs
import itertools
import os
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import BinaryIO

import orjson
import structlog

from syncengine.errors import ConfigError
from syncengine.keys import record_key
from syncengine.model import BadInput, Change, Checkpoint, Operation, SourcePosition
from syncengine.sources.base import (
    BATCH_ITEMS,
    MAX_LINE_BYTES,
    Item,
    file_start,
    open_feed,
    oversized_reason,
    resume_point,
    sample_estimate,
    skip_rest_of_line,
)
from syncengine.sources.follow import check_poll_interval
from syncengine.sources.generation import fingerprint, is_generation
from syncengine.sources.line_chunks import line_blocks
from syncengine.sources.records import (
    MAX_NESTING_DEPTH,
    RecordDefaults,
    from_json,
    nested_deeper_than,
    too_deep_reason,
)

_BOM = codecs.BOM_UTF8

_log = structlog.get_logger(__name__)


#: No line this short can nest deeper than `MAX_NESTING_DEPTH`.
_SHALLOW_BYTES = 2 * MAX_NESTING_DEPTH


def _shallow(raw: bytes, obj: object) -> bool:
    """True when `obj`, parsed from `raw`, nests at most `MAX_NESTING_DEPTH` levels.

    Every level opens and closes a bracket, so a line shorter than two per
    level, or with few brackets (nearly all of them), is shallow without
    walking the value.
    """
    if len(raw) <= _SHALLOW_BYTES:
        return True
    brackets = raw.count(b"{") + raw.count(b"[")
    return brackets <= MAX_NESTING_DEPTH or not nested_deeper_than(obj, MAX_NESTING_DEPTH)


class JsonlSource:
    """A JSONL file of CRM records (or envelopes, see `records.from_json`)."""

    def __init__(
        self,
        path: Path,
        defaults: RecordDefaults,
        *,
        encoding: str = "utf-8",
        batch_items: int = BATCH_ITEMS,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.path = path.absolute()
        self.source_id = f"jsonl:{self.path}"
        self._defaults = defaults.of_feed(self.source_id)
        self._encoding = encoding
        self._utf8 = codecs.lookup(encoding).name == "utf-8"
        self._batch_items = batch_items
        self._max_line_bytes = max_line_bytes

    async def read(self, start: Checkpoint | None) -> AsyncGenerator[list[Item], None]:
        """Batches of changes after `start`; see `Source.read`.

        A file that is not the one `start` was taken in (rotated or
        replaced) is read from its start (`base.resume_point`). Raises
        ConfigError when the file cannot be opened, and FatalError when a
        file with the checkpointed fingerprint has no line boundary at it.
        """
        with open_feed(self.path) as handle:
            offset, line_number, generation = resume_point(handle, start, self.path)
            for batch in self._batches(handle, offset, line_number, generation):
                yield batch
                await asyncio.sleep(0)  # let senders run even if no queue is full

    async def follow(
        self, start: Checkpoint | None, *, poll_interval_s: float
    ) -> AsyncGenerator[list[Item], None]:
        """Batches of changes after `start`, waiting for more at the end; see `Source.follow`.

        The file first opened is checked against `start` as in `read`.
        Positions carry the generation of the file they were read in, so a
        checkpoint taken after a followed rotation names the new file.
        """
        check_poll_interval(poll_interval_s)
        file_start(start)  # a checkpoint that is not a file's fails here, not at the first poll
        tail = _Tail(self.path, start, max_line_bytes=self._max_line_bytes)
        ordinal = 0
        try:
            while True:
                batch: list[Item] = []
                lines = tail.lines(self._batch_items)
                generation = tail.generation
                for raw, offset, line_number in lines:
                    position = SourcePosition(ordinal, offset, line_number, generation)
                    if isinstance(raw, int):
                        reason = oversized_reason(raw, self._max_line_bytes)
                        batch.append(BadInput(position, reason))
                    else:
                        batch.append(self._parse(raw, position))
                    ordinal += 1
                if batch:
                    yield batch
                elif not tail.advance():
                    await asyncio.sleep(poll_interval_s)
        finally:
            tail.close()

    def estimate_total(self, start: Checkpoint | None) -> int | None:
        """Lines left after `start`, from the file size and a sample's bytes per line."""
        return sample_estimate(self.path, file_start(start)[0])

    def _batches(
        self, handle: BinaryIO, offset: int, line_number: int, generation: str
    ) -> Iterator[list[Item]]:
        """The items from `offset` on, in batches of at most `batch_items`."""
        items = self._items(handle, offset, line_number, generation)
        while batch := list(itertools.islice(items, self._batch_items)):
            yield batch

    def _items(
        self, handle: BinaryIO, offset: int, line_number: int, generation: str
    ) -> Iterator[Item]:
        """One item per non-blank line from `offset` on.

        The bulk of a migration is bare records with a string id in a UTF-8
        file: those become changes right here, with the key `build_change`
        would give them, because this loop runs for every line and two calls
        less per line is a sixth of the reader's time. Anything else goes
        through `_parse` and `from_json` with all their checks.
        """
        ordinal = 0
        module, operation = self._defaults.module, self._defaults.operation
        # A source key member, or deletes by default, need `from_json`'s checks.
        fast = self._utf8 and self._defaults.key_field is None and operation is not Operation.DELETE
        # record_key(module, record_id) as prefix + id: one concatenation per line
        trigger, key_prefix = self._defaults.trigger, record_key(self._defaults.module, "")
        loads, undecodable = orjson.loads, orjson.JSONDecodeError
        blocks = line_blocks(handle, self.path, line_number, self._max_line_bytes)
        for lines in blocks:
            for raw in lines:
                if isinstance(raw, int):
                    offset += raw
                    line_number += 1
                    reason = oversized_reason(raw, self._max_line_bytes)
                    yield BadInput(SourcePosition(ordinal, offset, line_number, generation), reason)
                    ordinal += 1
                    continue
                offset += len(raw) + 1  # the line and its \n
                line_number += 1
                if fast:
                    try:
                        obj = loads(raw)
                    except undecodable:
                        obj = None
                    if type(obj) is dict and "record" not in obj and _shallow(raw, obj):
                        record_id = obj.get("id")
                        if type(record_id) is str and record_id and len(obj) > 1:
                            position = SourcePosition(ordinal, offset, line_number, generation)
                            yield Change(
                                module, operation, obj, key_prefix + record_id, [position], trigger
                            )
                            ordinal += 1
                            continue
                if not raw or raw.isspace():
                    continue
                yield self._parse(raw, SourcePosition(ordinal, offset, line_number, generation))
                ordinal += 1

    def _parse(self, raw: bytes, position: SourcePosition) -> Change | BadInput:
        try:
            obj = orjson.loads(raw if self._utf8 else raw.decode(self._encoding))
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            return self._parse_slowly(raw, position)
        if not _shallow(raw, obj):
            return BadInput(position, too_deep_reason())
        return from_json(obj, position, self._defaults)

    def _parse_slowly(self, raw: bytes, position: SourcePosition) -> Change | BadInput:
        """Tell a bad encoding from bad JSON, and allow a UTF-8 byte-order mark."""
        if self._utf8 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        try:
            text = raw.decode(self._encoding)
        except UnicodeDecodeError as exc:
            return BadInput(
                position, f"bad encoding: not valid {self._encoding} at byte {exc.start + 1}"
            )
        try:
            # Without its line ending, so an error at the end of the line is
            # reported at its column rather than as column 1 of a next line.
            obj = orjson.loads(text.rstrip("\r\n"))
        except orjson.JSONDecodeError as exc:
            return BadInput(position, f"bad JSON at column {exc.colno}: {exc.msg}")
        if not _shallow(raw, obj):
            return BadInput(position, too_deep_reason())
        return from_json(obj, position, self._defaults)

    async def check_reachable(self, *, timeout_s: float = 2.0) -> str | None:
        """Readiness: None while the feed's folder exists (the file itself may come later)."""
        if self.path.parent.is_dir():
            return None
        return f"feed folder {self.path.parent} does not exist"


class _Tail:
    """The followed file: its open handle, the offset and line number read so far.

    Only complete lines are consumed; `advance` notices rotation and
    truncation when `lines` has nothing more. `generation` is the
    fingerprint of the file the lines come from, taken once its first line
    is read (None before): a rotation or truncation starts a new one.
    """

    def __init__(
        self, path: Path, start: Checkpoint | None, *, max_line_bytes: int = MAX_LINE_BYTES
    ) -> None:
        self.path = path
        self._max_line_bytes = max_line_bytes
        self._start = start
        self.offset, self.line_number = file_start(start)
        self.generation: str | None = None
        self._handle: BinaryIO | None = None
        self._opened_once = False
        self._draining = False  # the path holds a new file; finish this one first
        self._waiting_logged = False

    def lines(self, limit: int) -> list[tuple[bytes | int, int, int]]:
        """Up to `limit` complete non-blank lines: (raw, offset past it, line number).

        An oversized line comes as its length in bytes instead of its bytes
        (see `complete_lines`); it is read past in steps, never held whole.
        """
        handle = self._handle or self._open()
        found: list[tuple[bytes | int, int, int]] = []
        if handle is None:
            return found
        while len(found) < limit:
            text = handle.readline(self._max_line_bytes)
            if not text:
                break
            raw: bytes | int = text
            ended = text.endswith(b"\n")
            if not ended and len(text) == self._max_line_bytes:
                skipped, ended = skip_rest_of_line(handle)
                raw = len(text) + skipped
            if not ended and not self._draining:
                handle.seek(self.offset)  # a line still being written: wait for its end
                break
            self.offset += raw if isinstance(raw, int) else len(raw)
            self.line_number += 1
            if isinstance(raw, int) or not raw.isspace():
                found.append((raw, self.offset, self.line_number))
        if found and self.generation is None:
            self.generation = fingerprint(handle.fileno())
        return found

    def advance(self) -> bool:
        """At the end of the data: switch or rewind after a rotation; True when it did.

        A new file at the path starts a drain (returns False, so the caller
        waits one interval before the last read of the old file); the call
        after the drained read switches to the new file.
        """
        if self._handle is None:
            return False
        if self._draining:
            self._switch()
            return True
        try:
            at_path = os.stat(self.path)
        except FileNotFoundError:
            return False  # renamed, nothing new yet: keep reading the old file
        own = os.fstat(self._handle.fileno())
        if (at_path.st_dev, at_path.st_ino) != (own.st_dev, own.st_ino):
            _log.info("source.rotated", path=str(self.path), offset=self.offset)
            self._draining = True
            return False
        rewritten = self.generation is not None and not is_generation(
            self._handle.fileno(), self.generation
        )
        if own.st_size < self.offset or rewritten:
            # Shorter than what was read, or other first bytes: truncated and
            # (perhaps) written again in place, a new file in the same inode.
            _log.warning("source.truncated", path=str(self.path), offset=self.offset)
            self._restart()
            self._handle.seek(0)
            return True
        return False

    def close(self) -> None:
        """Release the file; safe to call more than once."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _open(self) -> BinaryIO | None:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            if not self._waiting_logged:
                _log.info("source.waiting_for_file", path=str(self.path))
                self._waiting_logged = True
            return None
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot open feed: {exc.strerror or exc}") from None
        try:
            if self._opened_once:
                self._restart()
            else:
                self.offset, self.line_number, generation = resume_point(
                    handle, self._start, self.path
                )
                # Named as the checkpoint names it, so positions of the file
                # the checkpoint was taken in keep the checkpoint's generation;
                # another file's fingerprint waits for its first line.
                if self._start is not None and generation == self._start.generation:
                    self.generation = generation
        except BaseException:
            handle.close()
            raise
        self._opened_once = True
        self._waiting_logged = False
        self._handle = handle
        return handle

    def _switch(self) -> None:
        _log.info("source.reopened", path=str(self.path))
        self.close()
        self._draining = False
        self._restart()

    def _restart(self) -> None:
        self.offset = 0
        self.line_number = 0
        self.generation = None

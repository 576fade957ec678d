"""The CSV feed: a header row of field API names, then one record per row.

The file is read as bytes, line by line, and handed to one `csv.reader`
(strict RFC 4180 quoting, so a quoted field may span lines while a stray
`"` inside an unquoted field stays literal); counting the lines the reader
pulls gives every row an exact byte offset to resume from (`resume_after`,
just past the row) and a 1-based line number (`display`, the row's first
line; the header is line 1). Cells are strings; an empty cell omits the
field. `_module` and `_operation` columns override the defaults per row.

A row that cannot be used (wrong number of cells, bad encoding, bad quoting,
a line over `MAX_LINE_BYTES`) becomes a `BadInput`. A last line without its
line end, or a last row inside an open quote, is left for the next read, in
every mode: an appender caught mid-row (`Johannes` of
`Johannesburg-Williams`) must not be sent as if final. The encoding must be
ASCII-compatible (the config checks it), so line ends are bytes.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import BinaryIO

import structlog

from syncengine.errors import ConfigError, FatalError
from syncengine.model import BadInput, Change, Checkpoint, SourcePosition
from syncengine.sources.base import (
    BATCH_ITEMS,
    MAX_LINE_BYTES,
    Item,
    complete_lines,
    file_start,
    open_feed,
    oversized_reason,
    resume_point,
    sample_estimate,
)
from syncengine.sources.records import RecordDefaults, from_row

_COUNT_CHUNK_BYTES = 1 << 20
_END_INSIDE_QUOTES = "unexpected end of data"
#: What csv reads in place of a line too long to read (its row is a `BadInput`).
_OVERSIZED_STAND_IN = "-"  # csv's strict-mode error at EOF in a quote

_log = structlog.get_logger(__name__)


class _Lines:
    """Decoded lines for `csv.reader`, counting the bytes and lines it consumed.

    A line that does not decode is passed on with its bad bytes escaped, and
    `bad_encoding` says why, so the row holding it becomes a `BadInput`; an
    oversized line likewise, as a stand-in of one cell. A last line without
    its line end is never passed on (see `complete_lines`).
    """

    def __init__(
        self,
        handle: BinaryIO,
        offset: int,
        line_number: int,
        encoding: str,
        path: Path,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self._lines = complete_lines(handle, path, line_number, max_line_bytes)
        self._max_line_bytes = max_line_bytes
        self._encoding = encoding
        self._strip_bom = codecs.lookup(encoding).name == "utf-8" and offset == 0
        self.offset = offset
        self.line_number = line_number
        self.bad_encoding: str | None = None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = next(self._lines)
        self.line_number += 1
        if isinstance(raw, int):
            self.offset += raw
            self.bad_encoding = oversized_reason(raw, self._max_line_bytes)
            return _OVERSIZED_STAND_IN
        self.offset += len(raw)
        if self._strip_bom:
            self._strip_bom = False
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            return raw.decode(self._encoding)
        except UnicodeDecodeError as exc:
            self.bad_encoding = f"bad encoding: not valid {self._encoding} at byte {exc.start + 1}"
            return raw.decode(self._encoding, errors="surrogateescape")


def _count_lines(handle: BinaryIO, offset: int) -> int:
    """Line ends before `offset`: the line number a resume continues from."""
    handle.seek(0)
    count = 0
    left = offset
    while left > 0:
        chunk = handle.read(min(left, _COUNT_CHUNK_BYTES))
        if not chunk:
            break
        count += chunk.count(b"\n")
        left -= len(chunk)
    return count


class CsvSource:
    """A CSV file whose header names CRM fields (and optionally `_module`, `_operation`)."""

    def __init__(
        self,
        path: Path,
        defaults: RecordDefaults,
        *,
        encoding: str = "utf-8",
        delimiter: str = ",",
        batch_items: int = BATCH_ITEMS,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.path = path.absolute()
        self.source_id = f"csv:{self.path}"
        self._defaults = defaults.of_feed(self.source_id)
        self._encoding = encoding
        self._delimiter = delimiter
        self._batch_items = batch_items
        self._max_line_bytes = max_line_bytes

    async def read(self, start: Checkpoint | None) -> AsyncGenerator[list[Item], None]:
        """Batches of changes after `start`; see `Source.read`.

        A file that is not the one `start` was taken in (a new export at the
        same path, by rename or rewritten in place) is read from its start
        (`base.resume_point`). Raises ConfigError when the file cannot be
        opened or its header is unusable, FatalError when a file with the
        checkpointed fingerprint has no row boundary at `start`.
        """
        file_start(start)  # a checkpoint that is not a file's fails before the file is read
        with open_feed(self.path) as handle:
            offset, _, generation = resume_point(handle, start, self.path, count_lines=False)
            handle.seek(0)
            lines = _Lines(handle, 0, 0, self._encoding, self.path, self._max_line_bytes)
            rows = csv.reader(lines, delimiter=self._delimiter, strict=True)
            header = self._header(rows, lines)
            if header is None:
                return
            if offset:
                if offset < lines.offset:
                    raise FatalError(
                        f"{self.path}: the checkpoint (byte {offset}) is in the header"
                    )
                line_number = _count_lines(handle, offset)
                handle.seek(offset)
                lines = _Lines(
                    handle, offset, line_number, self._encoding, self.path, self._max_line_bytes
                )
                rows = csv.reader(lines, delimiter=self._delimiter, strict=True)
            for batch in self._batches(rows, lines, header, generation):
                yield batch
                await asyncio.sleep(0)  # let senders run even if no queue is full

    def estimate_total(self, start: Checkpoint | None) -> int | None:
        """Rows left after `start`, from the file size and a sample's bytes per line."""
        estimate = sample_estimate(self.path, file_start(start)[0])
        if estimate is None or start is not None:
            return estimate
        return max(estimate - 1, 0)  # the header

    def _header(self, rows: Iterator[list[str]], lines: _Lines) -> list[str] | None:
        """The first non-blank row's names; None for an empty file."""
        for cells in _rows_or_errors(rows):
            if isinstance(cells, list) and _is_blank(cells):
                continue
            where = f"{self.path} line {lines.line_number}"
            if isinstance(cells, str) or lines.bad_encoding:
                raise ConfigError(f"{where}: unusable CSV header: {lines.bad_encoding or cells}")
            names = [name.strip() for name in cells]
            if not all(names):
                raise ConfigError(f"{where}: the CSV header has an empty column name")
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ConfigError(f"{where}: the CSV header repeats {', '.join(repeated)}")
            return names
        return None

    def _batches(
        self, rows: Iterator[list[str]], lines: _Lines, header: list[str], generation: str
    ) -> Iterator[list[Item]]:
        batch: list[Item] = []
        size = self._batch_items
        ordinal = 0
        first_line = lines.line_number + 1
        for cells in _rows_or_errors(rows):
            if isinstance(cells, list) and _is_blank(cells):
                first_line = lines.line_number + 1
                continue
            position = SourcePosition(ordinal, lines.offset, first_line, generation)
            item = self._item(cells, lines.bad_encoding, position, header)
            lines.bad_encoding = None
            first_line = lines.line_number + 1
            if type(item) is BadInput and _is_unfinished(cells):
                _log.warning(
                    "source.incomplete_last_line", path=str(self.path), line=position.display
                )
                break
            batch.append(item)
            ordinal += 1
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _item(
        self,
        cells: list[str] | str,
        bad_encoding: str | None,
        position: SourcePosition,
        header: list[str],
    ) -> Change | BadInput:
        if isinstance(cells, str) or bad_encoding:
            return BadInput(position, bad_encoding or str(cells))
        if len(cells) != len(header):
            return BadInput(position, f"{len(cells)} cells where the header has {len(header)}")
        row = {name: cell for name, cell in zip(header, cells, strict=True) if cell}
        return from_row(row, position, self._defaults)

    async def check_reachable(self, *, timeout_s: float = 2.0) -> str | None:
        """Readiness: None while the feed's folder exists (the file itself may come later)."""
        if self.path.parent.is_dir():
            return None
        return f"feed folder {self.path.parent} does not exist"


def _rows_or_errors(rows: Iterator[list[str]]) -> Iterator[list[str] | str]:
    """Each row's cells, or the reason (a str) csv could not parse it; csv resumes after it."""
    while True:
        try:
            yield next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            yield f"bad CSV: {exc}"


def _is_blank(cells: list[str]) -> bool:
    return not cells or (len(cells) == 1 and cells[0].isspace())


def _is_unfinished(cells: list[str] | str) -> bool:
    """True for a last row inside an open quote: probably still being written."""
    return isinstance(cells, str) and cells.endswith(_END_INSIDE_QUOTES)

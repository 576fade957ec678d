"""The CSV feed: a header row of field API names, then one record per row.

The file is read as bytes and cut at line ends, so every row has an exact
byte offset to resume from (`resume_after`, just past the row) and a 1-based
line number (`display`, the row's first line; the header is line 1). A quoted
field may span lines: a row ends at the first line end outside quotes
(RFC 4180 quoting, `"` doubled inside quotes). Cells are strings; an empty
cell omits the field. `_module` and `_operation` columns override the
defaults per row. A row that cannot be used (wrong number of cells, bad
encoding, bad quoting) becomes a `BadInput`, except an unusable last row
without a line end or inside an open quote, which is left for the next read:
an appender caught mid-row. (A row cut inside its last cell still parses: appenders must write
whole rows.) The encoding must be ASCII-compatible (the config checks it),
so line ends and quotes are bytes.
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
from syncengine.model import BadInput, Change, SourcePosition
from syncengine.sources.base import (
    BATCH_ITEMS,
    Checkpoint,
    Item,
    file_start,
    open_feed,
    sample_estimate,
    seek_line_start,
)
from syncengine.sources.records import RecordDefaults, from_row

#: A row read from the file: its first line number, the offset just past it,
#: its bytes, and whether its quotes are balanced (False only at end of file).
_RawRow = tuple[int, int, bytes, bool]

_COUNT_CHUNK_BYTES = 1 << 20

_log = structlog.get_logger(__name__)


def _raw_rows(handle: BinaryIO, offset: int, line_number: int) -> Iterator[_RawRow]:
    """Rows as bytes, joined across line ends that fall inside quotes; blank lines skipped."""
    parts: list[bytes] = []
    quotes = 0
    first_line = 0
    for line in handle:
        offset += len(line)
        line_number += 1
        if not parts:
            if line.isspace():
                continue
            first_line = line_number
        parts.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            yield first_line, offset, parts[0] if len(parts) == 1 else b"".join(parts), True
            parts = []
            quotes = 0
    if parts:
        yield first_line, offset, b"".join(parts), False


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
    ) -> None:
        self.path = path.absolute()
        self.source_id = f"csv:{self.path}"
        self._defaults = defaults
        self._encoding = encoding
        self._utf8 = codecs.lookup(encoding).name == "utf-8"
        self._delimiter = delimiter
        self._batch_items = batch_items

    async def read(self, start: Checkpoint | None) -> AsyncGenerator[list[Item], None]:
        """Batches of changes after `start`; see `Source.read`.

        Raises ConfigError when the file cannot be opened or its header is
        unusable, FatalError when `start` is not a row boundary of the file.
        """
        offset, _ = file_start(start)
        with open_feed(self.path) as handle:
            rows = _raw_rows(handle, 0, 0)
            first = next(rows, None)
            if first is None:
                return
            header = self._header(first)
            if start is not None:
                if offset < first[1]:
                    raise FatalError(
                        f"{self.path}: the checkpoint (byte {offset}) is in the header"
                    )
                line_number = _count_lines(handle, offset)
                seek_line_start(handle, offset, self.path)
                rows = _raw_rows(handle, offset, line_number)
            for batch in self._batches(rows, header):
                yield batch
                await asyncio.sleep(0)  # let senders run even if no queue is full

    def estimate_total(self, start: Checkpoint | None) -> int | None:
        """Rows left after `start`, from the file size and a sample's bytes per line."""
        estimate = sample_estimate(self.path, file_start(start)[0])
        if estimate is None or start is not None:
            return estimate
        return max(estimate - 1, 0)  # the header

    def _header(self, raw_row: _RawRow) -> list[str]:
        line_number, _, raw, complete = raw_row
        cells = self._cells(raw, complete)
        where = f"{self.path} line {line_number}"
        if isinstance(cells, str):
            raise ConfigError(f"{where}: unusable CSV header: {cells}")
        names = [name.strip() for name in cells]
        if not all(names):
            raise ConfigError(f"{where}: the CSV header has an empty column name")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"{where}: the CSV header repeats {', '.join(duplicates)}")
        return names

    def _batches(self, rows: Iterator[_RawRow], header: list[str]) -> Iterator[list[Item]]:
        batch: list[Item] = []
        size = self._batch_items
        for ordinal, (line_number, offset, raw, complete) in enumerate(rows):
            position = SourcePosition(ordinal, offset, line_number)
            item = self._item(raw, complete, position, header)
            if type(item) is BadInput and not (complete and raw.endswith(b"\n")):
                # Unusable and unfinished: most likely still being written. Leave it
                # unread (the checkpoint stays before it) so the next read takes it whole.
                _log.warning("source.incomplete_last_line", path=str(self.path), line=line_number)
                break
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _item(
        self, raw: bytes, complete: bool, position: SourcePosition, header: list[str]
    ) -> Change | BadInput:
        cells = self._cells(raw, complete)
        if isinstance(cells, str):
            return BadInput(position, cells)
        if len(cells) != len(header):
            return BadInput(position, f"{len(cells)} cells where the header has {len(header)}")
        row = {name: cell for name, cell in zip(header, cells, strict=True) if cell}
        return from_row(row, position, self._defaults)

    def _cells(self, raw: bytes, complete: bool) -> list[str] | str:
        """The row's cells, or the reason they cannot be read."""
        if not complete:
            return "unterminated quoted field"
        if self._utf8 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            text = raw.decode(self._encoding)
        except UnicodeDecodeError as exc:
            return f"bad encoding: not valid {self._encoding} at byte {exc.start + 1}"
        if '"' not in text:  # the common case: no quoting, a plain split is exact
            return text.rstrip("\r\n").split(self._delimiter)
        try:
            return next(csv.reader((text,), delimiter=self._delimiter, strict=True), [])
        except csv.Error as exc:
            return f"bad CSV: {exc}"

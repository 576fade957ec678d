"""Property tests: file feeds read every line once, and resume exactly where they left off."""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from syncengine.model import BadInput, Checkpoint, Operation, SourcePosition
from syncengine.sources.base import Item
from syncengine.sources.csv_feed import CsvSource
from syncengine.sources.jsonl import JsonlSource
from syncengine.sources.records import RecordDefaults

DEFAULTS = RecordDefaults("Leads", Operation.UPDATE, ())
_TEXT = st.text(alphabet=st.sampled_from('ab ,"\n\r;é'), max_size=8)


def summary(item: Item) -> tuple[int, int | str, int | str, object]:
    """(ordinal, resume_after, display, payload) of an item, for comparisons."""
    if isinstance(item, BadInput):
        return (*_pos(item.position), item.reason)
    return (*_pos(item.positions[0]), item.record)


def _pos(position: SourcePosition) -> tuple[int, int | str, int | str]:
    return position.ordinal, position.resume_after, position.display


def read_all(source: JsonlSource | CsvSource, start: Checkpoint | None) -> list[Item]:
    """Every item from `start`, read on a fresh event loop."""

    async def collect() -> list[Item]:
        return [item async for batch in source.read(start) for item in batch]

    return asyncio.run(collect())


def check_resume_from_every_item(source: JsonlSource | CsvSource) -> None:
    """Resuming after item k yields items k+1.. with the same positions, ordinals from 0."""
    items = read_all(source, None)
    for k, item in enumerate(items):
        _, resume_after, display, _ = summary(item)
        rest = read_all(source, Checkpoint(resume_after, display))
        expected = [(n, *summary(later)[1:]) for n, later in enumerate(items[k + 1 :])]
        assert [summary(later) for later in rest] == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.dictionaries(st.sampled_from(["A", "B"]), _TEXT, max_size=2).map(
                lambda fields: orjson.dumps({"id": "1", **fields})
            ),
            st.sampled_from([b"", b"  ", b"[1]", b"{bad", b'{"A": 1}', b"\xff\xfe"]),
        ),
        max_size=12,
    ),
    st.booleans(),
)
def test_jsonl_every_line_once_and_resume_anywhere(lines: list[bytes], trailing: bool) -> None:
    """Each non-blank JSONL line is one item at its line number; resume works after any item."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "feed.jsonl"
        path.write_bytes(b"\n".join(lines) + (b"\n" if trailing else b""))
        source = JsonlSource(path, DEFAULTS)
        items = read_all(source, None)
        numbered = [n for n, line in enumerate(lines, 1) if line.strip()]
        if not trailing and lines and lines[-1].strip():
            numbered.pop()  # an unterminated last line is left for later
        assert [summary(item)[2] for item in items] == numbered
        check_resume_from_every_item(source)


@settings(max_examples=60, deadline=None)
@given(st.lists(_TEXT, max_size=10))
def test_csv_every_row_once_and_resume_anywhere(notes: list[str]) -> None:
    """Rows written by csv.writer (quotes, newlines, delimiters) read back and resume exactly."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["id", "Note", "Tag"])
    for note in notes:
        writer.writerow(["7", note, "x"])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "feed.csv"
        path.write_bytes(buffer.getvalue().encode("utf-8"))
        source = CsvSource(path, DEFAULTS)
        items = read_all(source, None)
        assert [summary(item)[3] for item in items] == [
            {"id": "7", **({"Note": note} if note else {}), "Tag": "x"} for note in notes
        ]
        check_resume_from_every_item(source)

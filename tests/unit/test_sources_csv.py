"""Tests for the CSV feed (sources/csv_feed.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from syncengine.errors import ConfigError, FatalError
from syncengine.model import BadInput, Change, Checkpoint, Operation
from syncengine.sources.base import Item
from syncengine.sources.csv_feed import CsvSource
from syncengine.sources.generation import fingerprint
from syncengine.sources.records import RecordDefaults

DEFAULTS = RecordDefaults("Leads", Operation.UPDATE, ())


def feed(tmp_path: Path, data: bytes, **options: str) -> CsvSource:
    """A CSV source over a file holding `data`."""
    path = tmp_path / "feed.csv"
    path.write_bytes(data)
    return CsvSource(path, DEFAULTS, **options)  # type: ignore[arg-type]


async def collect(source: CsvSource, start: Checkpoint | None = None) -> list[Item]:
    """Every item the source yields from `start`, batches flattened."""
    return [item for batch in [b async for b in source.read(start)] for item in batch]


def where(item: Item) -> tuple[int, int | str, int | str]:
    """(ordinal, resume_after, display) of an item's first position."""
    position = item.position if isinstance(item, BadInput) else item.positions[0]
    return position.ordinal, position.resume_after, position.display


async def test_rows_become_string_records_and_empty_cells_are_omitted(tmp_path: Path) -> None:
    """Header names are fields; cells are strings; an empty cell sends no field."""
    items = await collect(feed(tmp_path, b"id,Company,Phone\n1,Acme,\n2,,555\n"))
    assert [item.record for item in items if isinstance(item, Change)] == [
        {"id": "1", "Company": "Acme"},
        {"id": "2", "Phone": "555"},
    ]
    assert all(
        item.key == f"Leads:{item.record['id']}" for item in items if isinstance(item, Change)
    )


async def test_positions_count_header_as_line_one(tmp_path: Path) -> None:
    """A row's display is its line number (header is 1), resume_after the offset past it."""
    header, row1, row2 = b"id,A\r\n", b"1,x\r\n", b"2,y\r\n"
    items = await collect(feed(tmp_path, header + row1 + b"\r\n" + row2))
    assert [where(item) for item in items] == [
        (0, len(header + row1), 2),
        (1, len(header + row1) + 2 + len(row2), 4),
    ]


async def test_quoted_fields_may_hold_newlines_and_delimiters(tmp_path: Path) -> None:
    """A quoted cell spanning lines is one row; the next row's line number accounts for it."""
    data = b'id,Description,A\n1,"two\nlines, ""quoted""",x\n2,plain,y\n'
    items = await collect(feed(tmp_path, data))
    assert isinstance(items[0], Change)
    assert items[0].record == {"id": "1", "Description": 'two\nlines, "quoted"', "A": "x"}
    assert [where(item)[2] for item in items] == [2, 4]


async def test_resume_after_multiline_row_keeps_line_numbers(tmp_path: Path) -> None:
    """Resuming after a row that spans lines continues with the right line numbers."""
    data = b'id,A\n1,"a\nb\nc"\n2,x\n3,y\n'
    source = feed(tmp_path, data)
    first = await collect(source)
    _, offset, line = where(first[0])
    rest = await collect(source, Checkpoint(resume_after=offset, display=line))
    assert [where(item) for item in rest] == [(0, *where(first[1])[1:]), (1, *where(first[2])[1:])]
    assert [where(item)[2] for item in rest] == [5, 6]


async def test_bad_rows_become_bad_input(tmp_path: Path) -> None:
    """Wrong cell counts, bad bytes, bad quoting and missing ids fail their row only."""
    data = b'id,A\n1,x,extra\n2,\xff\n3,"a"b\n,nobody\n4,ok\n'
    items = await collect(feed(tmp_path, data))
    reasons = [(item.position.display, item.reason) for item in items if isinstance(item, BadInput)]
    assert reasons[0] == (2, "3 cells where the header has 2")
    assert reasons[1] == (3, "bad encoding: not valid utf-8 at byte 3")
    assert reasons[2][0] == 4
    assert reasons[2][1].startswith("bad CSV")
    assert reasons[3] == (5, "no id for an update")
    assert [item.record["id"] for item in items if isinstance(item, Change)] == ["4"]


async def test_last_row_without_line_end_is_left_until_it_ends(tmp_path: Path) -> None:
    """A usable last row with no line end is not read: its last cell may be cut."""
    head = b"id,A\n4,ok\n"
    items = await collect(feed(tmp_path, head + b"5,x"))
    assert [where(item) for item in items] == [(0, len(head), 2)]


@pytest.mark.parametrize("tail", [b'5,"open quote\n', b"5"])
async def test_unfinished_last_row_is_left_for_next_read(tmp_path: Path, tail: bytes) -> None:
    """A last row inside an open quote or cut short is not failed; a later read takes it whole."""
    path = tmp_path / "feed.csv"
    head = b"id,A\n4,ok\n"
    path.write_bytes(head + tail)
    source = CsvSource(path, DEFAULTS)
    with capture_logs() as logs:
        items = await collect(source)
    assert [where(item) for item in items] == [(0, len(head), 2)]
    assert any(log["event"] == "source.incomplete_last_line" for log in logs)
    with path.open("ab") as handle:
        handle.write(b'done"\n' if b'"' in tail else b",x\n")
    rest = await collect(source, Checkpoint(resume_after=len(head), display=2))
    assert [(type(item).__name__, where(item)[2]) for item in rest] == [("Change", 3)]


async def test_semicolon_delimiter_and_override_columns(tmp_path: Path) -> None:
    """The configured delimiter splits cells; `_module`/`_operation` steer the row."""
    data = b"_module;_operation;Deal_Name\nDeals;upsert;Big one\n"
    items = await collect(feed(tmp_path, data, delimiter=";"))
    assert isinstance(items[0], Change)
    assert (items[0].module, items[0].operation) == ("Deals", Operation.UPSERT)
    assert items[0].record == {"Deal_Name": "Big one"}


@pytest.mark.parametrize(
    ("header", "message"),
    [(b"id,A,id\n", "repeats id"), (b"id,,A\n", "empty column name")],
)
async def test_unusable_header_is_config_error(tmp_path: Path, header: bytes, message: str) -> None:
    """A header with repeated or empty names is an error naming the file and line."""
    with pytest.raises(ConfigError, match=message):
        await collect(feed(tmp_path, header + b"1,2,3\n"))


async def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    """A file with no header and no rows is an empty feed, not an error."""
    assert await collect(feed(tmp_path, b"")) == []


async def test_checkpoint_of_this_file_inside_a_row_is_fatal(tmp_path: Path) -> None:
    """A checkpoint with this file's fingerprint that is no row boundary stops the run."""
    source = feed(tmp_path, b"id,A\n1,x\n2,y\n")
    generation = this_generation(source.path)
    for offset in (2, 7):
        with pytest.raises(FatalError, match=r"not a line start.*cp "):
            await collect(source, Checkpoint(offset, 2, generation))


async def test_old_checkpoint_inside_a_row_reads_the_file_from_the_start(tmp_path: Path) -> None:
    """A checkpoint without fingerprint (an older journal) that fits no row: a new file."""
    source = feed(tmp_path, b"id,A\n1,x\n2,y\n")
    with capture_logs() as logs:
        items = await collect(source, Checkpoint(resume_after=7, display=2))
    assert [where(item)[2] for item in items] == [2, 3]
    assert [log["event"] for log in logs] == ["source.new_file"]


def this_generation(path: Path) -> str:
    """The fingerprint of the file at `path` now."""
    with path.open("rb") as handle:
        return fingerprint(handle.fileno())


async def test_ordinals_run_on_across_batches(tmp_path: Path) -> None:
    """Batches hold at most batch_items rows and ordinals count on from batch to batch."""
    path = tmp_path / "feed.csv"
    path.write_bytes(b"id,A\n" + b"".join(b"%d,x\n" % i for i in range(5)))
    batches = [batch async for batch in CsvSource(path, DEFAULTS, batch_items=2).read(None)]
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert [where(item)[0] for batch in batches for item in batch] == [0, 1, 2, 3, 4]


async def test_stray_quote_in_unquoted_cell_is_literal(tmp_path: Path) -> None:
    """An inch mark inside an unquoted cell neither fails the row nor swallows the next."""
    items = await collect(feed(tmp_path, b'id,Size\n1,5" pipe\n2,3/4" pipe\n3,x\n'))
    assert [item.record["Size"] for item in items if isinstance(item, Change)] == [
        '5" pipe',
        '3/4" pipe',
        "x",
    ]
    assert [where(item)[2] for item in items] == [2, 3, 4]


def test_estimate_total_excludes_header(tmp_path: Path) -> None:
    """The estimate counts data rows, not the header."""
    source = feed(tmp_path, b"id,A\n" + b"".join(b"%d,x\n" % i for i in range(50)))
    assert source.estimate_total(None) == 50

"""Tests for the JSONL feed (sources/jsonl.py)."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from syncengine.errors import ConfigError, FatalError
from syncengine.model import BadInput, Change, Checkpoint, Operation, SourcePosition
from syncengine.sources.base import Item
from syncengine.sources.generation import fingerprint
from syncengine.sources.jsonl import JsonlSource
from syncengine.sources.records import RecordDefaults, from_json

DEFAULTS = RecordDefaults("Leads", Operation.UPDATE, ())


def feed(tmp_path: Path, data: bytes) -> JsonlSource:
    """A JSONL source over a file holding `data`."""
    path = tmp_path / "feed.jsonl"
    path.write_bytes(data)
    return JsonlSource(path, DEFAULTS)


async def collect(source: JsonlSource, start: Checkpoint | None = None) -> list[Item]:
    """Every item the source yields from `start`, batches flattened."""
    return [item for batch in [b async for b in source.read(start)] for item in batch]


def position_of(item: Item) -> tuple[int, int | str, int | str]:
    """(ordinal, resume_after, display) of a change's first position or a bad input's."""
    position = item.position if isinstance(item, BadInput) else item.positions[0]
    return position.ordinal, position.resume_after, position.display


async def test_positions_are_byte_offsets_and_line_numbers(tmp_path: Path) -> None:
    """Each line's checkpoint is the offset past it; display counts blank lines too."""
    line1 = b'{"id": "1", "A": 1}\n'
    line3 = b'{"id": "2", "A": 2}\r\n'
    source = feed(tmp_path, line1 + b"  \n" + line3)
    items = await collect(source)
    assert [position_of(item) for item in items] == [
        (0, len(line1), 1),
        (1, len(line1) + 3 + len(line3), 3),
    ]
    assert [item.record for item in items if isinstance(item, Change)] == [
        {"id": "1", "A": 1},
        {"id": "2", "A": 2},
    ]


async def test_final_line_without_newline_is_left_until_it_ends(tmp_path: Path) -> None:
    """A last line with no newline is not consumed, even when it parses: it may be cut."""
    first = b'{"id": "1", "A": 1}\n'
    items = await collect(feed(tmp_path, first + b'{"id": "2", "A": 2}'))
    assert [position_of(item) for item in items] == [(0, len(first), 1)]


async def test_unparsable_unterminated_last_line_is_left_for_next_read(tmp_path: Path) -> None:
    """A half-written last line is not failed: the next read, once it is complete, takes it."""
    path = tmp_path / "feed.jsonl"
    first = b'{"id": "1", "A": 1}\n'
    path.write_bytes(first + b'{"id": "2", "A')
    source = JsonlSource(path, DEFAULTS)
    with capture_logs() as logs:
        items = await collect(source)
    assert [position_of(item) for item in items] == [(0, len(first), 1)]
    assert any(log["event"] == "source.incomplete_last_line" and log["line"] == 2 for log in logs)
    with path.open("ab") as handle:
        handle.write(b'": 2}\n')
    rest = await collect(source, Checkpoint(resume_after=len(first), display=1))
    assert [(type(item).__name__, position_of(item)[2]) for item in rest] == [("Change", 2)]


async def test_bad_lines_become_bad_input_and_reading_goes_on(tmp_path: Path) -> None:
    """Bad JSON, bad bytes, non-objects and missing ids fail their line only."""
    data = (
        b'{"id": "1", "A": 1}\n'
        b'{"id": "2", "A": \n'
        b'{"id": "3", "A": "\xff\xfe"}\n'
        b"[1, 2]\n"
        b'{"A": 5}\n'
        b'{"id": "6", "A": 6}\n'
    )
    items = await collect(feed(tmp_path, data))
    assert [type(item).__name__ for item in items] == [
        "Change",
        "BadInput",
        "BadInput",
        "BadInput",
        "BadInput",
        "Change",
    ]
    reasons = [(item.position.display, item.reason) for item in items if isinstance(item, BadInput)]
    assert reasons[0][0] == 2
    assert reasons[0][1].startswith("bad JSON at column")
    assert reasons[1] == (3, "bad encoding: not valid utf-8 at byte 19")
    assert reasons[2] == (4, "not a JSON object but an array")
    assert reasons[3] == (5, "no id for an update")


async def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    """A BOM at the start of a UTF-8 file does not make the first line bad."""
    items = await collect(feed(tmp_path, b'\xef\xbb\xbf{"id": "1", "A": 1}\n'))
    assert isinstance(items[0], Change)


async def test_other_ascii_compatible_encoding_is_decoded(tmp_path: Path) -> None:
    """A latin-1 feed is decoded with the configured encoding."""
    path = tmp_path / "feed.jsonl"
    path.write_bytes('{"id": "1", "City": "Zürich"}\n'.encode("latin-1"))
    items = await collect(JsonlSource(path, DEFAULTS, encoding="latin-1"))
    assert isinstance(items[0], Change)
    assert items[0].record["City"] == "Zürich"


async def test_resume_continues_after_checkpoint_with_line_numbers(tmp_path: Path) -> None:
    """From a checkpoint, reading seeks past it, keeps numbering and restarts ordinals."""
    data = b"".join(b'{"id": "%d", "A": 1}\n' % i for i in range(5))
    source = feed(tmp_path, data)
    first = await collect(source)
    _, offset, line = position_of(first[1])
    rest = await collect(source, Checkpoint(resume_after=offset, display=line))
    expected = [position_of(item)[1:] for item in first[2:]]
    assert [position_of(item) for item in rest] == [(n, *pos) for n, pos in enumerate(expected)]
    assert [item.record["id"] for item in rest if isinstance(item, Change)] == ["2", "3", "4"]


async def test_batches_hold_at_most_batch_items(tmp_path: Path) -> None:
    """A read yields batches of at most batch_items; ordinals count on across batches."""
    path = tmp_path / "feed.jsonl"
    path.write_bytes(b"".join(b'{"id": "%d", "A": 1}\n' % i for i in range(7)))
    batches = [batch async for batch in JsonlSource(path, DEFAULTS, batch_items=3).read(None)]
    assert [len(batch) for batch in batches] == [3, 3, 1]
    assert [position_of(item)[0] for batch in batches for item in batch] == list(range(7))


@pytest.mark.parametrize("offset", [5, 1000])
async def test_checkpoint_of_this_file_off_a_line_start_is_fatal(
    tmp_path: Path, offset: int
) -> None:
    """A checkpoint with this file's fingerprint inside a line or past its end stops the run."""
    source = feed(tmp_path, b'{"id": "1", "A": 1}\n{"id": "2", "A": 2}\n')
    generation = this_generation(source.path)
    with pytest.raises(FatalError, match=r"not a line start.*cp "):
        await collect(source, Checkpoint(offset, 1, generation))


@pytest.mark.parametrize("offset", [5, 1000])
async def test_old_checkpoint_off_a_line_start_reads_a_new_file(
    tmp_path: Path, offset: int
) -> None:
    """A checkpoint without fingerprint (an older journal) that fits no line: a new file."""
    source = feed(tmp_path, b'{"id": "1", "A": 1}\n{"id": "2", "A": 2}\n')
    with capture_logs() as logs:
        items = await collect(source, Checkpoint(resume_after=offset, display=1))
    assert [item.record_id for item in items if isinstance(item, Change)] == ["1", "2"]
    assert [log["event"] for log in logs] == ["source.new_file"]


def this_generation(path: Path) -> str:
    """The fingerprint of the file at `path` now."""
    with path.open("rb") as handle:
        return fingerprint(handle.fileno())


async def test_missing_feed_is_config_error(tmp_path: Path) -> None:
    """A feed file that does not exist is a ConfigError naming it."""
    source = JsonlSource(tmp_path / "absent.jsonl", DEFAULTS)
    with pytest.raises(ConfigError, match=r"absent\.jsonl: cannot open feed"):
        await collect(source)


async def test_stopping_early_closes_the_file(tmp_path: Path) -> None:
    """Closing the iterator after one batch releases the file (no ResourceWarning)."""
    path = tmp_path / "feed.jsonl"
    path.write_bytes(b"".join(b'{"id": "%d", "A": 1}\n' % i for i in range(10)))
    source = JsonlSource(path, DEFAULTS, batch_items=2)
    async with contextlib.aclosing(source.read(None)) as batches:
        async for batch in batches:
            assert len(batch) == 2
            break


def test_estimate_total_counts_remaining_lines(tmp_path: Path) -> None:
    """The estimate is exact for a small file and shrinks after a checkpoint."""
    lines = [b'{"id": "%d", "A": 1}\n' % i for i in range(100)]
    source = feed(tmp_path, b"".join(lines))
    assert source.estimate_total(None) == 100
    offset = sum(len(line) for line in lines[:40])
    assert source.estimate_total(Checkpoint(resume_after=offset, display=40)) == 60
    assert JsonlSource(tmp_path / "absent", DEFAULTS).estimate_total(None) is None


def test_estimate_total_extrapolates_from_a_sample(tmp_path: Path) -> None:
    """For a file larger than the sample, the estimate is within ten percent."""
    lines = [b'{"id": "%d", "Company": "Acme %d"}\n' % (i, i) for i in range(20_000)]
    source = feed(tmp_path, b"".join(lines))
    estimate = source.estimate_total(None)
    assert estimate is not None
    assert abs(estimate - 20_000) < 2_000


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text("abcé$_ 0", max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text("abc_$", max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
_LINES = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"id": st.text("0123456789", max_size=4)},
            optional={"Company": _JSON_VALUES, "record": _JSON_VALUES, "$x": _JSON_VALUES},
        ),
        st.dictionaries(st.sampled_from(["id", "Email", "record", "module"]), _JSON_VALUES),
        _JSON_VALUES,
    ).map(orjson.dumps)
    | st.sampled_from([b"{oops", b"   ", b"\xff\xfe", b""]),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(lines=_LINES)
def test_the_reader_shortcut_agrees_with_from_json(lines: list[bytes]) -> None:
    """Whatever the line, the reader gives what `from_json` (or the bad-input path) gives."""
    with tempfile.TemporaryDirectory() as folder:
        source = JsonlSource(Path(folder) / "feed.jsonl", DEFAULTS)
        source.path.write_bytes(b"".join(line + b"\n" for line in lines))
        items = asyncio.run(collect(source))
        generation = this_generation(source.path)
    expected: list[Item] = []
    offset = 0
    for number, line in enumerate(lines, start=1):
        offset += len(line) + 1
        if not line.strip():
            continue
        position = SourcePosition(len(expected), offset, number, generation)
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            expected.append(source._parse(line + b"\n", position))
            continue
        expected.append(from_json(obj, position, DEFAULTS))
    assert items == expected

"""The JSONL reader's block-wise lines are the file's lines, whatever the block size."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from syncengine.sources.line_chunks import line_blocks


def expected_lines(data: bytes, max_line_bytes: int) -> list[bytes | int]:
    """Complete lines without `\\n`, an oversized one as its length with `\\n`."""
    *complete, _unfinished = data.split(b"\n")
    return [line if len(line) + 1 <= max_line_bytes else len(line) + 1 for line in complete]


@given(
    st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"x")), max_size=20),
    st.booleans(),
    st.integers(1, 9),
    st.integers(2, 14),
)
def test_lines_come_whole_and_in_order_for_any_block_size(
    lines: list[bytes], finished: bool, block_bytes: int, max_line_bytes: int
) -> None:
    data = b"\n".join(lines) + (b"\n" if finished else b"")
    blocks = line_blocks(
        io.BytesIO(data), Path("f.jsonl"), 0, max_line_bytes, block_bytes=block_bytes
    )
    got = [line for block in blocks for line in block]
    assert got == expected_lines(data, max_line_bytes)


def test_an_oversized_line_is_never_held_whole() -> None:
    data = b"a\n" + b"x" * 50 + b"\nb\n"
    blocks = list(line_blocks(io.BytesIO(data), Path("f.jsonl"), 0, 10, block_bytes=4))
    assert [line for block in blocks for line in block] == [b"a", 51, b"b"]
    assert all(len(line) < 10 for block in blocks for line in block if isinstance(line, bytes))

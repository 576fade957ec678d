"""Tests for a file feed's generation (sources/generation.py) and the high water across files."""

from __future__ import annotations

from pathlib import Path

from syncengine.engine.recorder import Recorder
from syncengine.engine.watermark import Watermark
from syncengine.model import Checkpoint, SourcePosition
from syncengine.sources.generation import fingerprint, is_generation, row_source


def generation_of(path: Path) -> str:
    with path.open("rb") as handle:
        return fingerprint(handle.fileno())


def matches(path: Path, generation: str) -> bool:
    with path.open("rb") as handle:
        return is_generation(handle.fileno(), generation)


def test_appending_keeps_the_generation(tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b'{"id": "1"}\n')
    generation = generation_of(feed)
    with feed.open("ab") as out:
        out.write(b'{"id": "2"}\n' * 10_000)
    assert matches(feed, generation)
    assert generation_of(feed) != generation  # a fingerprint taken now covers more


def test_rotation_truncation_and_rewrite_make_another_file(tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b'{"id": "1"}\n')
    generation = generation_of(feed)
    feed.rename(tmp_path / "feed.jsonl.1")
    feed.write_bytes(b'{"id": "1"}\n')  # the same bytes, another inode
    assert not matches(feed, generation)
    generation = generation_of(feed)
    feed.write_bytes(b"")  # truncated in place
    assert not matches(feed, generation)
    feed.write_bytes(b'{"id": "9"}\n')  # rewritten in place, other first bytes
    assert not matches(feed, generation)
    assert not matches(feed, "v0:something:else:entirely")


def test_rows_of_another_file_name_another_source() -> None:
    assert row_source("jsonl:/f", None) == "jsonl:/f"
    assert row_source("jsonl:/f", "v1:1:2:ab") != row_source("jsonl:/f", "v1:3:2:ab")


def test_the_high_water_follows_a_rotation_and_a_late_old_outcome_keeps_it() -> None:
    """After a followed rotation the high water is in the new file, whatever the offsets."""
    old = Checkpoint(10_000, 200, "old")
    recorder = Recorder(None, source_id="jsonl:/f", watermark=Watermark(None), high_water=old)  # type: ignore[arg-type]
    recorder._raise_high_water(SourcePosition(0, 9_000, 180, "old"))
    assert recorder._high == old  # re-read below the journal's high water
    recorder._raise_high_water(SourcePosition(5, 50, 1, "new"))
    assert recorder._high == Checkpoint(50, 1, "new")
    recorder._raise_high_water(SourcePosition(3, 10_500, 210, "old"))  # a late outcome
    assert recorder._high == Checkpoint(50, 1, "new")
    recorder._raise_high_water(SourcePosition(6, 100, 2, "new"))
    assert recorder._high == Checkpoint(100, 2, "new")

"""Admission: every item read is counted and noted before it goes where it belongs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from syncengine.engine.admission import Admission
from syncengine.engine.chunker import Chunker
from syncengine.engine.recorder import Recorder
from syncengine.engine.replay import AlreadySettled
from syncengine.engine.watermark import Watermark
from syncengine.journal import Journal
from syncengine.model import BadInput, Change, Operation, SourcePosition


def _pos(ordinal: int) -> SourcePosition:
    return SourcePosition(ordinal, (ordinal + 1) * 10, ordinal + 1)


def _change(ordinal: int | None, record_id: str | None) -> Change:
    record: dict[str, object] = {"Last_Name": "x"}
    if record_id is not None:
        record["id"] = record_id
    return Change(
        "Leads",
        Operation.UPDATE if record_id else Operation.INSERT,
        record,
        None if record_id is None else f"Leads:{record_id}",
        [] if ordinal is None else [_pos(ordinal)],
    )


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    async with await Journal.open(tmp_path / "j.db", holder="test") as opened:
        yield opened


async def test_a_mixed_batch_is_counted_noted_and_routed(journal: Journal) -> None:
    """Plain, bad, settled, keyless and re-driven items each end where they belong."""
    watermark = Watermark(None)
    recorder = Recorder(journal, source_id="feed", watermark=watermark)
    chunker = Chunker()
    redriving = {"Leads:9"}
    admission = Admission(
        watermark=watermark,
        recorder=recorder,
        chunker=chunker,
        redriving=redriving,
        source_id="feed",
        module="Leads",
    )
    keyless = _change(3, None)
    admission.take(
        [
            _change(0, "1"),
            _change(1, "1"),  # merges into the first: same record, still buffered
            BadInput(_pos(2), "bad JSON at column 1: x"),
            keyless,
            AlreadySettled([_pos(4)]),
            _change(5, "2"),
            _change(None, "9"),  # re-driven from the journal: no feed position
        ]
    )
    counts = recorder.counts
    assert (counts.read, counts.bad_input, counts.replay_skipped, counts.redriven) == (6, 1, 1, 1)
    assert watermark.next_ordinal == 6
    assert keyless.key == "@feed#4"
    assert redriving == set()
    assert chunker.buffered == 4  # Leads:1 (merged), the keyless insert, Leads:2, Leads:9
    assert recorder.backlog == 1  # the bad line's failed row, waiting for the flush


async def test_a_gap_in_the_feed_is_refused(journal: Journal) -> None:
    """Positions must arrive in order; a skipped one would let the checkpoint pass it."""
    watermark = Watermark(None)
    recorder = Recorder(journal, source_id="feed", watermark=watermark)
    admission = Admission(
        watermark=watermark,
        recorder=recorder,
        chunker=Chunker(),
        redriving=set(),
        source_id="feed",
        module="Leads",
    )
    with pytest.raises(ValueError, match="expected 0"):
        admission.take([_change(1, "1")])

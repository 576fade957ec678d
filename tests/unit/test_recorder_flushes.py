"""The recorder's group commits: flushes on their way count as not durable."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from syncengine.engine.recorder import Recorder
from syncengine.engine.watermark import Watermark
from syncengine.errors import FatalError
from syncengine.journal import Journal
from syncengine.model import Change, Checkpoint, Operation, RecordOutcome, SourcePosition, Verdict


def _changes(first: int, count: int) -> list[Change]:
    return [
        Change(
            "Leads",
            Operation.UPDATE,
            {"id": str(n), "Last_Name": "x"},
            f"Leads:{n}",
            [SourcePosition(n, (n + 1) * 10, n + 1)],
        )
        for n in range(first, first + count)
    ]


def _synced(changes: list[Change]) -> list[RecordOutcome]:
    return [RecordOutcome(Verdict.SYNCED, "SUCCESS") for _ in changes]


def _recorder(journal: Journal) -> tuple[Recorder, Watermark]:
    watermark = Watermark(None)
    return Recorder(journal, source_id="feed", watermark=watermark), watermark


def _read(recorder: Recorder, watermark: Watermark, changes: list[Change]) -> None:
    for change in changes:
        watermark.note_read(change.positions[0])
    assert recorder.synced_many(changes, _synced(changes)) == []


async def test_rows_on_their_way_stay_in_the_backlog_until_durable(tmp_path: Path) -> None:
    async with await Journal.open(tmp_path / "j.db", holder="t", commit_process=True) as journal:
        recorder, watermark = _recorder(journal)
        first, second = _changes(0, 300), _changes(300, 200)
        _read(recorder, watermark, first)
        sent_first = recorder.flush_soon()
        _read(recorder, watermark, second)
        sent_second = recorder.flush_soon()
        assert sent_first is not None
        assert sent_second is not None
        assert recorder.backlog == 500  # both sent, neither answered yet
        await sent_second
        assert sent_first.done()  # committed in the order sent
        assert recorder.backlog == 0
        assert recorder.flush_soon() is sent_second  # nothing new: the last flush stands for all
        assert await journal.checkpoint("feed") == Checkpoint(5000, 500)
        assert (await journal.counts())["synced"] == 500


async def test_after_a_failed_flush_no_checkpoint_is_ever_sent(tmp_path: Path) -> None:
    async with await Journal.open(tmp_path / "j.db", holder="t", commit_process=True) as journal:
        recorder, watermark = _recorder(journal)
        _read(recorder, watermark, _changes(0, 100))
        await recorder.flush()
        committer = journal._committer
        assert committer is not None
        os.kill(committer._process.pid, signal.SIGKILL)
        _read(recorder, watermark, _changes(100, 100))
        with pytest.raises(FatalError, match="commit process ended"):
            await recorder.flush()
        _read(recorder, watermark, _changes(200, 100))
        with pytest.raises(FatalError, match="journal writes stopped after a failure"):
            recorder.flush_soon()
        with pytest.raises(FatalError, match="journal writes stopped after a failure"):
            await recorder.flush()
        assert await journal.checkpoint("feed") == Checkpoint(1000, 100)

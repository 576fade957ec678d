"""The group commit's cadence, on real journals of both kinds."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from syncengine.engine.flusher import Flusher
from syncengine.engine.recorder import Recorder
from syncengine.engine.watermark import Watermark
from syncengine.errors import FatalError
from syncengine.journal import Journal
from syncengine.model import Change, Operation, RecordOutcome, SourcePosition, Verdict


def _sync(recorder: Recorder, watermark: Watermark, first: int, count: int) -> None:
    changes = [
        Change(
            "Leads",
            Operation.UPDATE,
            {"id": str(n), "Last_Name": "x"},
            f"Leads:{n}",
            [SourcePosition(n, n + 1, n + 1)],
        )
        for n in range(first, first + count)
    ]
    for change in changes:
        watermark.note_read(change.positions[0])
    outcomes = [RecordOutcome(Verdict.SYNCED, "SUCCESS") for _ in changes]
    assert recorder.synced_many(changes, outcomes) == []


async def test_a_wake_flushes_at_once_and_reports_durability(tmp_path: Path) -> None:
    async with await Journal.open(tmp_path / "j.db", holder="t", commit_process=True) as journal:
        watermark = Watermark(None)
        recorder = Recorder(journal, source_id="feed", watermark=watermark)
        durable = asyncio.Event()
        failures: list[BaseException] = []
        flusher = Flusher(
            recorder, interval_s=60.0, on_durable=durable.set, on_failure=failures.append
        )
        task = asyncio.create_task(flusher.run())
        _sync(recorder, watermark, 0, 50)
        flusher.wake()
        await asyncio.wait_for(durable.wait(), timeout=10)  # long before the 60 s interval
        assert (await journal.counts())["synced"] == 50
        assert recorder.backlog == 0
        flusher.close()
        await asyncio.wait_for(task, timeout=10)
        assert failures == []


async def test_a_failed_commit_is_reported_and_ends_the_loop(tmp_path: Path) -> None:
    async with await Journal.open(tmp_path / "j.db", holder="t", commit_process=True) as journal:
        watermark = Watermark(None)
        recorder = Recorder(journal, source_id="feed", watermark=watermark)
        failed = asyncio.Event()
        failures: list[BaseException] = []

        def on_failure(error: BaseException) -> None:
            failures.append(error)
            failed.set()

        flusher = Flusher(recorder, interval_s=0.01, on_durable=lambda: None, on_failure=on_failure)
        task = asyncio.create_task(flusher.run())
        committer = journal._committer
        assert committer is not None
        os.kill(committer._process.pid, signal.SIGKILL)
        _sync(recorder, watermark, 0, 10)
        await asyncio.wait_for(failed.wait(), timeout=10)
        await asyncio.wait_for(task, timeout=10)  # the loop ended by itself
        assert isinstance(failures[0], FatalError)
        assert "commit process ended" in str(failures[0])
        assert all(isinstance(error, FatalError) for error in failures)

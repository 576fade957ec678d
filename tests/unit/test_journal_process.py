"""The journal across real processes: the process lock, readers beside a run, crashes."""

from __future__ import annotations

import asyncio
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import syncengine
from syncengine.errors import JournalLockedError
from syncengine.journal import Journal

_ROOT = Path(syncengine.__file__).resolve().parent.parent

#: A process that opens the journal as `holder`; in "write" mode it then keeps
#: applying batches of 200 failed rows, each with checkpoint = its batch number.
#: It exits by itself after a minute, should a test run die before killing it.
_HOLDER = """
import asyncio, sys
from pathlib import Path
from syncengine.journal import Journal, RecordUpdate
from syncengine.model import RecordState
from syncengine.model import Checkpoint

def row(n):
    return RecordUpdate(f"k{n}", "Leads", str(n), None, RecordState.FAILED, 1, "C",
                        "m", None, None, b"{}", n)

async def main(path, holder, mode):
    journal = await Journal.open(Path(path), holder=holder, commit_process=mode == "write")
    batch = 0
    deadline = asyncio.get_running_loop().time() + 60  # never outlive a killed test run
    while asyncio.get_running_loop().time() < deadline:
        if mode == "write":
            rows = [row(batch * 200 + i) for i in range(200)]
            await journal.submit(rows, {"feed": Checkpoint(batch, batch)})
            batch += 1
        if batch <= 1:
            print("ready", flush=True)
        await asyncio.sleep(0.001 if mode == "write" else 1)
    await journal.close()

asyncio.run(main(*sys.argv[1:]))
"""


class Holder:
    """A child process holding the journal lock, killed at the end of the test."""

    def __init__(self, path: Path, holder: str, mode: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(_ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(path), holder, mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            self._wait_ready(timeout_s=20.0)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, *, timeout_s: float) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        seen = b""
        deadline = time.monotonic() + timeout_s
        while b"ready\n" not in seen:
            assert time.monotonic() < deadline, f"holder never became ready: {seen!r}"
            assert self.proc.poll() is None, f"holder process died: {seen!r}"
            if select.select([fd], [], [], 0.1)[0]:
                seen += os.read(fd, 65536)

    def kill(self) -> None:
        """SIGKILL: no clean-up code of the child runs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    """Child processes started by a test; all killed afterwards."""
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.kill()


async def test_second_holder_is_refused_naming_the_first(
    tmp_path: Path, holders: list[Holder]
) -> None:
    """While a process holds the journal, another holder gets JournalLockedError naming it."""
    path = tmp_path / "j.db"
    holders.append(Holder(path, "syncengine run -c cron.toml", "hold"))
    with pytest.raises(JournalLockedError) as caught:
        await Journal.open(path, holder="syncengine migrate -c cron.toml")
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert "syncengine run -c cron.toml" in message
    assert f"pid {holders[0].proc.pid}" in message


async def test_lock_is_free_after_the_holder_is_killed(
    tmp_path: Path, holders: list[Holder]
) -> None:
    """SIGKILL of the holder releases the lock: the next run opens without any clean-up."""
    path = tmp_path / "j.db"
    holders.append(Holder(path, "syncengine run", "write"))
    holders[0].kill()
    async with await Journal.open(path, holder="syncengine run") as journal:
        assert (await journal.counts())["failed"] > 0
    lock_text = (tmp_path / "j.db.lock").read_text()
    assert lock_text == ""  # a clean close clears the holder line


async def test_readers_work_beside_a_writing_holder(tmp_path: Path, holders: list[Holder]) -> None:
    """status, failures and retry open without the lock and read and write during a run."""
    path = tmp_path / "j.db"
    holders.append(Holder(path, "syncengine run", "write"))
    async with await Journal.open(path) as reader:
        first = (await reader.counts())["failed"]
        assert first > 0
        assert len(await reader.failures(limit=5)) == 5
        result = await reader.requeue_failed(ids=["0", "1", "2"], now=time.time())
        assert result.requeued == 3
        await asyncio.sleep(0.05)  # let the holder commit more batches
        assert (await reader.counts())["failed"] + 3 > first
        assert await reader.checkpoint("feed") is not None


async def test_same_process_second_holder_is_refused(tmp_path: Path) -> None:
    """Two holders inside one process exclude each other too; closing frees the lock."""
    path = tmp_path / "j.db"
    first = await Journal.open(path, holder="daemon")
    try:
        with pytest.raises(JournalLockedError, match="daemon"):
            await Journal.open(path, holder="run")
        async with await Journal.open(path) as reader:  # readers are never refused
            assert await reader.last_run() is None
    finally:
        await first.close()
    second = await Journal.open(path, holder="run")
    await second.close()


def test_kill_at_random_moments_never_splits_records_and_checkpoint(
    tmp_path: Path, holders: list[Holder]
) -> None:
    """After SIGKILL mid-writing, the journal holds exactly the batches its checkpoint covers."""
    rng = random.Random(4)
    for attempt in range(4):
        path = tmp_path / f"j{attempt}.db"
        holder = Holder(path, "syncengine run", "write")
        holders.append(holder)
        time.sleep(rng.uniform(0.0, 0.15))
        holder.kill()
        checkpoint, rows = _snapshot(path)
        assert checkpoint is not None
        # batch b writes 200 rows and checkpoint b in one transaction: rows of a
        # batch never appear without its checkpoint, nor the checkpoint without them
        assert rows == (checkpoint + 1) * 200


def _snapshot(path: Path) -> tuple[int | None, int]:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT display FROM checkpoints WHERE source_id = 'feed'").fetchone()
        (rows,) = conn.execute("SELECT count(*) FROM records").fetchone()
    finally:
        conn.close()
    return (None if row is None else row[0]), rows

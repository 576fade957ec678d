"""The group commit's own process: its protocol, its failures, and its end."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from syncengine.errors import FatalError
from syncengine.journal import Journal, RecordUpdate, SyncedRow
from syncengine.journal.commit_worker import OK, READY, frame, open_journal, serve
from syncengine.journal.group_commit import (
    CommitProcess,
    commit_message,
    worker_environment,
    worker_import_folders,
)
from syncengine.model import Checkpoint, Operation, RecordState


def _synced(n: int) -> SyncedRow:
    return (f"Leads:{n}", "Leads", f"crm-{n}", "update", 1, n + 1, "feed")


def _failed(n: int, state: str = "failed") -> RecordUpdate:
    return RecordUpdate(
        key=f"Leads:{n}",
        module="Leads",
        record_id=str(n),
        operation=Operation.UPDATE,
        state=RecordState(state) if state != "lost" else _Lost(),  # type: ignore[arg-type]
        attempts=2,
        code="INVALID_DATA",
        message="bad value",
        details={"api_name": "Email"},
        next_attempt_at=100.0 if state == "pending" else None,
        payload=b'{"id":"1"}',
        position=n + 1,
    )


class _Lost:
    """A state the schema's CHECK constraint refuses."""

    value = "lost"


def _rows(path: Path) -> list[tuple[Any, ...]]:
    """Every record row, without its write time."""
    db = sqlite3.connect(path)
    try:
        return db.execute(
            "SELECT key, module, record_id, operation, state, attempts, code, message, details,"
            " next_attempt_at, payload, position, source FROM records ORDER BY key"
        ).fetchall()
    finally:
        db.close()


async def _prepared(path: Path) -> None:
    """A journal file with its schema, as a pass's session connection leaves it."""
    async with await Journal.open(path):
        pass


async def test_worker_commits_whole_frames_and_never_a_cut_one(tmp_path: Path) -> None:
    """A frame cut short (its sender died mid-write) is not committed; earlier ones are."""
    path = tmp_path / "j.db"
    await _prepared(path)
    whole = commit_message([_synced(1)], {"feed": Checkpoint(10, 1)}, {}, 5.0)
    cut = frame(commit_message([_synced(2)], {"feed": Checkpoint(20, 2)}, {}, 6.0))[:-3]
    answers = io.BytesIO()
    db = open_journal(str(path))
    try:
        serve(db, io.BytesIO(frame(whole) + cut), answers)
    finally:
        db.close()
    assert answers.getvalue() == READY + OK
    assert [row[0] for row in _rows(path)] == ["Leads:1"]
    async with await Journal.open(path) as journal:
        assert await journal.checkpoint("feed") == Checkpoint(10, 1)


async def test_worker_refuses_a_bad_message_whole_and_every_later_one(tmp_path: Path) -> None:
    """One bad row rolls back its whole message, checkpoint included, and no later
    message commits: it was sent counting on the failed rows being durable."""
    path = tmp_path / "j.db"
    await _prepared(path)
    first = commit_message([_synced(0)], {"feed": Checkpoint(5, 0)}, {}, 4.0)
    bad = commit_message([_synced(1), _failed(2, "lost")], {"feed": Checkpoint(10, 1)}, {}, 5.0)
    later = commit_message([_synced(3)], {"feed": Checkpoint(30, 3)}, {}, 6.0)
    answers = io.BytesIO()
    db = open_journal(str(path))
    try:
        serve(db, io.BytesIO(frame(first) + frame(bad) + frame(later)), answers)
    finally:
        db.close()
    lines = answers.getvalue().splitlines(keepends=True)
    assert lines[:2] == [READY, OK]
    assert lines[2].startswith(b"error ")
    assert b"CHECK constraint" in lines[2]
    assert lines[3].startswith(b"error not committed: an earlier commit failed: CHECK")
    assert [row[0] for row in _rows(path)] == ["Leads:0"]
    async with await Journal.open(path) as journal:
        assert await journal.checkpoint("feed") == Checkpoint(5, 0)


async def test_pipelined_commits_are_made_in_order_and_none_after_a_failure(
    tmp_path: Path,
) -> None:
    """Several messages on their way at once: each future tells its own fate."""
    path = tmp_path / "j.db"
    async with await Journal.open(path, holder="t", commit_process=True) as journal:
        sent = [
            journal.submit([_synced(n) for n in range(k * 100, k * 100 + 100)]) for k in range(5)
        ]
        sent.append(journal.submit([_failed(900, "lost")], {"feed": Checkpoint(9, 9)}))
        sent.append(journal.submit([_synced(1000)], {"feed": Checkpoint(10, 10)}))
        outcomes = await asyncio.gather(*sent, return_exceptions=True)
        assert outcomes[:5] == [None] * 5
        assert all(isinstance(outcome, FatalError) for outcome in outcomes[5:])
        assert "CHECK constraint" in str(outcomes[6])
        assert (await journal.counts())["synced"] == 500
        assert await journal.checkpoint("feed") is None
        with pytest.raises(FatalError):
            await journal.submit([_synced(2000)])


async def test_mixed_batches_are_written_as_sent(tmp_path: Path) -> None:
    """Runs of synced and other rows, a key repeated across them: each row as its state
    keeps it, the later update of a key winning, with the checkpoint and high water."""
    batches: list[list[RecordUpdate | SyncedRow]] = [
        [_synced(n) for n in range(700)] + [_failed(5), _failed(800)] + [_synced(5)],
        [_failed(3, "pending"), _synced(900)],
    ]
    path = tmp_path / "j.db"
    async with await Journal.open(path, holder="t", commit_process=True) as journal:
        for batch in batches:
            await journal.submit(batch, {"feed": Checkpoint(42, 7)}, {"feed": Checkpoint(50, 8)})
        marks = (await journal.checkpoint("feed"), await journal.high_water("feed"))
    rows = {row[0]: row[1:] for row in _rows(path)}
    assert len(rows) == 702
    assert marks == (Checkpoint(42, 7), Checkpoint(50, 8))
    synced = ("Leads", "crm-5", "update", "synced", 1, "SUCCESS", None, None, None, None, 6)
    assert rows["Leads:5"] == (*synced, "feed")
    assert rows["Leads:800"] == (
        "Leads", "800", "update", "failed", 2, "INVALID_DATA", "bad value",
        '{"api_name":"Email"}', None, b'{"id":"1"}', 801, None,
    )  # fmt: skip
    assert rows["Leads:3"][3:4] + rows["Leads:3"][8:10] == ("pending", 100.0, b'{"id":"1"}')


async def test_refused_commit_is_fatal_names_the_journal_and_leaves_the_file_usable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    async with await Journal.open(path, holder="t", commit_process=True) as journal:
        with pytest.raises(FatalError) as refused:
            await journal.submit([_synced(1), _failed(2, "lost")], {"feed": Checkpoint(1, 1)})
        message = str(refused.value)
        assert str(path) in message
        assert "\n" not in message
        assert await journal.checkpoint("feed") is None
    async with await Journal.open(path, holder="t", commit_process=True) as journal:
        await journal.submit([_synced(3)], {"feed": Checkpoint(3, 3)})
        assert await journal.checkpoint("feed") == Checkpoint(3, 3)


async def test_a_killed_worker_makes_every_later_commit_fatal(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with await Journal.open(path, holder="t", commit_process=True) as journal:
        await journal.submit([_synced(1)])
        committer = journal._committer
        assert committer is not None
        os.kill(committer._process.pid, signal.SIGKILL)
        for _ in range(2):
            with pytest.raises(FatalError, match=r"commit process ended \(exit status -9"):
                await journal.submit([_synced(2)])
    assert [row[0] for row in _rows(path)] == ["Leads:1"]


async def test_the_worker_outlives_signals_meant_for_the_whole_group(tmp_path: Path) -> None:
    """Ctrl-C or a service manager's SIGTERM reach every process of the group; the pass
    still has outcomes to commit while it stops, so the worker leaves stopping to it."""
    path = tmp_path / "j.db"
    async with await Journal.open(path, holder="t", commit_process=True) as journal:
        await journal.submit([_synced(1)])
        committer = journal._committer
        assert committer is not None
        for signum in (signal.SIGINT, signal.SIGTERM):
            os.kill(committer._process.pid, signum)
        await asyncio.sleep(0.2)
        await journal.submit([_synced(2)])
        assert committer._process.returncode is None
    assert committer._process.returncode == 0
    assert [row[0] for row in _rows(path)] == ["Leads:1", "Leads:2"]


async def test_a_commit_whose_waiter_is_cancelled_is_committed_whole_and_the_next_waits_for_it(
    tmp_path: Path,
) -> None:
    """The answer of a commit whose caller gave up is read before the next message goes."""
    path = tmp_path / "j.db"
    async with await Journal.open(path, holder="t", commit_process=True) as journal:
        task = asyncio.ensure_future(
            asyncio.shield(
                journal.submit([_synced(n) for n in range(30_000)], {"feed": Checkpoint(1, 1)})
            )
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await journal.submit([_synced(99_999)], {"feed": Checkpoint(2, 2)})
        assert await journal.checkpoint("feed") == Checkpoint(2, 2)
        assert (await journal.counts())["synced"] == 30_001


async def test_close_ends_the_worker(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "j.db", holder="t", commit_process=True)
    await journal.submit([_synced(1)])
    committer = journal._committer
    assert committer is not None
    await journal.close()
    assert committer._process.returncode == 0
    await journal.close()  # twice is harmless


_PARENT = """
import asyncio, sys
from pathlib import Path
from syncengine.journal import Journal

async def main():
    journal = await Journal.open(Path(sys.argv[1]), holder="t", commit_process=True)
    await journal.submit([("Leads:1", "Leads", "1", "update", 1, 1, "feed")])
    print("worker", journal._committer._process.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def _gone(pid: int) -> bool:
    """True when `pid` has ended (a zombie waiting for its reaper counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_worker_dies_with_its_parent(tmp_path: Path) -> None:
    """SIGKILL of the pass leaves no writer behind to touch the journal later."""
    with subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path / "j.db")],
        stdout=subprocess.PIPE,
        text=True,
    ) as parent:
        assert parent.stdout is not None
        line = ""
        while not line.startswith("worker "):
            line = parent.stdout.readline()
            assert line, "the parent ended before it started its worker"
        worker_pid = int(line.split()[1])
        assert not _gone(worker_pid)
        parent.kill()
    deadline = time.monotonic() + 10
    while not _gone(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(worker_pid)


_LOUD_WORKER = """
import sys
sys.stderr.write("noise " * 40_000 + "\\n")  # far more than a pipe holds
sys.stderr.write("boom: the last words\\n")
sys.stderr.flush()
sys.stdout.write("ready\\n")
sys.stdout.flush()
sys.stdin.buffer.read(4)
sys.exit(7)
"""


async def test_a_worker_is_never_blocked_by_its_own_standard_error(tmp_path: Path) -> None:
    """Whatever it writes there is drained; its last line explains its end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _LOUD_WORKER,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    committer = CommitProcess(process, tmp_path / "j.db")
    with pytest.raises(FatalError, match=r"exit status 7: boom: the last words"):
        await asyncio.wait_for(committer.commit(commit_message([_synced(1)], {}, {}, 1.0)), 10)
    await committer.close()


async def test_a_stopped_worker_fails_its_commit_at_the_deadline_and_is_killed(
    tmp_path: Path,
) -> None:
    """A worker that stops answering (SIGSTOP, a hung disk) does not make the pass wait
    forever: past half the deadline it is reported stalled, at the deadline its commit
    and every later one fail naming the journal, and the worker is gone."""
    path = tmp_path / "j.db"
    async with await Journal.open(
        path, holder="t", commit_process=True, commit_timeout_s=1.0
    ) as journal:
        await journal.submit([_synced(1)], {"feed": Checkpoint(1, 1)})
        committer = journal._committer
        assert committer is not None
        assert journal.commit_stall() is None
        os.kill(committer._process.pid, signal.SIGSTOP)
        started = time.monotonic()
        waiting = journal.submit([_synced(2)], {"feed": Checkpoint(2, 2)})
        await asyncio.sleep(0.6)
        stall = journal.commit_stall()
        assert stall is not None
        assert str(path) in stall
        assert "waited" in stall
        with pytest.raises(FatalError, match=r"not made within 1 s \(journal.commit_timeout_s\)"):
            await asyncio.wait_for(waiting, 10)
        assert time.monotonic() - started < 5
        assert await asyncio.wait_for(committer._process.wait(), 10) == -signal.SIGKILL
        with pytest.raises(FatalError, match=str(path)):
            await journal.submit([_synced(3)])
        assert journal.commit_stall() is not None
        assert await journal.checkpoint("feed") == Checkpoint(1, 1)
    assert [row[0] for row in _rows(path)] == ["Leads:1"]


async def test_a_slow_run_of_commits_that_keeps_answering_meets_no_deadline(
    tmp_path: Path,
) -> None:
    """The deadline runs from the worker's last answer, not from when a commit was sent:
    a long queue of commits that are each made in time never trips it."""
    path = tmp_path / "j.db"
    async with await Journal.open(
        path, holder="t", commit_process=True, commit_timeout_s=1.0
    ) as journal:
        sent = [
            journal.submit([_synced(n) for n in range(k * 4000, k * 4000 + 4000)])
            for k in range(30)
        ]
        await asyncio.gather(*sent)
        assert (await journal.counts())["synced"] == 120_000


def test_the_worker_inherits_no_secret_and_no_working_directory() -> None:
    environ = {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": "/var/tmp",
        "ZOHO_CLIENT_SECRET": "s3cret",
        "PYTHONPATH": "/planted",
        "HOME": "/home/u",
    }
    assert worker_environment(environ) == {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": "/var/tmp",
    }
    folders = ["", "/work/here", "/usr/lib/python3.11", "relative", "/work/here/../here"]
    assert worker_import_folders(folders, cwd="/work/here") == ["/usr/lib/python3.11"]

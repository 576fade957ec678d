"""The group commit's own process: reads commit messages, writes each in one transaction.

Why a process: the pass's event loop is busy with every record, and Python's
sqlite3 takes the GIL to bind parameters and hands it back around each step,
so a group commit run on a thread of the same interpreter keeps waiting for
the loop to let go of the GIL, and the loop for it. Measured on the overhead
benchmark: a commit of about 1,000 rows took some 20 ms as the loop saw it,
enough to hold senders back under invariant 6's bound on unjournaled records,
and the pass ran at three quarters of the rate it reached with journal writes
taking no time at all. This interpreter has its own GIL and a core the loop
does not use.

The protocol, on the worker's standard input and output:

- in: frames of a 4-byte big-endian length and a JSON message
  `[now, runs, checkpoints, high_water]`, where `runs` is
  `writes.row_runs` (a flag and its rows) and the last two are lists of
  `[source_id, resume_after, display, updated_at, generation]`;
- out: `ready` once the journal is open, then one line per message, `ok` when
  its transaction committed or `error <reason>` when it rolled back.

A message is committed whole or not at all, in the order received; after one
fails, none is committed any more (the sender may have sent more before it
read the failure, and their checkpoints count on the failed rows). Standard input ending (the
parent closed it, or died) ends the worker; a frame cut short by a parent's
death is never committed. On Linux the worker also asks the kernel to kill it
when its parent dies, so it never writes after the process that sent it work.

Started isolated by `group_commit` (`python -I`, see its `_WORKER_BOOT`), whose
`main` gets `JOURNAL PARENT_PID`, or for a PostgreSQL journal
`postgresql SCHEMA PARENT_PID` with the DSN as the first frame (never on
the command line, which other users can read; see `pg_commit_worker`); it
imports only what a commit needs (see `syncengine.journal`'s lazy names).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

import orjson

from syncengine.journal.writes import UPSERT_CHECKPOINT, UPSERT_HIGH_WATER, statements_for

#: The first argument of a worker for a PostgreSQL journal (its DSN is the first frame).
POSTGRES_MARK = "postgresql"

#: The length prefix of a frame.
HEADER_BYTES = 4
READY = b"ready\n"
OK = b"ok\n"
ERROR_PREFIX = b"error "

#: As for the session connection: another writer's transactions last milliseconds.
BUSY_TIMEOUT_S = 10.0

_PR_SET_PDEATHSIG = 1


def frame(message: bytes) -> bytes:
    """`message` with its length prefix."""
    return len(message).to_bytes(HEADER_BYTES, "big") + message


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next message, or None when the stream ends (a cut frame included)."""
    header = _read_exactly(stream, HEADER_BYTES)
    if header is None:
        return None
    return _read_exactly(stream, int.from_bytes(header, "big"))


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    while data is not None and 0 < len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            return None
        data += more
    return data if data is not None and len(data) == size else None


def commit(db: sqlite3.Connection, message: bytes) -> None:
    """Writes one message in one transaction; rolls back and re-raises on any error."""
    now, runs, checkpoints, high_water = orjson.loads(message)
    statements = statements_for([(bool(synced), rows) for synced, rows in runs], now)
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement, params in statements:
            db.execute(statement, params)
        if checkpoints:
            db.executemany(UPSERT_CHECKPOINT, checkpoints)
        if high_water:
            db.executemany(UPSERT_HIGH_WATER, high_water)
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


def serve(db: sqlite3.Connection, requests: BinaryIO, answers: BinaryIO) -> None:
    """Commits messages until `requests` ends, answering each."""
    serve_with(
        lambda message: commit(db, message),
        (sqlite3.Error, orjson.JSONDecodeError, ValueError, TypeError),
        requests,
        answers,
    )


def serve_with(
    commit_one: Callable[[bytes], None],
    errors: tuple[type[BaseException], ...],
    requests: BinaryIO,
    answers: BinaryIO,
) -> None:
    """Commits messages with `commit_one` until `requests` ends, answering each.

    A failure among `errors` is answered (and ends all later commits); any
    other ends the worker.
    """
    answers.write(READY)
    answers.flush()
    failure: bytes | None = None
    while (message := read_frame(requests)) is not None:
        if failure is not None:
            # Later messages were sent before the sender learnt of the failure;
            # their checkpoints assume the failed rows are durable.
            answers.write(ERROR_PREFIX + b"not committed: an earlier commit failed: " + failure)
            answers.flush()
            continue
        try:
            commit_one(message)
        except errors as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            failure = reason.encode(errors="replace") + b"\n"
            answers.write(ERROR_PREFIX + failure)
        else:
            answers.write(OK)
        answers.flush()


def open_journal(path: str) -> sqlite3.Connection:
    """The worker's connection: the file is already prepared (WAL, schema) by the parent."""
    db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
    db.execute("PRAGMA synchronous = NORMAL")  # as the session connection; see store._connect
    return db


def _die_with(parent_pid: int) -> None:
    """Linux: be killed when the parent dies; elsewhere standard input's end suffices."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(0)


def _ignore_stop_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main(argv: list[str]) -> int:
    """Entry point of the worker process; see the module docstring."""
    if argv[0] == POSTGRES_MARK:  # a PostgreSQL journal: `postgresql SCHEMA PARENT_PID`
        _die_with(int(argv[2]))
        _ignore_stop_signals()
        from syncengine.journal.pg_commit_worker import serve_postgres

        return serve_postgres(argv[1], sys.stdin.buffer, sys.stdout.buffer)
    path, parent_pid = argv[0], int(argv[1])
    _die_with(parent_pid)
    # A terminal's Ctrl-C or a service manager's SIGTERM reaches the whole
    # group; the parent still has outcomes to commit while it stops, and it
    # ends this process by closing standard input.
    _ignore_stop_signals()
    answers: Any = sys.stdout.buffer
    try:
        db = open_journal(path)
    except sqlite3.Error as exc:
        answers.write(ERROR_PREFIX + " ".join(str(exc).split()).encode() + b"\n")
        answers.flush()
        return 1
    try:
        serve(db, sys.stdin.buffer, answers)
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The pass's end of the commit worker: starts it, sends group commits, reads their answers.

See `commit_worker` for why the group commit has its own process and for the
protocol. A commit counts as made only once the worker said `ok`, that is
once the transaction is in the journal, so the callers' invariant 1
reasoning is the same as for a commit on the session connection. Several
commits may be in the pipe at once (`send`), which keeps the time a row
waits to become durable close to one commit's, not two.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

import orjson

import syncengine
from syncengine.errors import FatalError
from syncengine.journal.commit_worker import ERROR_PREFIX, OK, POSTGRES_MARK, READY, frame
from syncengine.journal.records import RecordUpdate, SyncedRow
from syncengine.journal.writes import row_runs
from syncengine.model import Checkpoint

#: How long a group commit may wait for the worker's answer once it is the
#: worker's to make (`[journal] commit_timeout_s`): far above a healthy
#: commit's milliseconds, so only a stalled disk or a stopped worker meets it.
DEFAULT_COMMIT_TIMEOUT_S = 60.0

#: How long the worker may take to open the journal (at least; the commit
#: deadline when longer), and to finish after its input ends.
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 15.0
_KILL_GRACE_S = 2.0

#: Where `syncengine` is imported from here, so the worker imports the same code.
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(syncengine.__file__)))

#: The worker's start: `-I` keeps the working directory, the user's site
#: folder and every PYTHON* variable off its import path, so nothing planted
#: beside the user's files runs in it; the package comes from where this
#: process imported it (the first argument) and its dependencies from this
#: interpreter's own folders and the ones after it (see `worker_import_folders`).
_WORKER_BOOT = (
    "import sys; a = sys.argv; n = int(a[2]); sys.path[:0] = [a[1]]; "
    "sys.path.extend(a[3 : 3 + n]); del a[1 : 3 + n]; "
    "from syncengine.journal.commit_worker import main; sys.exit(main(a[1:]))"
)

#: What the worker may inherit of the environment: what an interpreter needs
#: to run and name files. Nothing else (the CRM's secrets above all).
_WORKER_ENV_NAMES = frozenset({"PATH", "LANG", "LANGUAGE", "TMPDIR", "TZ"})


def worker_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of `environ` a commit worker gets: locale, PATH, temporary folder."""
    return {
        name: value
        for name, value in environ.items()
        if name in _WORKER_ENV_NAMES or name.startswith("LC_")
    }


def worker_import_folders(path: Sequence[str], *, cwd: str) -> list[str]:
    """The absolute folders of this process's import path, bar the working directory.

    A dependency may live in a folder `-I` leaves out (the user's site
    folder, a PYTHONPATH entry); the working directory never counts, as it
    is where a planted package would sit.
    """
    return [
        folder
        for folder in path
        if folder and os.path.isabs(folder) and os.path.realpath(folder) != os.path.realpath(cwd)
    ]


#: The pipe size asked for (Linux allows up to 1 MiB without privileges).
_PIPE_BYTES = 1 << 20


def commit_message(
    updates: Sequence[RecordUpdate | SyncedRow],
    checkpoints: Mapping[str, Checkpoint],
    high_water: Mapping[str, Checkpoint],
    now: float,
    holds: Sequence[Sequence[object]] = (),
) -> bytes:
    """One group commit as the worker reads it (see `commit_worker`).

    `holds` (a PostgreSQL journal's, `pg_fence`) are checked by the
    commit's transaction; without any the message is as it always was.

    Raises TypeError for a value JSON cannot carry, as the session
    connection's path does for the record rows it sends as JSON.
    """
    marks = [
        (sid, cp.resume_after, cp.display, now, cp.generation) for sid, cp in checkpoints.items()
    ]
    highs = [
        (sid, cp.resume_after, cp.display, now, cp.generation) for sid, cp in high_water.items()
    ]
    if holds:
        return orjson.dumps((now, row_runs(updates, now), marks, highs, list(holds)))
    return orjson.dumps((now, row_runs(updates, now), marks, highs))


def _widen_pipe(stdin: asyncio.StreamWriter | None) -> None:
    """Linux: room in the pipe for a whole group commit, so it is written in one call.

    With the default 64 KiB, a commit of a thousand rows (about 110 KB)
    leaves the rest to later turns of a busy event loop, which measured as
    most of the commit's latency. Best effort: the pipe works either way.
    """
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if stdin is None or set_size is None:
        return
    pipe = stdin.transport.get_extra_info("pipe")
    with contextlib.suppress(OSError, AttributeError, ValueError):
        fcntl.fcntl(pipe.fileno(), set_size, _PIPE_BYTES)


class CommitProcess:
    """One running commit worker for one journal (file or PostgreSQL schema).

    Messages are sent at once, several may be on their way, and each has a
    future that completes when the worker answers for it: the worker commits
    in the order sent, and after a failure it commits nothing more (see
    `commit_worker`), so a later checkpoint is never durable without the rows
    of an earlier message.
    """

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        path: Path | str,
        *,
        timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S,
    ) -> None:
        self.path = path
        self._process = process
        self._timeout_s = timeout_s
        self._answers: deque[asyncio.Future[None]] = deque()
        self._broken: str | None = None
        self._closing = False
        self._last_complaint = ""
        self._loop = asyncio.get_running_loop()
        #: Since when the oldest unanswered commit has been the worker's to make
        #: (not before it is ready: its start has a bound of its own).
        self._head_since = 0.0
        self._ready = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._reader = asyncio.create_task(self._read_answers(), name="journal.commit_answers")
        # Read all along, so a worker that writes to standard error never blocks on a full pipe.
        self._complaints = asyncio.create_task(self._read_stderr(), name="journal.commit_stderr")

    @classmethod
    async def start(cls, path: Path, *, timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S) -> Self:
        """Starts the worker without waiting for it: messages wait in the pipe meanwhile.

        The worker's start-up (an interpreter, its imports, opening the file)
        then overlaps the pass's own (token, first requests). It runs
        isolated (see `_WORKER_BOOT`) with only `worker_environment`.
        """
        return await cls._spawn([str(path)], str(path), timeout_s=timeout_s)

    @classmethod
    async def start_postgres(
        cls, url: str, schema: str, *, where: str, timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S
    ) -> Self:
        """As `start`, for the journal in PostgreSQL schema `schema` (`pg_commit_worker`).

        The DSN goes to the worker as the first frame on its standard input,
        never on its command line; `where` (the DSN masked) names the journal
        in messages.
        """
        return await cls._spawn(
            [POSTGRES_MARK, schema], where, timeout_s=timeout_s, first=url.encode()
        )

    @classmethod
    async def _spawn(
        cls, args: list[str], name: str, *, timeout_s: float, first: bytes | None = None
    ) -> Self:
        folders = worker_import_folders(sys.path, cwd=os.getcwd())
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-c",
                _WORKER_BOOT,
                _PACKAGE_ROOT,
                str(len(folders)),
                *folders,
                *args,
                str(os.getpid()),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=worker_environment(os.environ),
            )
        except OSError as exc:
            raise FatalError(f"cannot start the commit process for journal {name}: {exc}") from exc
        _widen_pipe(process.stdin)
        if first is not None and process.stdin is not None:
            process.stdin.write(frame(first))
        return cls(process, name, timeout_s=timeout_s)

    def send(self, message: bytes) -> asyncio.Future[None]:
        """Sends one message (see `commit_message`) now.

        The future completes once the message is committed, or fails with
        FatalError when the worker refused it, refused an earlier one, or is
        gone. Its result does not depend on anyone awaiting it.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stdin = self._process.stdin
        if self._broken is not None or self._closing or stdin is None:
            future.set_exception(FatalError(self._broken or f"journal {self.path} is closed"))
            return future
        stdin.write(frame(message))
        if not self._answers:
            self._head_since = self._loop.time()
            if self._watchdog is None:
                self._watchdog = self._loop.call_at(self._head_since + self._timeout_s, self._watch)
        self._answers.append(future)
        return future

    def stall(self) -> str | None:
        """Why commits are not being made, or None while the worker keeps up.

        A commit that has waited past half its deadline counts as stalled
        already, so a liveness probe says so before the pass ends on it.
        """
        if self._broken is not None:
            return self._broken
        if not self._answers or not self._ready:
            return None
        waited = self._loop.time() - self._head_since
        if waited < self._timeout_s / 2:
            return None
        return (
            f"journal {self.path}: a group commit has waited {waited:.0f} s"
            f" (deadline {self._timeout_s:g} s, journal.commit_timeout_s)"
        )

    def _watch(self) -> None:
        """The deadline's timer: re-armed while commits are answered, fatal when none is.

        One timer for all commits, moved on only when it fires, so an answer
        costs no timer of its own.
        """
        self._watchdog = None
        if not self._answers or self._broken is not None:
            return
        now = self._loop.time()
        if not self._ready:  # its start has a bound of its own (`_START_TIMEOUT_S`)
            self._watchdog = self._loop.call_at(now + self._timeout_s, self._watch)
            return
        due = self._head_since + self._timeout_s
        if now < due:
            self._watchdog = self._loop.call_at(due, self._watch)
            return
        self._fail_all(
            f"journal {self.path}: a group commit was not made within {self._timeout_s:g} s"
            " (journal.commit_timeout_s); the commit process was stopped"
        )
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()  # a stopped process dies of SIGKILL too

    def abandon(self, reason: str) -> None:
        """Make no commit any more: fail every waiting one with `reason`, kill the worker.

        For a journal that lost its hold (a PostgreSQL session gone with its
        lock): another holder may be writing by now.
        """
        if self._broken is None:
            self._fail_all(reason)
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()

    def _fail_all(self, reason: str) -> None:
        """No commit succeeds after this: fail every message still waiting with `reason`."""
        self._broken = reason
        while self._answers:
            future = self._answers.popleft()
            if not future.done():
                future.set_exception(FatalError(reason))

    async def commit(self, message: bytes) -> None:
        """`send`, then wait until the message is committed (raises FatalError if not)."""
        await asyncio.shield(self.send(message))

    async def _read_answers(self) -> None:
        """Completes the futures of sent messages in order, as the worker answers."""
        stdout = self._process.stdout
        assert stdout is not None
        try:
            async with asyncio.timeout(max(_START_TIMEOUT_S, self._timeout_s)):
                answer = await stdout.readline()
        except TimeoutError:
            answer = b"error the commit process did not open the journal in time"
        if answer != READY:
            await self._break(answer)
            return
        self._ready = True
        self._head_since = self._loop.time()
        while True:
            answer = await stdout.readline()
            if answer != OK:
                await self._break(answer)
                return
            if self._answers:
                future = self._answers.popleft()
                self._head_since = self._loop.time()
                if not future.done():
                    future.set_result(None)

    async def _break(self, answer: bytes) -> None:
        """No commit succeeds after this one: fail every message still waiting."""
        if self._closing and not answer:
            return  # the worker ended because it was told to
        if self._broken is not None:
            return  # the deadline passed and the worker was killed: that is the reason
        reason = await self._reason(answer)
        if self._broken is None:
            self._fail_all(reason)

    async def _reason(self, answer: bytes) -> str:
        """A one-line reason for a refused message or a worker that is gone."""
        if answer.startswith(ERROR_PREFIX):
            detail = answer[len(ERROR_PREFIX) :].decode(errors="replace").strip()
            return f"journal {self.path}: the group commit failed: {detail}"
        status = await self._stop(kill=True)
        last_line = await self._last_error_line()
        ending = f"exit status {status}" + (f": {last_line}" if last_line else "")
        return f"journal {self.path}: the commit process ended ({ending})"

    async def _last_error_line(self) -> str:
        """The worker's last words on standard error (a traceback's last line, say)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await asyncio.shield(self._complaints)
        return self._last_complaint

    async def _read_stderr(self) -> None:
        stderr = self._process.stderr
        assert stderr is not None
        tail = b""
        while chunk := await stderr.read(4096):
            tail = (tail + chunk)[-2000:]
            lines = tail.decode(errors="replace").strip().splitlines()
            if lines:
                self._last_complaint = lines[-1].strip()[:500]

    async def close(self) -> None:
        """Lets the messages under way be answered, then ends the worker; safe to call twice."""
        if self._answers:
            await asyncio.gather(*self._answers, return_exceptions=True)
        self._closing = True
        stdin = self._process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
            with contextlib.suppress(ConnectionError, OSError):
                await stdin.wait_closed()
        await self._stop(kill=False)
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        with contextlib.suppress(asyncio.CancelledError):
            await self._complaints
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def _stop(self, *, kill: bool) -> int | None:
        """Waits for the worker to end; kills it if it has not within a grace period.

        `kill` asks for a short grace (the worker stopped answering and is
        most likely ending by itself). Killing only after waiting matters:
        asyncio's `kill` polls the process first, which reaps one that has
        just ended behind the child watcher's back, and its exit status is
        then lost.
        """
        process = self._process
        try:
            async with asyncio.timeout(_KILL_GRACE_S if kill else _STOP_TIMEOUT_S):
                return await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            return await process.wait()

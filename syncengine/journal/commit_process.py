"""The pass's end of the commit worker: starts it, sends group commits, reads their answers.

See `commit_worker` for why the group commit has its own process and for the
protocol. A commit returns only once the worker said `ok`, that is once the
transaction is in the journal, so the callers' invariant 1 reasoning is the
same as for a commit on the session connection. One commit is in the pipe at
a time: the next is sent when the previous one is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

import orjson

import syncengine
from syncengine.errors import FatalError
from syncengine.journal.commit_worker import ERROR_PREFIX, OK, READY, frame
from syncengine.journal.records import RecordUpdate, SyncedRow
from syncengine.journal.writes import row_runs
from syncengine.sources.base import Checkpoint

#: How long the worker may take to open the journal, and to finish after its input ends.
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 15.0

#: Where `syncengine` is imported from here, so the worker imports the same code.
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(syncengine.__file__)))

#: The pipe size asked for (Linux allows up to 1 MiB without privileges).
_PIPE_BYTES = 1 << 20


def commit_message(
    updates: Sequence[RecordUpdate | SyncedRow],
    checkpoints: Mapping[str, Checkpoint],
    high_water: Mapping[str, Checkpoint],
    now: float,
) -> bytes:
    """One group commit as the worker reads it (see `commit_worker`).

    Raises TypeError for a value JSON cannot carry, as the session
    connection's path does for the record rows it sends as JSON.
    """
    marks = [(sid, cp.resume_after, cp.display, now) for sid, cp in checkpoints.items()]
    highs = [(sid, cp.resume_after, cp.display, now) for sid, cp in high_water.items()]
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
    """One running commit worker for one journal file."""

    def __init__(self, process: asyncio.subprocess.Process, path: Path) -> None:
        self.path = path
        self._process = process
        self._ready = False
        self._broken: str | None = None
        self._turn = asyncio.Lock()

    @classmethod
    async def start(cls, path: Path) -> Self:
        """Starts the worker without waiting for it: the first commit waits, if it must.

        The worker's start-up (an interpreter, its imports, opening the file)
        then overlaps the pass's own (token, first requests).
        """
        package_root = _PACKAGE_ROOT
        inherited = os.environ.get("PYTHONPATH")
        env = {
            **os.environ,
            "PYTHONPATH": package_root if not inherited else package_root + os.pathsep + inherited,
        }
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "syncengine.journal.commit_worker",
                str(path),
                str(os.getpid()),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise FatalError(f"cannot start the commit process for journal {path}: {exc}") from exc
        _widen_pipe(process.stdin)
        return cls(process, path)

    async def commit(self, message: bytes) -> None:
        """Sends one message (see `commit_message`) and returns once it is committed.

        Shielded: a caller cancelled meanwhile leaves the answer to be read
        before the next message is sent, so answers never pair with the wrong
        message. Raises FatalError when the worker refused the message or is gone.
        """
        await asyncio.shield(self._round_trip(message))

    async def _round_trip(self, message: bytes) -> None:
        async with self._turn:
            if self._broken is not None:
                raise FatalError(self._broken)
            stdin, stdout = self._process.stdin, self._process.stdout
            assert stdin is not None
            assert stdout is not None
            try:
                if not self._ready:
                    await self._await_ready(stdout)
                stdin.write(frame(message))
                await stdin.drain()
                answer = await stdout.readline()
            except (ConnectionError, OSError):
                answer = b""
            if answer == OK:
                return
            reason = await self._reason(answer)
            if not answer.startswith(ERROR_PREFIX):
                self._broken = reason  # the worker is gone; a refused message leaves it serving
            raise FatalError(reason)

    async def _await_ready(self, stdout: asyncio.StreamReader) -> None:
        try:
            async with asyncio.timeout(_START_TIMEOUT_S):
                answer = await stdout.readline()
        except TimeoutError:
            answer = b"error the commit process did not open the journal in time"
        if answer != READY:
            self._broken = await self._reason(answer)
            raise FatalError(self._broken)
        self._ready = True

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
        stderr = self._process.stderr
        if stderr is None:
            return ""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                lines = (await stderr.read()).decode(errors="replace").strip().splitlines()
                return lines[-1].strip() if lines else ""
        return ""

    async def close(self) -> None:
        """Lets the commit under way finish, then ends the worker; safe to call twice."""
        async with self._turn:
            stdin = self._process.stdin
            if stdin is not None and not stdin.is_closing():
                stdin.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await stdin.wait_closed()
            await self._stop(kill=False)

    async def _stop(self, *, kill: bool) -> int | None:
        """Waits for the worker to end (killing it first with `kill`, or after a timeout)."""
        process = self._process
        if process.returncode is None and kill:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        try:
            async with asyncio.timeout(_STOP_TIMEOUT_S):
                return await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            return await process.wait()

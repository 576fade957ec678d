"""The process lock: one writer (`run`, `migrate`, `daemon`) per journal.

A sidecar file `<journal>.lock` is held with `fcntl.flock`, which the kernel
releases when the holder's process ends in any way, SIGKILL included, so a
crashed run never leaves a stale lock for a person to clean up. The holder
writes one line into the file (what runs, pid, host, since when) so that the
process refused can name it. Readers (`status`, `failures`, `retry`) never
take this lock: SQLite's WAL lets them read, and make small writes, beside
the holder.

The file is opened without following links and must be the user's own
regular file (`private_file.open_private`): the lock is truncated on every
acquire, and through a link it would empty whatever the link points at.

POSIX only (fcntl). Calls here are plain system calls that do not block:
safe to make from the event loop.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
from pathlib import Path

from syncengine.errors import JournalLockedError
from syncengine.journal.private_file import open_private


def lock_path(journal_path: Path) -> Path:
    """The sidecar lock file of a journal."""
    return journal_path.with_name(journal_path.name + ".lock")


def describe_holder(holder: str, *, now: float) -> str:
    """The one line written into the lock file: `holder` plus pid, host and start time."""
    since = dt.datetime.fromtimestamp(now, tz=dt.UTC).isoformat(timespec="seconds")
    one_line = " ".join(holder.split())
    return f"{one_line} (pid {os.getpid()} on {socket.gethostname()}, since {since})"


class ProcessLock:
    """An exclusive, non-blocking `flock` on a journal's sidecar file.

    Held from `acquire` until `release` or the end of the process. The lock
    belongs to the open file description, so a second `ProcessLock` on the
    same journal is refused even inside the same process.
    """

    def __init__(self, journal_path: Path) -> None:
        self.path = lock_path(journal_path)
        self._journal_path = journal_path
        self._fd: int | None = None

    def acquire(self, description: str) -> None:
        """Take the lock and write `description` into the file.

        Raises:
            JournalLockedError: another open holds it; the message names the
                holder as its process wrote it.
            ConfigError: the lock file is a link, not a regular file, or not
                the user's; nothing was written to it.
        """
        fd = open_private(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise JournalLockedError(
                f"journal {self._journal_path} is in use by {holder}"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # Truncate only once the lock is ours: the file may still name the last,
        # dead holder, and a refused process must never wipe a live holder's line.
        os.ftruncate(fd, 0)
        os.pwrite(fd, (description + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Clear the holder line and drop the lock; a no-op when not held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    @property
    def is_held(self) -> bool:
        """True between a successful `acquire` and `release`."""
        return self._fd is not None


def _read_holder(fd: int) -> str:
    """The holder line of a lock file, or a placeholder while it is being written."""
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    line = " ".join(text.split())
    return line or "another process (holder not written yet)"

"""Opening the journal's own files without following links.

The journal holds the cached access token and its lock file is truncated on
every run, so each file syncengine creates or changes beside it must be the
user's own regular file, never a symbolic link: a link planted (or left) at
`journal.db.lock` would otherwise have its target emptied, one at
`journal.db` would have its target's mode changed, and a dangling one would
make the journal appear wherever it points.

`open_private` opens with `O_NOFOLLOW` (the kernel refuses a link as the
last component, dangling or not) and checks what it opened with `fstat`,
so nothing is written or changed before the checks pass. A refusal is a
`ConfigError` (exit 2) naming the path: a person has to point `[journal]
path` at a real file or remove what is there.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from syncengine.errors import ConfigError

#: Owner read/write only: the journal holds the cached access token.
PRIVATE_MODE = 0o600


def open_private(path: Path, *, create: bool = True) -> int:
    """A read-write descriptor of `path`, the user's own regular file (created 0600 if absent).

    `O_NONBLOCK` keeps a FIFO planted at the path from blocking the open; the
    regular-file check then refuses it. The caller closes the descriptor.

    Raises:
        ConfigError: `path` is a symbolic link, not a regular file, or owned
            by another user; the message names it.
        OSError: any other failure to open (missing folder, permissions).
    """
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    if create:
        flags |= os.O_CREAT
    try:
        fd = os.open(path, flags, PRIVATE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise refusal(path, "is a symbolic link") from None
        raise
    try:
        check_owned_regular(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_owned_regular(path: Path, info: os.stat_result) -> None:
    """Raise ConfigError unless `info` (of `path`, not followed) is the user's own regular file."""
    if stat.S_ISLNK(info.st_mode):
        raise refusal(path, "is a symbolic link")
    if not stat.S_ISREG(info.st_mode):
        raise refusal(path, "is not a regular file")
    if info.st_uid != os.geteuid():
        raise refusal(path, f"is owned by another user (uid {info.st_uid})")


def check_existing(path: Path) -> None:
    """Check `path` with `lstat` when it exists; ConfigError if it is not ours or a link."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    check_owned_regular(path, info)


def refusal(path: Path, what: str) -> ConfigError:
    """The one-line error of a refused journal file."""
    return ConfigError(
        f"{path}: {what}; syncengine opens its journal files only as your own regular "
        "files, never through a link: point [journal] path at a plain file, or remove this one"
    )

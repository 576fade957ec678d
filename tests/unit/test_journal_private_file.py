"""The journal's files: only the user's own regular files, never through a link."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from syncengine.errors import ConfigError
from syncengine.journal.lock import ProcessLock
from syncengine.journal.private_file import open_private
from syncengine.journal.schema import tighten_sidecars


def test_a_fifo_at_the_lock_path_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO planted as journal.db.lock is refused at once (O_NONBLOCK), naming it."""
    fifo = tmp_path / "journal.db.lock"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is not a regular file") as caught:
        ProcessLock(tmp_path / "journal.db").acquire("test")
    assert str(fifo) in str(caught.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_another_users_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    """A journal owned by another uid is refused before its mode is touched."""
    path = tmp_path / "journal.db"
    path.write_bytes(b"theirs")
    path.chmod(0o644)
    os.chown(path, 65534, 65534)
    with pytest.raises(ConfigError, match="owned by another user"):
        os.close(open_private(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_lax_sidecar_link_is_refused_not_chmodded(tmp_path: Path) -> None:
    """tighten_sidecars meets a -shm link: ConfigError, and the target keeps its mode."""
    target = tmp_path / "target"
    target.write_bytes(b"x")
    target.chmod(0o644)
    (tmp_path / "j.db-shm").symlink_to(target)
    with pytest.raises(ConfigError, match="symbolic link"):
        tighten_sidecars(tmp_path / "j.db")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644

"""The journal's files are never opened through a link: real processes refuse, exit 2.

Each case plants a symbolic link where syncengine keeps a file of its own and
checks that the command names the path, exits 2, and leaves the link's target
exactly as it was (content, mode, existence).
"""

from __future__ import annotations

import stat
from pathlib import Path

from syncengine.sim.server import SimHandle
from tests.integration.conftest import (
    CliResult,
    lead_updates,
    run_cli,
    seed_leads,
    write_config,
    write_feed,
)

PRECIOUS = b"a file that belongs to something else\n"


def _assert_refused(result: CliResult, path: Path) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0]
    assert "symbolic link" in lines[0]
    assert "Traceback" not in result.stderr


def _precious(path: Path, mode: int) -> Path:
    path.write_bytes(PRECIOUS)
    path.chmod(mode)
    return path


async def test_symlinked_lock_file_is_refused_and_its_target_untouched(
    sim: SimHandle, tmp_path: Path
) -> None:
    """`run` with journal.db.lock linked to another file: exit 2 naming it; target not emptied."""
    await seed_leads(sim, 2)
    write_feed(tmp_path / "changes.jsonl", lead_updates(2))
    config = write_config(tmp_path, sim)
    target = _precious(tmp_path / "someone-elses.txt", 0o644)
    lock = tmp_path / "journal.db.lock"
    lock.symlink_to(target)

    result = await run_cli("run", "-c", str(config), cwd=tmp_path)

    _assert_refused(result, lock)
    assert target.read_bytes() == PRECIOUS
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


async def test_symlinked_journal_is_refused_and_its_targets_mode_unchanged(
    sim: SimHandle, tmp_path: Path
) -> None:
    """`run` and `status` with journal.db linked to another file: exit 2; mode stays 0644."""
    write_feed(tmp_path / "changes.jsonl", lead_updates(2))
    config = write_config(tmp_path, sim)
    target = _precious(tmp_path / "shared.db", 0o644)
    journal = tmp_path / "journal.db"
    journal.symlink_to(target)

    for command in ("run", "status"):
        result = await run_cli(command, "-c", str(config), cwd=tmp_path)
        _assert_refused(result, journal)
    assert target.read_bytes() == PRECIOUS
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


async def test_dangling_journal_link_creates_nothing_at_its_target(
    sim: SimHandle, tmp_path: Path
) -> None:
    """A dangling journal.db link: exit 2, and no journal appears where it points."""
    write_feed(tmp_path / "changes.jsonl", lead_updates(2))
    config = write_config(tmp_path, sim)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "journal.db"
    journal = tmp_path / "journal.db"
    journal.symlink_to(target)

    for command in ("run", "status"):
        result = await run_cli(command, "-c", str(config), cwd=tmp_path)
        _assert_refused(result, journal)
    assert not target.exists()
    assert list(elsewhere.iterdir()) == []


async def test_symlinked_wal_file_is_refused_and_its_target_untouched(
    sim: SimHandle, tmp_path: Path
) -> None:
    """A journal.db-wal link left beside a real journal: `status` exits 2; target unchanged."""
    write_feed(tmp_path / "changes.jsonl", lead_updates(2))
    config = write_config(tmp_path, sim)
    first = await run_cli("status", "-c", str(config), cwd=tmp_path)  # creates the journal
    assert first.returncode == 0, first.stderr
    target = _precious(tmp_path / "other.log", 0o644)
    wal = tmp_path / "journal.db-wal"
    wal.unlink(missing_ok=True)
    wal.symlink_to(target)

    result = await run_cli("status", "-c", str(config), cwd=tmp_path)

    _assert_refused(result, wal)
    assert target.read_bytes() == PRECIOUS
    assert stat.S_IMODE(target.stat().st_mode) == 0o644

"""Fencing: no group commit of a journal's last holder lands after its successor took over.

The holder runs in a process of its own (its commit process is a child of
it, as in a daemon). A trigger on the journal's `records` table, installed
by the test, stalls chosen commits on an advisory lock the test holds, the
way a slow disk, a lock wait or a stalled server would: so a commit is
provably still on its way when the holder's session ends. Then a successor
takes the journal, and the test checks that nothing of the old holder
lands after the successor began reading.
"""

# ruff: noqa: F811 - `pg_journal_config` is a fixture imported from tests.journal_backends

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from syncengine.config import JournalConfig
from syncengine.journal import Journal, RecordUpdate
from syncengine.journal.pg_fence import lock_halves, partition_fence_key, partition_lock_key
from syncengine.journal.pg_lock import holder_key
from syncengine.model import Checkpoint, Operation, RecordState
from syncengine.workers.leases import PartitionLease, PartitionTable
from tests.journal_backends import admin_connection, pg_journal_config  # noqa: F401

#: Advisory keys (two-int form, apart from the engine's one-bigint keys) the trigger waits on.
_STALL_CLASS = 424242

_HOLDER = r"""
import asyncio, sys
from syncengine.config import JournalConfig
from syncengine.journal import Journal
from syncengine.model import Checkpoint

async def main():
    url, schema, path = sys.argv[1:4]
    journal = await Journal.open(
        JournalConfig(path=path, url=url, schema=schema),
        holder="fencing test holder", commit_process=True,
    )
    print("@", journal._db.get_server_pid(), flush=True)
    synced = lambda n: (f"Leads:{n}", "Leads", f"crm-{n}", "update", 1, n, "feed")
    # The first commit stalls in the trigger; the second waits behind it in the pipe.
    journal.submit([synced(1)], {"feed": Checkpoint(10, 10, None)})
    journal.submit([synced(2)], {"feed": Checkpoint(11, 11, None)})
    print("@ sent", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _failed(n: int) -> RecordUpdate:
    return RecordUpdate(
        f"Leads:{n}", "Leads", f"crm-{n}", Operation.UPDATE, RecordState.FAILED,
        2, "INVALID_DATA", "newer outcome", None, None, b'{"id":"1"}', n,
    )  # fmt: skip


async def _install_stall(admin: asyncpg.Connection, schema: str, *, at_commit: bool) -> None:
    """Synced rows of Leads:1 (Leads:2) wait for stall lock 1 (2) before they are written.

    `at_commit`: Leads:1 waits at COMMIT instead (a deferred constraint
    trigger), the COMMIT already received by the server.
    """
    q = f'"{schema}"'
    await admin.execute(
        f"""CREATE FUNCTION {q}.stall() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.state = 'synced' AND NEW.key = 'Leads:1' THEN
                PERFORM pg_advisory_xact_lock_shared({_STALL_CLASS}, 1);
            ELSIF NEW.state = 'synced' AND NEW.key = 'Leads:2' THEN
                PERFORM pg_advisory_xact_lock_shared({_STALL_CLASS}, 2);
            END IF;
            RETURN NEW;
        END $$"""
    )
    if at_commit:
        await admin.execute(
            f"CREATE CONSTRAINT TRIGGER stall AFTER INSERT OR UPDATE ON {q}.records"
            f" DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {q}.stall()"
        )
    else:
        await admin.execute(
            f"CREATE TRIGGER stall BEFORE INSERT ON {q}.records"
            f" FOR EACH ROW EXECUTE FUNCTION {q}.stall()"
        )


async def _eventually(check: Callable[[], Awaitable[object]], what: str, within: float = 20.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _stalled_pid(admin: asyncpg.Connection, lock: int) -> int | None:
    """The backend waiting for stall lock `lock`, if any."""
    pid: int | None = await admin.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND classid = $1 AND objid = $2 AND objsubid = 2",
        _STALL_CLASS,
        lock,
    )
    return pid


async def _holder_of(admin: asyncpg.Connection, key: int) -> int | None:
    classid, objid = lock_halves(key)
    pid: int | None = await admin.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1",
        classid,
        objid,
    )
    return pid


async def _idle(admin: asyncpg.Connection, pid: int) -> bool:
    state = await admin.fetchval("SELECT state FROM pg_stat_activity WHERE pid = $1", pid)
    return state is None or state == "idle"


@pytest.fixture
async def admin() -> AsyncIterator[asyncpg.Connection]:
    connection = await admin_connection()
    try:
        yield connection
    finally:
        await connection.close()


def _start_holder(config: JournalConfig) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(config.url), config.schema, str(config.path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )


async def _line(process: subprocess.Popen[str]) -> str:
    """The holder's next word to the test (its lines starting with `@`; logs are skipped)."""
    assert process.stdout is not None
    while True:
        line = await asyncio.to_thread(process.stdout.readline)
        if not line or line.startswith("@ "):
            return line[2:].strip()


async def _clean_up(
    holder: subprocess.Popen[str],
    successor: asyncio.Task[Journal] | None,
    admin: asyncpg.Connection,
) -> None:
    """End the holder process and the successor's open, and free the test's stall locks."""
    if successor is not None and not successor.done():
        successor.cancel()
    holder.kill()
    holder.wait()
    if holder.stdout is not None:
        holder.stdout.close()
    await admin.execute("SELECT pg_advisory_unlock_all()")


async def test_a_commit_queued_when_the_session_ends_never_lands_after_the_successor(
    pg_journal_config: JournalConfig, admin: asyncpg.Connection
) -> None:
    """The holder's loop stalls (SIGSTOP) as its session is ended by the server.

    Its commit process goes on: the commit under way lands before the
    successor reads anything; the one queued behind it is refused, so the
    successor's newer failure of Leads:2 and its checkpoint stay.
    """
    config, schema = pg_journal_config, pg_journal_config.schema
    await (await Journal.open(config)).close()  # the schema, made
    await _install_stall(admin, schema, at_commit=False)
    await admin.execute("SELECT pg_advisory_lock($1, 1), pg_advisory_lock($1, 2)", _STALL_CLASS)
    holder = _start_holder(config)
    successor: asyncio.Task[Journal] | None = None
    try:
        main_pid = int(await _line(holder))
        assert await _line(holder) == "sent"
        commit_pid = await _eventually(lambda: _stalled_pid(admin, 1), "the stalled commit")
        os.kill(holder.pid, signal.SIGSTOP)
        await admin.execute("SELECT pg_terminate_backend($1)", main_pid)
        successor = asyncio.create_task(
            Journal.open(config, holder="successor", commit_process=True, wait=True)
        )
        await _eventually(
            lambda: _holder_of(admin, holder_key(schema)), "the successor's hold", within=20
        )
        await asyncio.sleep(0.5)
        await admin.execute("SELECT pg_advisory_unlock($1, 1)", _STALL_CLASS)
        journal = await asyncio.wait_for(successor, 20)
        try:
            assert (await journal.checkpoint("feed")) == Checkpoint(10, 10, None)
            await journal.submit([_failed(2)], {"feed": Checkpoint(20, 20, None)})
            await asyncio.sleep(0.5)  # the old holder's second commit, if it passed, now waits
            await admin.execute("SELECT pg_advisory_unlock($1, 2)", _STALL_CLASS)
            await _eventually(lambda: _idle(admin, commit_pid), "the old commit process to end")
            state = await admin.fetchval(
                f"SELECT state FROM \"{schema}\".records WHERE key = 'Leads:2'"
            )
            assert state == "failed"
            assert (await journal.checkpoint("feed")) == Checkpoint(20, 20, None)
        finally:
            await journal.close()
    finally:
        await _clean_up(holder, successor, admin)


async def test_a_commit_on_its_way_when_the_holder_is_killed_lands_before_the_successor_reads(
    pg_journal_config: JournalConfig, admin: asyncpg.Connection
) -> None:
    """SIGKILL while the server already has the commit's COMMIT: the successor waits for it."""
    config, schema = pg_journal_config, pg_journal_config.schema
    await (await Journal.open(config)).close()
    await _install_stall(admin, schema, at_commit=True)
    await admin.execute("SELECT pg_advisory_lock($1, 1), pg_advisory_lock($1, 2)", _STALL_CLASS)
    holder = _start_holder(config)
    successor: asyncio.Task[Journal] | None = None
    try:
        await _line(holder)
        assert await _line(holder) == "sent"
        await _eventually(lambda: _stalled_pid(admin, 1), "the stalled COMMIT")
        holder.kill()  # SIGKILL; its commit process dies with it
        holder.wait()
        successor = asyncio.create_task(
            Journal.open(config, holder="successor", commit_process=True, wait=True)
        )
        await _eventually(lambda: _holder_of(admin, holder_key(schema)), "the successor's hold")
        await asyncio.sleep(1.0)
        began_early = successor.done()
        await admin.execute("SELECT pg_advisory_unlock($1, 1)", _STALL_CLASS)
        if began_early:
            await (await successor).close()
        assert not began_early, "the successor began before the old commit ended"
        journal = await asyncio.wait_for(successor, 20)
        try:
            assert (await journal.checkpoint("feed")) == Checkpoint(10, 10, None)
        finally:
            await journal.close()
    finally:
        await _clean_up(holder, successor, admin)


async def test_a_worker_commit_for_a_partition_whose_lease_is_gone_never_lands(
    pg_journal_config: JournalConfig, admin: asyncpg.Connection
) -> None:
    """Per partition: once a worker's lease session ends, its queued commits are refused.

    The next worker's lease waits for the commit already under way, and
    the newer failure it writes for the partition's record stays.
    """
    config, schema = pg_journal_config, pg_journal_config.schema
    url = str(config.url)
    journal = await Journal.open(config, commit_process=True)
    first, second = PartitionTable(url, schema), PartitionTable(url, schema)
    leases: list[PartitionLease] = []
    try:
        await first.open(1)
        await first.share_journal("first worker", where=journal.where)
        await second.share_journal("second worker", where=journal.where)
        await _install_stall(admin, schema, at_commit=False)
        await admin.execute("SELECT pg_advisory_lock($1, 1), pg_advisory_lock($1, 2)", _STALL_CLASS)
        lease = await first.lease()
        assert lease is not None
        leases.append(lease)
        worked = journal.fenced(first.holds_for(lease))
        synced = [("Leads:1", "Leads", "crm-1", "update", 1, 1, "feed")]
        one = worked.submit(synced, {"feed/p0": Checkpoint(10, 10, None)})
        two = worked.submit(
            [("Leads:2", "Leads", "crm-2", "update", 1, 2, "feed")],
            {"feed/p0": Checkpoint(11, 11, None)},
        )
        commit_pid = await _eventually(lambda: _stalled_pid(admin, 1), "the stalled commit")
        lease_pid = lease.connection.get_server_pid()
        await admin.execute("SELECT pg_terminate_backend($1)", lease_pid)
        taken = asyncio.create_task(second.lease())
        await _eventually(
            lambda: _holder_of(admin, partition_lock_key(schema, 0)), "the second lease"
        )
        await asyncio.sleep(0.5)
        await admin.execute("SELECT pg_advisory_unlock($1, 1)", _STALL_CLASS)
        successor = await asyncio.wait_for(taken, 20)
        assert successor is not None
        leases.append(successor)
        assert successor.partition == 0
        await one
        reader = await Journal.open(config, commit_process=True)
        try:
            assert (await reader.checkpoint("feed/p0")) == Checkpoint(10, 10, None)
            newer = reader.fenced(second.holds_for(successor))
            await newer.submit([_failed(2)], {"feed/p0": Checkpoint(20, 20, None)})
            await asyncio.sleep(0.5)
            await admin.execute("SELECT pg_advisory_unlock($1, 2)", _STALL_CLASS)
            with pytest.raises(Exception, match="partition 0"):
                await asyncio.wait_for(two, 20)
            await _eventually(lambda: _idle(admin, commit_pid), "the old commit to end")
            state = await admin.fetchval(
                f"SELECT state FROM \"{schema}\".records WHERE key = 'Leads:2'"
            )
            assert state == "failed"
            assert (await reader.checkpoint("feed/p0")) == Checkpoint(20, 20, None)
        finally:
            await reader.close()
        assert partition_fence_key(schema, 0) != partition_lock_key(schema, 0)
    finally:
        for held in leases:
            held.connection.terminate()
        await admin.execute("SELECT pg_advisory_unlock_all()")
        await journal.close()
        await first.close()
        await second.close()
        await admin.execute("SELECT pg_advisory_unlock_all()")

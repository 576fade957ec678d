"""The daemon lease: one holder per journal schema, freed when the holder's session ends."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid

import asyncpg

from syncengine.failover.lease import Lease, LeaseTiming, lease_key
from tests.postgres.conftest import DSN

FAST = LeaseTiming(poll_s=0.1, check_s=0.1, check_timeout_s=2.0)


def test_timing_bounds_follow_from_the_settings() -> None:
    timing = LeaseTiming()
    assert timing.dead_peer_s == 10 + 5 * 3
    assert timing.takeover_after_exit_s == timing.poll_s
    assert timing.takeover_after_cutoff_s == timing.dead_peer_s + timing.poll_s
    assert timing.keepalive_settings("x")["tcp_user_timeout"] == "25000"


def test_keys_differ_per_schema() -> None:
    assert lease_key("a") != lease_key("b")
    assert lease_key("a") == lease_key("a")


async def test_one_holder_at_a_time_and_release_hands_over(pg: asyncpg.Connection) -> None:
    schema = f"lease_{uuid.uuid4().hex[:10]}"
    first, second = Lease(DSN, schema, timing=FAST), Lease(DSN, schema, timing=FAST)
    other_journal = Lease(DSN, schema + "_other", timing=FAST)
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        assert await other_journal.try_acquire()  # another journal's lease is its own
        stop = asyncio.Event()
        waiting = asyncio.create_task(second.acquire(stop))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await first.release()
        assert await asyncio.wait_for(waiting, 2.0)
        assert second.held
    finally:
        for lease in (first, second, other_journal):
            await lease.release()


async def test_a_standby_gives_up_waiting_when_stopped(pg: asyncpg.Connection) -> None:
    schema = f"lease_{uuid.uuid4().hex[:10]}"
    holder, standby = Lease(DSN, schema, timing=FAST), Lease(DSN, schema, timing=FAST)
    try:
        assert await holder.try_acquire()
        stop = asyncio.Event()
        waiting = asyncio.create_task(standby.acquire(stop))
        await asyncio.sleep(0.2)
        stop.set()
        assert await asyncio.wait_for(waiting, 2.0) is False
    finally:
        await holder.release()
        await standby.release()


HOLD = """
import asyncio, sys
from syncengine.failover.lease import Lease
async def main():
    lease = Lease(sys.argv[1], sys.argv[2])
    assert await lease.try_acquire()
    print("held", flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


async def test_sigkill_of_the_holder_frees_the_lease_at_once(pg: asyncpg.Connection) -> None:
    schema = f"lease_{uuid.uuid4().hex[:10]}"
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD, DSN, schema, stdout=asyncio.subprocess.PIPE
    )
    standby = Lease(DSN, schema, timing=FAST)
    try:
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).decode() == "held\n"
        assert not await standby.try_acquire()
        os.kill(holder.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        assert await asyncio.wait_for(standby.acquire(asyncio.Event()), 5.0)
        assert time.monotonic() - killed_at < 2.0
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()
        await standby.release()


async def test_watch_reports_a_session_the_server_ended(pg: asyncpg.Connection) -> None:
    schema = f"lease_{uuid.uuid4().hex[:10]}"
    lease = Lease(DSN, schema, timing=FAST)
    try:
        assert await lease.try_acquire()
        watching = asyncio.create_task(lease.watch())
        await asyncio.sleep(0.3)
        assert not watching.done()
        await pg.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks"
            " WHERE locktype = 'advisory' AND objsubid = 1"
            " AND ((classid::bigint << 32) | objid::bigint) = $1",
            lease_key(schema),
        )
        reason = await asyncio.wait_for(watching, 5.0)
        assert "connection" in reason
        assert not lease.held
    finally:
        await lease.release()

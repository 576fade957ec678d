"""The job pool: at most N jobs at once; the first failure cancels the rest and is raised."""

from __future__ import annotations

import asyncio

import pytest

from syncengine.bulk.job_pool import JobPool


async def test_at_most_size_jobs_run_at_once() -> None:
    running, most, done = 0, 0, []

    async def job(n: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        done.append(n)

    pool = JobPool(2)
    for n in range(6):
        await pool.add(job(n))
    await pool.drain()
    assert (most, sorted(done)) == (2, list(range(6)))


async def test_first_failure_cancels_the_others() -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("job failed")

    pool = JobPool(2)
    await pool.add(slow())
    await pool.add(failing())
    with pytest.raises(RuntimeError, match="job failed"):
        await pool.drain()
    assert cancelled.is_set()

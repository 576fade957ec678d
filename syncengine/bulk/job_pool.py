"""At most N bulk-write jobs under way at once, each a task; the first failure ends them all.

While one job waits for the CRM, the next one's file is built and uploaded,
so the CRM always has work. A job that raises (a stop, a job not finished by
its deadline, a result that cannot be fetched) cancels the others: each
keeps its journaled step, and the next pass resumes it (`job_runner`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class JobPool:
    """Runs job coroutines, at most `size` at once."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self._size = size
        self._tasks: set[asyncio.Task[None]] = set()

    async def add(self, work: Coroutine[Any, Any, None]) -> None:
        """Start `work` once a place is free; raises the first failure of a job."""
        while len(self._tasks) >= self._size:
            await self._reap()
        self._tasks.add(asyncio.ensure_future(work))

    async def drain(self) -> None:
        """Wait for every job; raises the first failure (the others are cancelled)."""
        while self._tasks:
            await self._reap()

    async def cancel(self) -> None:
        """Cancel what is still under way and wait for it to end."""
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _reap(self) -> None:
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        self._tasks -= done
        for task in done:
            error = task.exception()
            if error is not None:
                await self.cancel()
                raise error

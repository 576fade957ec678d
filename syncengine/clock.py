"""The clocks of a pass: one monotonic, one wall, and waiting against the monotonic one.

Every stage that asks the time or waits a while (the dispatcher's linger,
grace and drain deadlines, retry due times, the sync lag, the redrive's due
rows and the journal's `next_attempt_at`) asks one `Clock`, handed down by
the engine. Production uses `SYSTEM_CLOCK`; tests pass a clock they move by
hand, so schedules are checked without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """What the engine's stages need of time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: for durations and deadlines."""
        ...

    def wall(self) -> float:
        """Epoch seconds: for times stored in the journal and compared across runs."""
        ...

    async def wait(self, event: asyncio.Event, timeout_s: float | None) -> None:
        """Returns when `event` is set or `timeout_s` monotonic seconds passed (None: no limit)."""
        ...


class SystemClock:
    """The real clocks."""

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    def wall(self) -> float:
        """`time.time()`."""
        return time.time()

    async def wait(self, event: asyncio.Event, timeout_s: float | None) -> None:
        """`asyncio.timeout` rather than `wait_for`: it wraps no inner task, so a
        cancellation arriving as the timeout fires is never lost (Python 3.11)."""
        try:
            async with asyncio.timeout(timeout_s):
                await event.wait()
        except TimeoutError:
            return


SYSTEM_CLOCK = SystemClock()

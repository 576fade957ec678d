"""A `syncengine.clock.Clock` that moves only when a test says so.

`advance` moves both clocks and wakes every `wait` whose timeout has passed,
so linger, grace and retry schedules are checked without sleeping.
"""

from __future__ import annotations

import asyncio


class FakeClock:
    """Monotonic and wall time that stand still until `advance`."""

    def __init__(self, *, monotonic: float = 1_000.0, wall: float = 1_700_000_000.0) -> None:
        self._monotonic = monotonic
        self._wall = wall
        self._ticked = asyncio.Event()

    def monotonic(self) -> float:
        return self._monotonic

    def wall(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        """Moves both clocks by `seconds` and wakes the waiters to look again."""
        self._monotonic += seconds
        self._wall += seconds
        ticked, self._ticked = self._ticked, asyncio.Event()
        ticked.set()

    async def wait(self, event: asyncio.Event, timeout_s: float | None) -> None:
        """Returns when `event` is set or the fake time passed `timeout_s`."""
        deadline = None if timeout_s is None else self._monotonic + timeout_s
        while not event.is_set() and (deadline is None or self._monotonic < deadline):
            set_waiter = asyncio.ensure_future(event.wait())
            tick_waiter = asyncio.ensure_future(self._ticked.wait())
            try:
                await asyncio.wait({set_waiter, tick_waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                set_waiter.cancel()
                tick_waiter.cancel()

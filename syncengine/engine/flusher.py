"""The group commit's cadence: when the recorder's buffered outcomes go to the journal.

Every `interval_s`, or sooner when woken (rows piled up, or the dispatcher
is holding chunks back under invariant 6's bound on unjournaled records).
A flush is sent and the next one need not wait for it to become durable;
each one that does wakes the dispatcher, and one that fails (refused, or
past its deadline) ends the pass: nothing is lost, since the checkpoint
stayed where the last durable commit left it and the next pass reads on
from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from syncengine.engine.recorder import Recorder


async def wait_event(event: asyncio.Event, timeout_s: float | None) -> None:
    """Waits until `event` is set or `timeout_s` passes (None: no limit).

    `asyncio.timeout` rather than `wait_for`: it wraps no inner task, so a
    cancellation arriving as the timeout fires is never lost (Python 3.11).
    """
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return


class Flusher:
    """Runs the recorder's flushes for one pass; owned by the engine."""

    def __init__(
        self,
        recorder: Recorder,
        *,
        interval_s: float,
        on_durable: Callable[[], None],
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self._recorder = recorder
        self._interval_s = interval_s
        self._on_durable = on_durable
        self._on_failure = on_failure
        self._now = asyncio.Event()
        self._closing = False

    def wake(self) -> None:
        """Flush now rather than at the next interval."""
        self._now.set()

    def close(self) -> None:
        """Ends `run` after the flush under way; the caller makes the last flush itself."""
        self._closing = True
        self._now.set()

    async def run(self) -> None:
        """The flush loop. It ends through `close` rather than cancellation, so a
        flush is never cut in half."""
        recorder = self._recorder
        while not self._closing:
            await wait_event(self._now, self._interval_s)
            self._now.clear()
            try:
                durable = recorder.flush_soon()
            except Exception as exc:  # noqa: BLE001 - the pass must end, not wait for a flush
                self._on_failure(exc)
                return
            if durable is not None:
                durable.add_done_callback(self._settled)

    def _settled(self, durable: asyncio.Future[None]) -> None:
        if durable.cancelled():
            return
        error = durable.exception()
        if error is not None:
            self._on_failure(error)
        else:
            self._on_durable()

"""Waiting helpers shared by the feeds' follow modes.

Follow mode alternates between draining what a feed has now and waiting for
more. Waiting is always bounded by the poll interval, so a lost wake-up (a
missed notification, a file event we cannot see) costs at most one interval
of latency, never a stall. Every wait here is a plain await: cancelling the
task or closing the generator around it interrupts it at once.
"""

from __future__ import annotations

import asyncio

from syncengine.errors import ConfigError

#: First pause before reconnecting to a feed whose connection dropped.
RECONNECT_BASE_S = 0.5
#: Longest pause between reconnection attempts: a restarted server is back within it.
RECONNECT_CAP_S = 30.0


def check_poll_interval(poll_interval_s: float) -> float:
    """`poll_interval_s` when it is a usable interval; raises ValueError otherwise.

    Zero would spin the event loop on a quiet feed; the config refuses it too.
    """
    if not poll_interval_s > 0:
        raise ValueError(f"poll_interval_s must be > 0; got {poll_interval_s!r}")
    return poll_interval_s


def reconnect_delay_s(failures: int, *, base_s: float = RECONNECT_BASE_S) -> float:
    """Pause before reconnect attempt number `failures` (1, 2, ...): doubling, capped.

    No jitter: one daemon reconnects to one server, there is no herd to spread.
    """
    exponent = min(max(failures - 1, 0), 16)  # 2**16 * base is far past the cap
    return min(base_s * (1 << exponent), RECONNECT_CAP_S)


async def wait_for_wake(wake: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `wake` is set or `timeout_s` passes; True when woken.

    Clears the event, so the caller re-reads the feed after every wake-up and
    a notification that arrives during that read wakes the next wait.
    """
    try:
        async with asyncio.timeout(timeout_s):
            await wake.wait()
    except TimeoutError:
        return False
    wake.clear()
    return True


def refuse_follow(source_id: str, why: str) -> ConfigError:
    """The error of a feed kind that cannot be followed, naming the feed and the reason."""
    return ConfigError(f"{source_id}: cannot follow this feed: {why}")

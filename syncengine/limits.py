"""How many records-API requests may run, and how fast: one `Limiter` per engine.

Every HTTP request the CRM client sends holds a slot (`async with
limiter.slot(records=n)`), which enforces, in this order:

* pauses: a long pause when 429s persist with one request in flight (the
  day's credits are likely spent), and a pause when the CRM's
  `X-API-CREDITS-REMAINING` falls to the configured `reserve_credits`;
* concurrency: in flight ≤ the adaptive limit ≤ `concurrency`, and write
  calls carrying more than 10 records ≤ 10 (Zoho's sub-concurrency cap,
  crm-api.md §3.2);
* rate: ≤ `requests_per_minute` per rolling minute (asyncio-throttle: a
  sliding log, so up to that many may start back to back, then it waits).

The adaptive limit is AIMD: a 429 halves it (once per wave: 429s of requests
that started before the last cut do not cut again) and remembers a ceiling
just under the in-flight level that was refused; successes add 1/limit each
(one step per round trip) up to that ceiling. The ceiling is forgotten after
`probe_interval_s` without a 429, so capacity the CRM regains is found again,
at the cost of at most one wave of 429s per interval. Clock and sleep are
injected so the policy is tested without waiting.

With `[limits] shared` (`syncengine.shared`) the org's processes share two
things through hooks: after its local slot a request also takes one of the
org's `SharedSlots`, and every credits header goes to `credits_listener`
(other processes' values come back through `apply_credits_remaining`). The
adaptive limit, pauses and rate stay per process.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import structlog
from asyncio_throttle.throttler import Throttler

log = structlog.get_logger(__name__)

#: Zoho's separate cap on write calls with more than `HEAVY_RECORDS` records.
HEAVY_CONCURRENCY = 10
HEAVY_RECORDS = 10


class RateGate(Protocol):
    """Admits one request start; waits while the rate is spent."""

    async def acquire(self) -> None:
        """Return when one more request may start."""
        ...


class SharedSlots(Protocol):
    """The org's slots shared with other processes; a request holds one besides its own."""

    async def take(self, *, heavy: bool) -> object:
        """Wait for a free org slot (and a heavy one when `heavy`); the lease to give back."""
        ...

    async def give_back(self, lease: object) -> None:
        """Free what `take` returned; safe to call while being cancelled."""
        ...


@dataclass(frozen=True, slots=True)
class SlotTicket:
    """What the limiter knew when a request started; hand it back on 429.

    `epoch` counts limit cuts so far (a 429 from an older epoch was already
    answered by a cut); `level` is the number in flight with this one.
    """

    epoch: int
    level: int
    records: int


class Limiter:
    """Concurrency (adaptive), heavy-call cap, request rate, pauses and credit reserve."""

    def __init__(
        self,
        *,
        concurrency: int,
        requests_per_minute: int | None = None,
        reserve_credits: int | None = None,
        decrease_factor: float = 0.5,
        probe_interval_s: float = 30.0,
        floor_streak: int = 3,
        long_pause_base_s: float = 60.0,
        long_pause_cap_s: float = 3600.0,
        reserve_pause_s: float = 600.0,
        rate_period_s: float = 60.0,
        rate_gate: RateGate | None = None,
        shared: SharedSlots | None = None,
        credits_listener: Callable[[int | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if requests_per_minute is not None and requests_per_minute < 1:
            raise ValueError("requests_per_minute must be >= 1 or None")
        self._max = concurrency
        self._limit = float(concurrency)
        self._factor = decrease_factor
        self._probe_interval_s = probe_interval_s
        self._floor_streak = floor_streak
        self._long_pause_base_s = long_pause_base_s
        self._long_pause_cap_s = long_pause_cap_s
        self._reserve = reserve_credits
        self._reserve_pause_s = reserve_pause_s
        self._clock = clock
        self._sleep = sleep
        self._rate = rate_gate
        self._shared = shared
        self._credits_listener = credits_listener
        if rate_gate is None and requests_per_minute is not None:
            # asyncio-throttle polls; 50 ms keeps waiters cheap at per-minute rates.
            self._rate = Throttler(
                rate_limit=requests_per_minute, period=rate_period_s, retry_interval=0.05
            )
        self._epoch = 0
        self._ceiling: int | None = None
        self._ceiling_until = 0.0
        self._paused_until = 0.0
        self._floor_hits = 0
        self._long_pauses = 0
        self._reserve_hold = False
        self._heavy_in_flight = 0
        self._waiters: list[asyncio.Future[None]] = []
        #: Requests holding a slot now.
        self.in_flight = 0
        #: Most requests ever in flight at once.
        self.max_in_flight = 0
        #: 429s reported through `on_throttled`.
        self.throttled = 0
        #: Long pauses taken because 429s persisted at one request in flight.
        self.long_pauses = 0

    @property
    def limit(self) -> int:
        """The current concurrency limit (1 ≤ limit ≤ concurrency)."""
        limit = min(self._max, max(1, math.floor(self._limit)))
        ceiling = self._active_ceiling()
        if ceiling is not None:
            limit = min(limit, ceiling)
        return 1 if self._reserve_hold else limit

    @property
    def paused_until(self) -> float:
        """Clock time before which no new request starts (0 when never paused)."""
        return self._paused_until

    @asynccontextmanager
    async def slot(self, *, records: int) -> AsyncIterator[SlotTicket]:
        """Hold one request slot while the body runs; safe to cancel while waiting."""
        ticket = await self._acquire(records)
        lease: object = None
        try:
            if self._shared is not None:
                lease = await self._shared.take(heavy=records > HEAVY_RECORDS)
            if self._rate is not None:
                await self._rate.acquire()
            yield ticket
        finally:
            self._release(ticket)
            if self._shared is not None and lease is not None:
                await self._shared.give_back(lease)

    def on_success(self) -> None:
        """A request was answered without 429: grow the limit by one per round trip."""
        self._floor_hits = 0
        self._long_pauses = 0
        target = self._max
        ceiling = self._active_ceiling()
        if ceiling is not None:
            target = min(target, ceiling)
        if self._limit < target:
            self._limit = min(float(target), self._limit + 1.0 / max(1.0, self._limit))
            self._wake()

    def on_throttled(self, ticket: SlotTicket | None = None) -> None:
        """A request got 429: cut the limit (once per wave), learn a ceiling, maybe pause."""
        self.throttled += 1
        now = self._clock()
        level = ticket.level if ticket is not None else self.limit
        cut = ticket is None or ticket.epoch >= self._epoch
        if cut:
            self._limit = max(1.0, self._limit * self._factor)
            self._epoch += 1
        self._learn_ceiling(max(1, level - 1), now)
        if cut:
            log.info("limits.decreased", limit=self.limit, ceiling=self._ceiling)
        if level <= 1:
            self._floor_hits += 1
            if self._floor_hits >= self._floor_streak:
                self._start_long_pause(now)

    def on_credits_remaining(self, remaining: int | None) -> None:
        """Record the CRM's `X-API-CREDITS-REMAINING` (None: header absent).

        At or below `reserve_credits` no request starts for `reserve_pause_s`,
        then one at a time until an answer shows the credits above the reserve
        again, so the org's other integrations are never starved.
        """
        if self._credits_listener is not None:
            self._credits_listener(remaining)
        self.apply_credits_remaining(remaining)

    def apply_credits_remaining(self, remaining: int | None) -> None:
        """As `on_credits_remaining`, for a value another process of the org saw."""
        if self._reserve is None:
            return
        if remaining is None or remaining > self._reserve:
            if self._reserve_hold:
                log.info("limits.credits_recovered", remaining=remaining)
                self._reserve_hold = False
                self._wake()
            return
        now = self._clock()
        if not self._reserve_hold or self._paused_until <= now:
            log.warning(
                "limits.credits_reserve_reached",
                remaining=remaining,
                reserve=self._reserve,
                pause_s=self._reserve_pause_s,
            )
            self._reserve_hold = True
            self._paused_until = max(self._paused_until, now + self._reserve_pause_s)

    def _start_long_pause(self, now: float) -> None:
        """429s persist with one request in flight: the credits are likely spent."""
        self._floor_hits = 0
        self._long_pauses += 1
        self.long_pauses += 1
        exponent = min(self._long_pauses - 1, 30)
        pause_s = min(self._long_pause_cap_s, self._long_pause_base_s * 2.0**exponent)
        self._paused_until = max(self._paused_until, now + pause_s)
        log.warning("limits.long_pause", pause_s=pause_s, reason="429 at concurrency 1")

    def _learn_ceiling(self, ceiling: int, now: float) -> None:
        """Remember the level the CRM refused, for `probe_interval_s`."""
        current = self._active_ceiling()
        self._ceiling = ceiling if current is None else min(current, ceiling)
        self._ceiling_until = now + self._probe_interval_s
        self._limit = min(self._limit, float(self._ceiling))

    def _active_ceiling(self) -> int | None:
        """The learned ceiling while it is fresh, else None."""
        if self._ceiling is not None and self._clock() < self._ceiling_until:
            return self._ceiling
        return None

    def _fits(self, records: int) -> bool:
        """Whether a request of `records` records may start now."""
        if self.in_flight >= self.limit:
            return False
        heavy_cap = min(HEAVY_CONCURRENCY, self.limit)
        return records <= HEAVY_RECORDS or self._heavy_in_flight < heavy_cap

    async def _acquire(self, records: int) -> SlotTicket:
        """Wait out pauses and for room, then take a slot."""
        loop = asyncio.get_running_loop()
        while True:
            pause_s = self._paused_until - self._clock()
            if pause_s > 0:
                await self._sleep(pause_s)
                continue
            if self._fits(records):
                return self._take(records)
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _take(self, records: int) -> SlotTicket:
        """Book a slot for a request that starts now."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if records > HEAVY_RECORDS:
            self._heavy_in_flight += 1
        return SlotTicket(epoch=self._epoch, level=self.in_flight, records=records)

    def _release(self, ticket: SlotTicket) -> None:
        """Give a slot back and let waiters re-check."""
        self.in_flight -= 1
        if ticket.records > HEAVY_RECORDS:
            self._heavy_in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        """Let every waiter re-check; each one re-queues if there is still no room."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

"""The limiter: concurrency, heavy-call cap, AIMD, pauses, credit reserve, rate."""

from __future__ import annotations

import asyncio
import time

import pytest

from syncengine.limits import Limiter, SlotTicket


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def make(fake: FakeTime, **kwargs: object) -> Limiter:
    return Limiter(clock=fake.clock, sleep=fake.sleep, **kwargs)  # type: ignore[arg-type]


async def hold(limiter: Limiter, release: asyncio.Event, records: int = 1) -> None:
    async with limiter.slot(records=records):
        await release.wait()


async def test_in_flight_never_exceeds_concurrency() -> None:
    """Twenty requests at concurrency 3 never have more than 3 in flight."""
    limiter = make(FakeTime(), concurrency=3)
    release = asyncio.Event()
    tasks = [asyncio.create_task(hold(limiter, release)) for _ in range(20)]
    await asyncio.sleep(0.01)
    assert limiter.in_flight == 3
    release.set()
    await asyncio.gather(*tasks)
    assert limiter.max_in_flight == 3
    assert limiter.in_flight == 0


async def test_heavy_writes_capped_at_ten_light_ones_not() -> None:
    """Writes of >10 records stay ≤ 10 in flight; small writes may use the rest."""
    limiter = make(FakeTime(), concurrency=25)
    release = asyncio.Event()
    heavy = [asyncio.create_task(hold(limiter, release, records=100)) for _ in range(15)]
    await asyncio.sleep(0.01)
    assert limiter.in_flight == 10
    light = [asyncio.create_task(hold(limiter, release, records=10)) for _ in range(10)]
    await asyncio.sleep(0.01)
    assert limiter.in_flight == 20
    release.set()
    await asyncio.gather(*heavy, *light)


async def test_throttle_cuts_once_per_wave_and_learns_ceiling() -> None:
    """A wave of 429s halves the limit once and caps it under the refused level."""
    limiter = make(FakeTime(), concurrency=20)
    tickets = [SlotTicket(epoch=0, level=level, records=5) for level in range(20, 5, -1)]
    for ticket in tickets:
        limiter.on_throttled(ticket)
    assert limiter.throttled == 15
    assert limiter.limit == 5  # halved to 10, then the ceiling 6 - 1 = 5


async def test_additive_increase_stops_at_ceiling_until_probe_interval() -> None:
    """Successes grow the limit one step per round trip, up to the ceiling, then past it later."""
    fake = FakeTime()
    limiter = make(fake, concurrency=20, probe_interval_s=30.0)
    limiter.on_throttled(SlotTicket(epoch=0, level=9, records=1))  # limit 10, ceiling 8
    assert limiter.limit == 8
    for _ in range(100):
        limiter.on_success()
    assert limiter.limit == 8
    fake.now += 31.0
    for _ in range(9):
        limiter.on_success()
    assert limiter.limit == 9


async def test_halving_from_a_new_wave() -> None:
    """A 429 of a request started after the last cut cuts again, down to 1 at least."""
    limiter = make(FakeTime(), concurrency=16)
    for _ in range(10):
        limiter.on_throttled(SlotTicket(epoch=limiter._epoch, level=16, records=1))
    assert limiter.limit == 1


async def test_persistent_429_at_one_in_flight_pauses_long() -> None:
    """Three 429s with one request in flight pause every sender, doubling each time."""
    fake = FakeTime()
    limiter = make(fake, concurrency=4, long_pause_base_s=60.0)
    for _ in range(3):
        limiter.on_throttled(SlotTicket(epoch=limiter._epoch, level=1, records=1))
    assert limiter.paused_until == pytest.approx(fake.now + 60.0)
    async with limiter.slot(records=1):
        pass
    assert fake.slept == [pytest.approx(60.0)]
    for _ in range(3):
        limiter.on_throttled(SlotTicket(epoch=limiter._epoch, level=1, records=1))
    assert limiter.paused_until == pytest.approx(fake.now + 120.0)
    assert limiter.long_pauses == 2


async def test_success_resets_the_long_pause_streak() -> None:
    """A success between 429s at one in flight means the credits are not spent: no pause."""
    fake = FakeTime()
    limiter = make(fake, concurrency=1)
    for _ in range(2):
        limiter.on_throttled(SlotTicket(epoch=limiter._epoch, level=1, records=1))
    limiter.on_success()
    limiter.on_throttled(SlotTicket(epoch=limiter._epoch, level=1, records=1))
    assert limiter.paused_until == 0.0


async def test_credit_reserve_pauses_then_probes_one_at_a_time() -> None:
    """Credits at the reserve pause the senders, then one request at a time until recovery."""
    fake = FakeTime()
    limiter = make(fake, concurrency=10, reserve_credits=1000, reserve_pause_s=600.0)
    limiter.on_credits_remaining(5000)
    assert limiter.paused_until == 0.0
    limiter.on_credits_remaining(900)
    start = fake.now
    async with limiter.slot(records=1):
        assert fake.now == pytest.approx(start + 600.0)
        assert limiter.limit == 1
    limiter.on_credits_remaining(None)
    assert limiter.limit == 10


async def test_no_reserve_configured_ignores_the_header() -> None:
    """Without reserve_credits the credits header changes nothing."""
    limiter = make(FakeTime(), concurrency=4)
    limiter.on_credits_remaining(0)
    assert (limiter.limit, limiter.paused_until) == (4, 0.0)


async def test_cancelled_waiter_takes_no_slot() -> None:
    """Cancelling a sender that waits for a slot leaves the counts consistent."""
    limiter = make(FakeTime(), concurrency=1)
    release = asyncio.Event()
    holder = asyncio.create_task(hold(limiter, release))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold(limiter, release))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await holder
    assert limiter.in_flight == 0
    assert limiter._waiters == []


async def test_rate_gate_is_asked_once_per_request() -> None:
    """Each slot passes the rate gate once, after a concurrency slot is taken."""

    class CountingGate:
        def __init__(self) -> None:
            self.calls = 0

        async def acquire(self) -> None:
            self.calls += 1

    gate = CountingGate()
    limiter = make(FakeTime(), concurrency=2, rate_gate=gate)
    for _ in range(5):
        async with limiter.slot(records=1):
            pass
    assert gate.calls == 5


async def test_requests_per_minute_uses_asyncio_throttle() -> None:
    """With 3 requests per (shortened) period, the 7th start waits two periods."""
    limiter = Limiter(concurrency=10, requests_per_minute=3, rate_period_s=0.1)
    started: list[float] = []
    t0 = time.monotonic()
    for _ in range(7):
        async with limiter.slot(records=1):
            started.append(time.monotonic() - t0)
    assert started[2] < 0.05
    assert started[3] >= 0.1
    assert started[6] >= 0.2


def test_invalid_settings_are_refused() -> None:
    """Concurrency below 1 or a zero rate is a programming error."""
    with pytest.raises(ValueError):
        Limiter(concurrency=0)
    with pytest.raises(ValueError):
        Limiter(concurrency=1, requests_per_minute=0)

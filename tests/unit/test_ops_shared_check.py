"""SharedCheck: one readiness check at a time, its answer kept for a while (fake clock)."""

from __future__ import annotations

import asyncio

import pytest

from syncengine.ops_server import SharedCheck


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class GatedCheck:
    """A check that counts its runs and answers when the test opens its gate."""

    def __init__(self) -> None:
        self.runs = 0
        self.running = 0
        self.most_running = 0
        self.gate = asyncio.Event()
        self.error: Exception | None = None

    async def __call__(self) -> dict[str, str | None]:
        self.runs += 1
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
            if self.error is not None:
                raise self.error
            return {"source": None, "run": str(self.runs)}
        finally:
            self.running -= 1


async def test_concurrent_callers_share_the_check_in_flight() -> None:
    """200 callers at once: the check runs once, and every caller gets its answer."""
    check = GatedCheck()
    shared = SharedCheck(check, cache_s=5, clock=FakeClock())
    callers = [asyncio.create_task(shared()) for _ in range(200)]
    await asyncio.sleep(0.01)
    check.gate.set()
    answers = await asyncio.gather(*callers)
    assert check.runs == 1
    assert check.most_running == 1
    assert all(answer == {"source": None, "run": "1"} for answer in answers)


async def test_answer_is_kept_for_cache_s_then_checked_again() -> None:
    """Within cache_s of the end the answer is reused; from cache_s on, a new check runs."""
    check = GatedCheck()
    check.gate.set()
    clock = FakeClock()
    shared = SharedCheck(check, cache_s=5, clock=clock)
    assert (await shared())["run"] == "1"
    clock.now += 4.9
    assert (await shared())["run"] == "1"
    clock.now += 0.1
    assert (await shared())["run"] == "2"
    assert check.runs == 2


async def test_a_failing_check_is_shared_and_kept_too() -> None:
    """A check that raises raises for every caller sharing it, and is not rerun within cache_s."""
    check = GatedCheck()
    check.error = ConnectionError("down")
    clock = FakeClock()
    shared = SharedCheck(check, cache_s=5, clock=clock)
    callers = [asyncio.create_task(shared()) for _ in range(3)]
    await asyncio.sleep(0)
    check.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    with pytest.raises(ConnectionError):
        await shared()
    assert check.runs == 1
    clock.now += 5
    check.error = None
    assert (await shared())["run"] == "2"


async def test_a_caller_giving_up_does_not_cancel_the_check_for_the_others() -> None:
    """One caller timing out leaves the shared check running for the rest."""
    check = GatedCheck()
    shared = SharedCheck(check, cache_s=5, clock=FakeClock())
    impatient = asyncio.create_task(shared())
    patient = asyncio.create_task(shared())
    await asyncio.sleep(0)
    impatient.cancel()
    await asyncio.sleep(0)
    check.gate.set()
    assert (await patient)["run"] == "1"
    assert impatient.cancelled()
    assert check.runs == 1


async def test_a_stuck_check_is_bounded_by_its_timeout() -> None:
    """A check that never answers ends in TimeoutError after timeout_s instead of holding all."""
    check = GatedCheck()
    clock = FakeClock()
    shared = SharedCheck(check, cache_s=5, timeout_s=0.05, clock=clock)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(shared(), 2)
    clock.now += 5
    check.gate.set()
    assert (await shared())["run"] == "2"

"""TokenProvider against the simulator's token endpoint: single flight, cache, limits, secrets."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import structlog

from syncengine.crm.auth import credential_key
from syncengine.crm.client import WriteRequest
from syncengine.crm.token_store import MemoryTokenStore
from syncengine.errors import AuthenticationError, FatalError
from syncengine.model import Operation, Verdict
from syncengine.sim.server import SimHandle, running_simulator
from tests.crm.conftest import (
    DEMO_CLIENT_ID,
    DEMO_REFRESH,
    DEMO_SECRET,
    FakeTime,
    admin,
    crm_stack,
    seed,
    stats,
)


def one_update(record_id: str) -> WriteRequest:
    return WriteRequest("Leads", Operation.UPDATE, [{"id": record_id, "Company": "X"}])


def sim_linked_sleep(fake: FakeTime, sim: SimHandle) -> Any:
    """A fake sleep that moves the simulator's clock too, so its windows pass alike."""

    async def sleep(seconds: float) -> None:
        sim.state.clock.advance(max(0.0, seconds))
        await fake.sleep(seconds)

    return sleep


async def mint_directly(sim: SimHandle, times: int) -> None:
    """Mint tokens as another process would, without our provider."""
    form = {
        "grant_type": "refresh_token",
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_SECRET,
        "refresh_token": DEMO_REFRESH,
    }
    async with aiohttp.ClientSession() as session:
        for _ in range(times):
            async with session.post(sim.token_url, data=form) as response:
                assert "access_token" in await response.json()


async def test_twenty_senders_meeting_an_expired_token_mint_once() -> None:
    """20 concurrent writes after the token expired cause exactly one new mint."""
    fake = FakeTime()
    async with (
        running_simulator(admin=True) as sim,
        crm_stack(sim.base_url, clock=fake.clock, sleep=fake.sleep) as stack,
    ):
        ids = await seed(sim.base_url, 20)
        await stack.tokens.token()
        fake.now += 3600.0
        await admin(sim.base_url, "POST", "clock", {"advance_s": 3600.0})
        outcomes = await asyncio.gather(*(stack.client.write(one_update(i)) for i in ids))
        counts = await stats(sim.base_url)
    assert all(o[0].verdict is Verdict.SYNCED for o in outcomes)
    assert counts["token_mints"] == 2
    assert stack.tokens.mints == 2
    assert counts["by_code"].get("INVALID_TOKEN", 0) == 0  # refreshed before use


async def test_twenty_senders_rejected_with_401_cause_one_refresh() -> None:
    """20 writes whose token the CRM rejects (401) refresh once and all succeed on resend."""
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        ids = await seed(sim.base_url, 20)
        old_token = await stack.tokens.token()
        sim.state.tokens.revoke_all()  # the CRM forgets the token; the provider does not know
        with structlog.testing.capture_logs() as logs:
            outcomes = await asyncio.gather(*(stack.client.write(one_update(i)) for i in ids))
        counts = await stats(sim.base_url)
        new_token = await stack.tokens.token()
    assert new_token != old_token
    assert any(event["event"] == "auth.token_rejected" for event in logs)
    for event in logs:
        for secret in (DEMO_SECRET, DEMO_REFRESH, old_token, new_token):
            assert secret not in repr(event)
    assert all(o[0].verdict is Verdict.SYNCED for o in outcomes)
    assert counts["by_code"]["INVALID_TOKEN"] == 20
    assert counts["token_mints"] == 2
    assert stack.client.stats.token_refreshes == 20


async def test_cron_runs_within_ten_minutes_mint_one_token() -> None:
    """30 short runs, 19 s apart, sharing a token store, mint one token in total."""
    fake = FakeTime()
    store = MemoryTokenStore()
    async with running_simulator(admin=True) as sim:
        ids = await seed(sim.base_url, 1)
        for _ in range(30):
            async with crm_stack(sim.base_url, store=store, clock=fake.clock) as stack:
                outcomes = await stack.client.write(one_update(ids[0]))
                assert outcomes[0].verdict is Verdict.SYNCED
            fake.now += 19.0
            sim.state.clock.advance(19.0)
        counts = await stats(sim.base_url)
    assert counts["token_mints"] == 1
    assert counts["requests"] == 31


async def test_revoked_refresh_token_is_fatal_after_one_call_and_leaks_nothing() -> None:
    """Revocation: every sender gets AuthenticationError after ≤ 1 token call; nothing leaks."""
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        ids = await seed(sim.base_url, 20)
        access_token = await stack.tokens.token()
        await admin(sim.base_url, "POST", "config", {"revoked": True})
        before = await stats(sim.base_url)
        with structlog.testing.capture_logs() as logs:
            results = await asyncio.gather(
                *(stack.client.write(one_update(i)) for i in ids), return_exceptions=True
            )
            with pytest.raises(AuthenticationError):
                await stack.tokens.token()
        after = await stats(sim.base_url)
    assert all(isinstance(r, AuthenticationError) for r in results)
    calls = (after["token_mints"] + after["token_refusals"]) - (
        before["token_mints"] + before["token_refusals"]
    )
    assert calls <= 1
    assert "invalid_code" in str(results[0])
    texts = [repr(event) for event in logs] + [str(r) for r in results] + [repr(results[0])]
    assert any("auth.refused" in text for text in texts)
    for text in texts:
        for secret in (DEMO_SECRET, DEMO_REFRESH, access_token):
            assert secret not in text


async def test_wrong_client_is_fatal_naming_the_cause_not_the_secret() -> None:
    """An unknown client id raises AuthenticationError naming invalid_client, without secrets."""
    async with (
        running_simulator(admin=True) as sim,
        crm_stack(sim.base_url, client_id="someone-else") as stack,
    ):
        with pytest.raises(AuthenticationError) as caught:
            await stack.client.write(one_update("4876876000000000001"))
    assert "invalid_client" in str(caught.value)
    assert DEMO_SECRET not in str(caught.value)
    assert DEMO_REFRESH not in str(caught.value)


@pytest.mark.parametrize("legacy", [False, True])
async def test_expires_in_read_in_the_right_unit(legacy: bool) -> None:
    """expires_in is seconds, or milliseconds when expires_in_sec is present; both mean 1 h."""
    fake = FakeTime()
    store = MemoryTokenStore()
    async with (
        running_simulator(admin=True, legacy_expires_in=legacy) as sim,
        crm_stack(sim.base_url, store=store, clock=fake.clock) as stack,
    ):
        await stack.tokens.token()
        state = await store.load(credential_key(sim.base_url, DEMO_CLIENT_ID, DEMO_REFRESH))
    assert state is not None
    assert state.expires_at - state.minted_at == pytest.approx(3600.0)
    assert stack.tokens.api_domain == sim.base_url


async def test_refresh_ahead_of_expiry_not_on_every_call() -> None:
    """A 2 s token is reused until a tenth of its life remains, then refreshed early."""
    fake = FakeTime()
    async with (
        running_simulator(admin=True, token_ttl_s=2) as sim,
        crm_stack(sim.base_url, clock=fake.clock) as stack,
    ):
        first = await stack.tokens.token()
        fake.now += 1.7
        assert await stack.tokens.token() == first
        fake.now += 0.15  # 1.85 s: inside the last 0.2 s
        second = await stack.tokens.token()
    assert second != first
    assert stack.tokens.mints == 2


async def test_never_more_than_ten_token_calls_per_ten_minutes() -> None:
    """Twelve rejections in a row: the 11th mint waits for the rolling window, no Access Denied."""
    fake = FakeTime()
    async with running_simulator(admin=True) as sim:
        async with crm_stack(
            sim.base_url, clock=fake.clock, sleep=sim_linked_sleep(fake, sim)
        ) as stack:
            for _ in range(12):
                await stack.tokens.invalidate(await stack.tokens.token())
            await stack.tokens.token()
        counts = await stats(sim.base_url)
    assert stack.tokens.token_calls == 13
    assert counts["token_refusals"] == 0
    assert sum(fake.slept) == pytest.approx(600.0)


async def test_access_denied_keeps_a_still_valid_token() -> None:
    """Refused by the mint throttle near expiry, the provider keeps its still-valid token."""
    fake = FakeTime()
    async with (
        running_simulator(admin=True) as sim,
        crm_stack(sim.base_url, clock=fake.clock) as stack,
    ):
        first = await stack.tokens.token()
        await mint_directly(sim, 9)  # another process spends the window
        fake.now += 3400.0  # inside the 300 s early-refresh margin, still valid
        assert await stack.tokens.token() == first
        assert await stack.tokens.token() == first
        counts = await stats(sim.base_url)
    assert counts["token_refusals"] == 1


async def test_access_denied_without_a_valid_token_waits_and_retries() -> None:
    """With no usable token, Access Denied makes the provider wait (doubling), then mint."""
    fake = FakeTime()
    async with running_simulator(admin=True) as sim:
        await mint_directly(sim, 10)
        async with crm_stack(
            sim.base_url, clock=fake.clock, sleep=sim_linked_sleep(fake, sim)
        ) as stack:
            token = await stack.tokens.token()
        counts = await stats(sim.base_url)
    assert token
    assert fake.slept[:3] == [60.0, 120.0, 240.0]
    assert 1 <= counts["token_refusals"] <= 4


async def test_second_401_right_after_a_fresh_token_is_fatal() -> None:
    """If even a just-minted token is refused, the run stops instead of refreshing forever."""
    async with (
        running_simulator(admin=True, token_ttl_s=0.0) as sim,
        crm_stack(sim.base_url) as stack,
    ):
        ids = await seed(sim.base_url, 1)
        with pytest.raises(FatalError, match="right after a token refresh"):
            await stack.client.write(one_update(ids[0]))
        counts = await stats(sim.base_url)
    assert counts["token_mints"] == 2

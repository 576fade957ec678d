"""The token endpoint: grant shapes, mint window, live-token cap, expiry, revocation."""

from __future__ import annotations

import pytest

from syncengine.sim import SimHandle
from tests.sim.conftest import TOKEN_FORM, Api


async def test_refresh_grant_answers_token_in_seconds(api: Api, sim: SimHandle) -> None:
    """A good refresh grant answers access_token, api_domain, Bearer and expires_in seconds."""
    reply = await api.mint()
    assert reply.status == 200
    assert set(reply.body) == {"access_token", "api_domain", "token_type", "expires_in"}
    assert reply.body["token_type"] == "Bearer"
    assert reply.body["expires_in"] == 3600
    assert reply.body["api_domain"] == sim.base_url


async def test_parameters_in_query_string_are_accepted(api: Api, sim: SimHandle) -> None:
    """The grant's parameters may come in the query string instead of a form body."""
    async with api.session.post(sim.token_url, params=TOKEN_FORM) as resp:
        body = await resp.json()
    assert "access_token" in body


async def test_legacy_expires_in_is_milliseconds_with_seconds_key(api: Api, sim: SimHandle) -> None:
    """With the legacy switch expires_in is in ms and expires_in_sec carries seconds."""
    sim.state.set_config({"legacy_expires_in": True, "token_ttl_s": 120})
    reply = await api.mint()
    assert reply.body["expires_in"] == 120_000
    assert reply.body["expires_in_sec"] == 120


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"client_id": "other"}, "invalid_client"),
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"refresh_token": "unknown"}, "invalid_code"),
        ({"grant_type": "authorization_code"}, "invalid_code"),
    ],
)
async def test_refusals_use_error_key_and_status_200(
    api: Api, overrides: dict[str, str], error: str
) -> None:
    """Refused grants answer HTTP 200 with an `error` body and never echo secrets."""
    reply = await api.mint(**overrides)
    assert reply.status == 200
    assert reply.body == {"error": error}
    assert (await api.stats())["token_refusals"] == 1


async def test_error_status_switch_gives_400(api: Api, sim: SimHandle) -> None:
    """The token_error_status switch makes refusals answer 400."""
    sim.state.set_config({"token_error_status": 400})
    reply = await api.mint(client_id="other")
    assert reply.status == 400
    assert reply.body == {"error": "invalid_client"}


async def test_eleventh_mint_in_window_is_access_denied(api: Api, sim: SimHandle) -> None:
    """The 11th mint within ten minutes gets the Access Denied body until the window passes."""
    for _ in range(10):
        assert "access_token" in (await api.mint()).body
    denied = await api.mint()
    assert denied.status == 200
    assert denied.body["error"] == "Access Denied"
    assert denied.body["status"] == "failure"
    assert "too many requests continuously" in denied.body["error_description"]
    sim.state.clock.advance(601)
    assert "access_token" in (await api.mint()).body
    stats = await api.stats()
    assert (stats["token_mints"], stats["token_refusals"]) == (11, 1)


async def test_minting_past_live_cap_evicts_oldest_token(api: Api, sim: SimHandle) -> None:
    """Past the live-token cap the oldest token silently dies with INVALID_TOKEN."""
    sim.state.set_config({"live_token_cap": 3, "mint_limit": 100})
    tokens = [str((await api.mint()).body["access_token"]) for _ in range(4)]
    await api.seed_leads(1)
    body = {"data": [{"id": "4876876000000000001", "Company": "Evicted Inc"}]}
    oldest = await api.request(
        "PUT", "/crm/v2/Leads", body=body, headers={"Authorization": f"Zoho-oauthtoken {tokens[0]}"}
    )
    newest = await api.request(
        "PUT", "/crm/v2/Leads", body=body, headers={"Authorization": f"Zoho-oauthtoken {tokens[3]}"}
    )
    assert oldest.status == 401
    assert oldest.body == {
        "code": "INVALID_TOKEN",
        "details": {},
        "message": "invalid oauth token",
        "status": "error",
    }
    assert newest.status == 200


async def test_token_expires_after_ttl(api: Api, sim: SimHandle) -> None:
    """A token stops working once its TTL has passed on the simulator's clock."""
    await api.seed_leads(1)
    body = {"data": [{"id": "4876876000000000001", "Company": "Later Ltd"}]}
    assert (await api.request("PUT", "/crm/v2/Leads", body=body)).status == 200
    sim.state.clock.advance(3600)
    expired = await api.request("PUT", "/crm/v2/Leads", body=body)
    assert expired.status == 401
    assert expired.body["code"] == "INVALID_TOKEN"


async def test_revoking_kills_tokens_and_refuses_refresh(api: Api) -> None:
    """A revoked refresh token answers invalid_code and its access tokens INVALID_TOKEN."""
    await api.seed_leads(1)
    body = {"data": [{"id": "4876876000000000001", "Company": "Before Revoke"}]}
    assert (await api.request("PUT", "/crm/v2/Leads", body=body)).status == 200
    assert (await api.admin("POST", "config", {"revoked": True})).status == 200
    after = await api.request("PUT", "/crm/v2/Leads", body=body)
    assert after.status == 401
    assert after.body["code"] == "INVALID_TOKEN"
    assert (await api.mint()).body == {"error": "invalid_code"}

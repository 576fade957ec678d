"""The accounts server's state: which access tokens live, and who may mint more.

Rules (crm-api.md §2.2): at most `mint_limit` new access tokens per refresh
token per rolling `mint_window_s` (then the `Access Denied` body); at most
`live_token_cap` live tokens per refresh token, minting one more silently
evicts the oldest; tokens expire after `token_ttl_s`; a revoked refresh token
answers `invalid_code` and its access tokens die. Time comes from `Clock`, so
tests step it instead of sleeping for ten minutes.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Final

from syncengine.sim.config import SimConfig

ACCESS_DENIED: Final[dict[str, str]] = {
    "error_description": (
        "You have made too many requests continuously. Please try again after some time."
    ),
    "error": "Access Denied",
    "status": "failure",
}


class Clock:
    """Monotonic seconds plus an offset that tests (and `/__admin/clock`) advance."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def now(self) -> float:
        """Seconds on the simulator's clock."""
        return time.monotonic() + self.offset_s

    def advance(self, seconds: float) -> None:
        """Move the clock forward: tokens expire and windows pass without waiting."""
        self.offset_s += seconds


@dataclass(slots=True)
class TokenGrant:
    """The outcome of one token request: a body to answer and whether it minted."""

    body: dict[str, Any]
    minted: bool


@dataclass(slots=True)
class TokenServer:
    """Mint history and live tokens of the configured refresh token."""

    clock: Clock
    mint_times: deque[float] = field(default_factory=deque)
    live: OrderedDict[str, float] = field(default_factory=OrderedDict)
    serial: int = 0

    def reset(self) -> None:
        """Forget every token and mint."""
        self.mint_times.clear()
        self.live.clear()

    def revoke_all(self) -> None:
        """Kill every live access token (the refresh token was revoked)."""
        self.live.clear()

    def _refusal(self, config: SimConfig, params: dict[str, str]) -> dict[str, Any] | None:
        """The error body for a request that must not mint, else None."""
        if params.get("client_id") != config.client_id:
            return {"error": "invalid_client"}
        if params.get("client_secret") != config.client_secret:
            return {"error": "invalid_client"}
        grant = params.get("grant_type")
        if grant != "refresh_token":
            return {
                "error": "invalid_code"
                if grant == "authorization_code"
                else "unsupported_grant_type"
            }
        if config.revoked or params.get("refresh_token") != config.refresh_token:
            return {"error": "invalid_code"}
        now = self.clock.now()
        while self.mint_times and self.mint_times[0] <= now - config.mint_window_s:
            self.mint_times.popleft()
        if len(self.mint_times) >= config.mint_limit:
            return dict(ACCESS_DENIED)
        return None

    def request(self, config: SimConfig, params: dict[str, str], api_domain: str) -> TokenGrant:
        """Answer one refresh-token grant; the body never echoes the secrets."""
        refusal = self._refusal(config, params)
        if refusal is not None:
            return TokenGrant(body=refusal, minted=False)
        now = self.clock.now()
        self.mint_times.append(now)
        self.serial += 1
        token = f"1000.{self.serial:06d}.{secrets.token_hex(16)}"
        self.live[token] = now + config.token_ttl_s
        while len(self.live) > config.live_token_cap:
            self.live.popitem(last=False)
        ttl = int(config.token_ttl_s)
        body: dict[str, Any] = {
            "access_token": token,
            "api_domain": api_domain,
            "token_type": "Bearer",
            "expires_in": ttl * 1000 if config.legacy_expires_in else ttl,
        }
        if config.legacy_expires_in:
            body["expires_in_sec"] = ttl
        return TokenGrant(body=body, minted=True)

    def is_valid(self, config: SimConfig, token: str) -> bool:
        """Whether `token` is live: minted here, not evicted, expired or revoked."""
        expires_at = self.live.get(token)
        if expires_at is None or config.revoked:
            return False
        if self.clock.now() >= expires_at:
            del self.live[token]
            return False
        return True

"""The access-token provider: refresh-token grant, single flight, early refresh, cache.

The CRM client asks `token()` before each request and calls `invalidate()`
after a 401 `INVALID_TOKEN`. The provider guarantees (crm-api.md §2, §5):

* single flight: any number of concurrent callers meeting an expired or
  rejected token cause one call to the accounts server (one `asyncio.Lock`,
  and a rejection only counts if the rejected token is still the current one);
* early refresh: 5 minutes before expiry, or a tenth of the lifetime when that
  is shorter, so short-lived tokens are not minted on every call;
* a persisted cache (`TokenStore`, keyed by a hash of the credentials) so a cron
  job started every minute reuses the previous run's token;
* with a `refresh_guard` (a lock shared by processes, `syncengine.shared`),
  single flight across processes too: the slow path runs under it, so the
  first process mints and the others, once in, find its token in the store;
* at most `max_mints` (10) token-endpoint calls per rolling `mint_window_s`
  (600 s), counted across processes through the store; past that, and after
  `Access Denied`, it keeps using a still-valid token or waits;
* fatal answers (`invalid_code`, `invalid_client`, no `access_token`) raise
  `AuthenticationError`, remembered so later callers fail without a new call.

Secrets go in a form body, never in URLs, logs or exception text.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeGuard

import aiohttp
import orjson
import structlog

from syncengine.crm.proxy import route_for
from syncengine.crm.responses import REDIRECTED
from syncengine.crm.token_store import TokenState, TokenStore
from syncengine.errors import AuthenticationError, TransportError
from syncengine.logs import register_secret

log = structlog.get_logger(__name__)

#: Refresh this long before expiry at most (crm-api.md §2.2: "about 5 minutes early").
EARLY_REFRESH_S = 300.0
#: A token this close to expiry is not handed out even as a fallback.
EXPIRY_SAFETY_S = 5.0
#: Lifetime assumed when the answer names none (Zoho's documented hour).
DEFAULT_LIFETIME_S = 3600.0
#: The accounts server's throttle answer (crm-api.md §2.1).
ACCESS_DENIED = "Access Denied"


def credential_key(accounts_url: str, client_id: str, refresh_token: str) -> str:
    """The store key for one set of credentials: a SHA-256 hex digest, never the secret."""
    material = "\0".join((accounts_url.rstrip("/"), client_id, refresh_token))
    return hashlib.sha256(material.encode()).hexdigest()


def refresh_margin_s(lifetime_s: float) -> float:
    """How long before expiry to refresh: 300 s, or lifetime/10 when that is shorter."""
    return max(0.0, min(EARLY_REFRESH_S, lifetime_s / 10.0))


def lifetime_s(answer: dict[str, Any]) -> float:
    """Token lifetime in seconds from a token answer.

    `expires_in` is seconds, except in the legacy form that also carries
    `expires_in_sec`, where `expires_in` is milliseconds (the mix-up behind
    hourly INVALID_TOKENs, crm-api.md §2.1).
    """
    expires_in = answer.get("expires_in")
    legacy = answer.get("expires_in_sec")
    if _is_number(expires_in) and legacy is not None:
        return float(expires_in) / 1000.0
    if _is_number(expires_in):
        return float(expires_in)
    if _is_number(legacy):
        return float(legacy)
    return DEFAULT_LIFETIME_S


def recent_mints(mint_times: tuple[float, ...], now: float, window_s: float) -> tuple[float, ...]:
    """The token-endpoint calls still inside the rolling window, oldest first."""
    return tuple(sorted(t for t in mint_times if now - t < window_s))


def merge_mints(first: tuple[float, ...], second: tuple[float, ...]) -> tuple[float, ...]:
    """Two views of one mint history (ours and the store's), without counting a call twice.

    A multiset union: a time present in both counts as many times as in the
    view that has it most, so equal timestamps are not collapsed into one.
    """
    return tuple(sorted((Counter(first) | Counter(second)).elements()))


def fresh_token(state: TokenState | None, now: float, rejected: str | None) -> str | None:
    """The cached token when it may be used without refreshing first, else None."""
    if state is None or state.access_token is None or state.access_token == rejected:
        return None
    margin = refresh_margin_s(state.expires_at - state.minted_at)
    return state.access_token if now < state.expires_at - margin else None


def fallback_token(state: TokenState | None, now: float, rejected: str | None) -> str | None:
    """The cached token when it may serve while minting must wait, else None."""
    if state is None or state.access_token is None or state.access_token == rejected:
        return None
    return state.access_token if now < state.expires_at - EXPIRY_SAFETY_S else None


def _is_number(value: object) -> TypeGuard[int | float]:
    """True for JSON numbers (not booleans)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class _Denied:
    """The accounts server answered `Access Denied`: wait before calling again."""


class TokenProvider:
    """Hands out a valid access token for one client id and refresh token."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        accounts_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        store: TokenStore,
        timeout_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_mints: int = 10,
        mint_window_s: float = 600.0,
        denied_wait_s: float = 60.0,
        max_denied_wait_s: float = 1800.0,
        transient_tries: int = 3,
        proxy: str | None = None,
        environ: Mapping[str, str] | None = None,
        refresh_guard: Callable[[str], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self._session = session
        self._token_url = accounts_url.rstrip("/") + "/oauth/v2/token"
        #: The proxy for the token endpoint (`[crm] proxy`, else the environment's), or None.
        self._proxy = route_for(self._token_url, configured=proxy, environ=environ)
        self._form = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
        }
        self._secrets = (client_secret, refresh_token)
        self._key = credential_key(accounts_url, client_id, refresh_token)
        self._store = store
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._sleep = sleep
        self._max_mints = max_mints
        self._window_s = mint_window_s
        self._denied_wait_s = denied_wait_s
        self._max_denied_wait_s = max_denied_wait_s
        self._transient_tries = transient_tries
        self._lock = asyncio.Lock()
        self._guard = refresh_guard
        self._state: TokenState | None = None
        self._rejected: str | None = None
        self._fatal: AuthenticationError | None = None
        self._denied_until = 0.0
        self._denied_since: float | None = None
        self._denials = 0
        #: API domain from the last token answer (the base for CRM calls).
        self.api_domain: str | None = None
        #: Access tokens this provider obtained from the accounts server.
        self.mints = 0
        #: Calls this provider made to the token endpoint (failed ones included).
        self.token_calls = 0

    async def token(self) -> str:
        """A valid access token; calls the accounts server only when needed.

        Raises AuthenticationError (fatal) when the credentials are refused,
        TransportError when the token endpoint cannot be reached after retries.
        Safe to cancel: the lock is released and the store stays consistent.
        """
        if self._fatal is not None:
            raise self._fatal
        token = fresh_token(self._state, self._clock(), self._rejected)
        if token is not None:
            return token
        async with self._lock:
            if self._guard is None:
                return await self._token_locked()
            # A caller that queued behind one that just got a token must not take the guard.
            token = fresh_token(self._state, self._clock(), self._rejected)
            if token is not None and self._fatal is None:
                return token
            async with self._guard(self._key):
                return await self._token_locked()

    def valid_for_s(self) -> float | None:
        """Seconds the current token has left (negative once expired); None before any."""
        state = self._state
        if state is None or state.access_token is None:
            return None
        return state.expires_at - self._clock()

    async def invalidate(self, failed_token: str) -> None:
        """Mark `failed_token` rejected (after a 401) if it is still the current one.

        A token that was already replaced is ignored, so N senders reporting
        the same rejected token cause one refresh, not N.
        """
        async with self._lock:
            state = self._state
            if state is not None and state.access_token == failed_token:
                self._rejected = failed_token
                log.info("auth.token_rejected")

    async def _token_locked(self) -> str:
        """The slow path, under the lock: reuse, adopt from the store, or mint."""
        if self._fatal is not None:
            raise self._fatal
        await self._adopt_stored()
        while True:
            now = self._clock()
            token = fresh_token(self._state, now, self._rejected)
            if token is not None:
                return token
            wait_s = self._mint_wait_s(now)
            if wait_s <= 0:
                minted = await self._mint()
                if minted is not None:
                    return minted  # even a token whose lifetime is already short
                continue
            token = fallback_token(self._state, now, self._rejected)
            if token is not None:
                return token
            log.warning("auth.mint_deferred", wait_s=round(wait_s, 3))
            await self._sleep(wait_s)

    async def _adopt_stored(self) -> None:
        """Take the stored state when it is newer (another process or run minted)."""
        stored = await self._store.load(self._key)
        if stored is None:
            return
        register_secret(stored.access_token)
        current = self._state
        if current is None or stored.minted_at > current.minted_at:
            if current is None and stored.access_token is not None:
                log.info("auth.token_loaded", expires_at=stored.expires_at)
            merged = merge_mints(stored.mint_times, self._mint_times())
            self._state = _with_mints(stored, merged)
            if stored.api_domain is not None:
                self.api_domain = stored.api_domain
        elif current is not None:
            self._state = _with_mints(current, merge_mints(stored.mint_times, current.mint_times))

    def _mint_times(self) -> tuple[float, ...]:
        """Recent token-endpoint calls known to this provider."""
        return () if self._state is None else self._state.mint_times

    def _mint_wait_s(self, now: float) -> float:
        """Seconds until a token-endpoint call is allowed (≤ 0: now)."""
        wait_s = self._denied_until - now
        recent = recent_mints(self._mint_times(), now, self._window_s)
        if len(recent) >= self._max_mints:
            wait_s = max(wait_s, recent[len(recent) - self._max_mints] + self._window_s - now)
        return wait_s

    async def _mint(self) -> str | None:
        """One token-endpoint call (with transient retries); the new token, None if denied."""
        answer = await self._call_with_retries()
        now = self._clock()
        if isinstance(answer, _Denied):
            self._on_denied(now)
            return None
        self._denied_since = None
        self._denials = 0
        return await self._on_minted(answer, now)

    async def _call_with_retries(self) -> dict[str, Any] | _Denied:
        """Call the token endpoint; retry network failures and 5xx a few times."""
        failure = "no attempt"
        for attempt in range(1, self._transient_tries + 1):
            if attempt > 1:
                await self._sleep(min(30.0, 2.0 ** (attempt - 2)))
                if self._mint_wait_s(self._clock()) > 0:
                    break  # failed calls spent the mint budget: do not add more
            await self._record_call()
            try:
                return await self._call_once()
            except TransportError as exc:
                failure = str(exc)
                log.warning("auth.token_call_failed", attempt=attempt, reason=failure)
        raise TransportError(f"token endpoint unavailable: {failure}")

    async def _record_call(self) -> None:
        """Count a call before it is made: the server may mint even if we never hear back."""
        now = self._clock()
        self.token_calls += 1
        mints = (*recent_mints(self._mint_times(), now, self._window_s), now)
        base = self._state or TokenState(None, None, expires_at=0.0, minted_at=0.0)
        self._state = _with_mints(base, mints)
        await self._store.save(self._key, self._state)

    async def _call_once(self) -> dict[str, Any] | _Denied:
        """POST the grant; return the success answer, `_Denied`, or raise.

        The HTTP status is ignored (Zoho answers errors with 200 or 400): the
        body decides. Raises TransportError (retry) or AuthenticationError.
        """
        try:
            async with self._session.post(
                self._token_url,
                data=self._form,
                headers=None if self._proxy is None else self._proxy.request_headers(),
                timeout=self._timeout,
                # aiohttp drops the Authorization header on a redirect, not the form
                # body: following one would post the secret and refresh token elsewhere.
                allow_redirects=False,
                proxy=None if self._proxy is None else self._proxy.url,
                proxy_headers=None if self._proxy is None else self._proxy.connect_headers(),
            ) as response:
                status = response.status
                body = await response.read()
        except TimeoutError as exc:
            raise TransportError("timeout") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(type(exc).__name__) from exc
        if 300 <= status < 400:
            raise self._fail(
                f"the accounts server answered HTTP {status} {REDIRECTED}; redirects are "
                "not followed: check crm.accounts_url"
            )
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise TransportError(f"HTTP {status} with a body that is not JSON") from None
        if not isinstance(answer, dict):
            raise TransportError(f"HTTP {status} with a body that is not an object")
        return self._interpret(status, answer)

    def _interpret(self, status: int, answer: dict[str, Any]) -> dict[str, Any] | _Denied:
        """Decide on a decoded token answer."""
        if isinstance(answer.get("access_token"), str) and answer["access_token"]:
            return answer
        error = answer.get("error")
        if error == ACCESS_DENIED:
            return _Denied()
        if status >= 500:
            raise TransportError(f"HTTP {status}")
        if isinstance(error, str) and error:
            raise self._fail(f"the accounts server refused the refresh-token grant: {error}")
        raise self._fail("the token answer has no access_token")

    def _fail(self, reason: str) -> AuthenticationError:
        """Remember a fatal refusal (later callers fail without a call) and return it."""
        self._fatal = AuthenticationError(self._redact(reason)[:300])
        log.error("auth.refused", reason=str(self._fatal))
        return self._fatal

    def _redact(self, text: str) -> str:
        """`text` with any secret replaced: server text is not trusted to omit them."""
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def _on_denied(self, now: float) -> None:
        """`Access Denied`: no call until the rolling window has room again."""
        if self._denied_since is None:
            self._denied_since = now
        if now - self._denied_since > self._max_denied_wait_s:
            raise self._fail("the accounts server keeps answering Access Denied")
        self._denials += 1
        # The window's other mints are unknown: wait 60 s, doubling, up to the window.
        exponent = min(self._denials - 1, 20)
        wait_s = min(self._window_s, self._denied_wait_s * 2.0**exponent)
        self._denied_until = now + wait_s
        log.warning("auth.access_denied", wait_s=round(wait_s, 3))

    async def _on_minted(self, answer: dict[str, Any], now: float) -> str:
        """Keep and persist a fresh token."""
        life_s = lifetime_s(answer)
        api_domain = answer.get("api_domain")
        if isinstance(api_domain, str) and api_domain:
            self.api_domain = api_domain
        token = str(answer["access_token"])
        register_secret(token)  # never printable, whatever a later log line carries
        self._state = TokenState(
            access_token=token,
            api_domain=self.api_domain,
            expires_at=now + life_s,
            minted_at=now,
            mint_times=recent_mints(self._mint_times(), now, self._window_s),
        )
        self._rejected = None
        self.mints += 1
        await self._store.save(self._key, self._state)
        log.info("auth.token_minted", lifetime_s=life_s, mints=self.mints)
        return token


def _with_mints(state: TokenState, mint_times: tuple[float, ...]) -> TokenState:
    """`state` with another mint history."""
    return TokenState(
        access_token=state.access_token,
        api_domain=state.api_domain,
        expires_at=state.expires_at,
        minted_at=state.minted_at,
        mint_times=mint_times,
    )

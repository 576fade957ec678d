"""Where the access token lives between calls and between processes.

A cron job started every minute must reuse the token the previous run minted
(the accounts server allows only ten new tokens per refresh token in ten
minutes), so the provider persists the token, its expiry and the times of its
recent mints through this small interface. The journal implements it for the
engine; `MemoryTokenStore` serves library use and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TokenState:
    """A cached access token and the mint history of its refresh token.

    Times are wall-clock epoch seconds (`time.time()`), because they must mean
    the same thing to the next process. `mint_times` holds the mints of the
    last ten minutes, oldest first, so the provider can stay under the limit
    across processes.
    """

    access_token: str | None
    api_domain: str | None
    expires_at: float
    minted_at: float
    mint_times: tuple[float, ...] = ()


class TokenStore(Protocol):
    """Persists one `TokenState` per credential key (a hash, never the secret)."""

    async def load(self, key: str) -> TokenState | None:
        """The stored state for `key`, or None when nothing is stored."""
        ...

    async def save(self, key: str, state: TokenState) -> None:
        """Store `state` for `key`, replacing what was there."""
        ...


class MemoryTokenStore:
    """A process-local store: the default for library use and for tests."""

    def __init__(self) -> None:
        self._states: dict[str, TokenState] = {}

    async def load(self, key: str) -> TokenState | None:
        """The stored state for `key`, or None."""
        return self._states.get(key)

    async def save(self, key: str, state: TokenState) -> None:
        """Keep `state` for `key` in memory."""
        self._states[key] = state

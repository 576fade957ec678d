"""The access-token cache in the journal: `TokenStore` for the auth provider.

A cron job started every minute opens the same journal as the last one, so
the token minted by the previous run (and the times of recent mints, which
the accounts server limits) is found here instead of being minted again.
The row key is already a hash of the credentials, never a secret; the token
itself is why the journal file is mode 0600.
"""

from __future__ import annotations

import orjson

from syncengine.crm.token_store import TokenState
from syncengine.journal.store import Journal

_LOAD = """
SELECT access_token, api_domain, expires_at, minted_at, mint_times FROM tokens WHERE key = ?
"""

_SAVE = """
INSERT INTO tokens (key, access_token, api_domain, expires_at, minted_at, mint_times)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET access_token = excluded.access_token,
    api_domain = excluded.api_domain, expires_at = excluded.expires_at,
    minted_at = excluded.minted_at, mint_times = excluded.mint_times
"""


class JournalTokenStore:
    """Persists one `TokenState` per credential key in the journal's `tokens` table.

    Shares the journal's connection: use it while the journal is open.
    """

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def load(self, key: str) -> TokenState | None:
        """The stored state for `key`, or None when nothing is stored."""
        row = await self._journal._fetch_one(_LOAD, (key,))
        if row is None:
            return None
        access_token, api_domain, expires_at, minted_at, mint_times = row
        return TokenState(
            access_token=access_token,
            api_domain=api_domain,
            expires_at=expires_at,
            minted_at=minted_at,
            mint_times=tuple(orjson.loads(mint_times)),
        )

    async def save(self, key: str, state: TokenState) -> None:
        """Store `state` for `key`, replacing what was there (one autocommit write)."""
        await self._journal._write(
            _SAVE,
            (
                key,
                state.access_token,
                state.api_domain,
                state.expires_at,
                state.minted_at,
                orjson.dumps(list(state.mint_times)).decode(),
            ),
        )

"""The token cache kept in the journal for the next process."""

from __future__ import annotations

from pathlib import Path

from syncengine.config import JournalConfig
from syncengine.crm.token_store import TokenState, TokenStore
from syncengine.journal import Journal, JournalTokenStore
from tests.journal_backends import journal_target  # noqa: F401 - a fixture (both backends)


async def test_token_state_round_trips_across_opens(journal_target: Path | JournalConfig) -> None:  # noqa: F811
    """A saved state is loaded as saved by a later open of the same file."""
    state = TokenState(
        access_token="1000.abc",
        api_domain="https://www.zohoapis.eu",
        expires_at=1_700_003_600.5,
        minted_at=1_700_000_000.25,
        mint_times=(1_699_999_500.0, 1_700_000_000.25),
    )
    async with await Journal.open(journal_target, holder="run") as journal:
        store: TokenStore = JournalTokenStore(journal)
        await store.save("hash-1", state)
    async with await Journal.open(journal_target) as journal:
        assert await JournalTokenStore(journal).load("hash-1") == state


async def test_missing_key_loads_none(journal_target: Path | JournalConfig) -> None:  # noqa: F811
    """A key never saved loads as None, whatever else is stored."""
    async with await Journal.open(journal_target) as journal:
        store = JournalTokenStore(journal)
        await store.save("other", TokenState(None, None, 0.0, 0.0))
        assert await store.load("hash-1") is None


async def test_save_replaces_the_previous_state(journal_target: Path | JournalConfig) -> None:  # noqa: F811
    """Saving again under a key replaces the token, expiry and mint history."""
    async with await Journal.open(journal_target) as journal:
        store = JournalTokenStore(journal)
        await store.save("k", TokenState("old", "https://a", 10.0, 1.0, (1.0,)))
        await store.save("k", TokenState(None, None, 0.0, 2.0, ()))
        assert await store.load("k") == TokenState(None, None, 0.0, 2.0, ())

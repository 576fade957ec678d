"""Tests for the follow-mode helpers (sources/follow.py) and feeds that refuse to follow."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from syncengine.config import load_config
from syncengine.errors import ConfigError
from syncengine.sources import open_source
from syncengine.sources.follow import (
    RECONNECT_CAP_S,
    check_poll_interval,
    reconnect_delay_s,
    wait_for_wake,
)

CSV_CONFIG = """
[source]
type = "csv"
path = "feed.csv"

[crm]
api_domain = "http://127.0.0.1:8900"
accounts_url = "http://127.0.0.1:8900"
client_id = "c"
client_secret = "s"
refresh_token = "r"
"""


def test_reconnect_delay_doubles_up_to_the_cap() -> None:
    """Pauses double from the base on each failure and never exceed the cap."""
    delays = [reconnect_delay_s(failures, base_s=0.5) for failures in range(1, 10)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(delays) == RECONNECT_CAP_S
    assert reconnect_delay_s(10_000) == RECONNECT_CAP_S


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_check_poll_interval_refuses_non_positive_values(bad: float) -> None:
    """Zero, negative and NaN intervals are refused."""
    with pytest.raises(ValueError, match="poll_interval_s"):
        check_poll_interval(bad)


async def test_wait_for_wake_returns_early_when_set_and_clears() -> None:
    """A set event ends the wait at once (True) and is cleared for the next wait."""
    wake = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, wake.set)
    async with asyncio.timeout(1.0):
        assert await wait_for_wake(wake, 5.0) is True
    assert not wake.is_set()


async def test_wait_for_wake_times_out_without_a_wake_up() -> None:
    """Without a wake-up the wait ends after the timeout, returning False."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await wait_for_wake(asyncio.Event(), 0.03) is False
    assert loop.time() - started >= 0.03


async def test_csv_feed_refuses_to_follow(tmp_path: Path) -> None:
    """Following a CSV feed is a ConfigError naming the feed; reading it still works."""
    config_path = tmp_path / "config.toml"
    config_path.write_text(CSV_CONFIG, encoding="utf-8")
    (tmp_path / "feed.csv").write_bytes(b"id,Company\n1,Acme\n")
    source = open_source(load_config(config_path))
    with pytest.raises(ConfigError, match=r"feed\.csv: cannot follow this feed"):
        source.follow(None, poll_interval_s=1.0)
    assert [len(batch) async for batch in source.read(None)] == [1]

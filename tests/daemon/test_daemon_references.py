"""The daemon and `$ref`: a Contact waits for its Account, however late its line comes,
but not longer than `[daemon] reference_wait_s`.

A daemon's feed never ends, so "the end of the pass" cannot be when a
reference that never resolves fails, as it is for `run`: the wait is bounded
by time instead. Both run as real processes against the in-process simulator.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from syncengine.sim.server import SimHandle
from tests.daemon.test_daemon import append, running_daemon, wait_until
from tests.integration.conftest import failures_json, write_config

#: Long enough for the daemon to read, try and hold a change many times over.
SETTLE_S = 1.5


def keyed_config(folder: Path, sim: SimHandle, *, reference_wait_s: float | None = None) -> Path:
    """A daemon config inserting keyed records, with a short linger and poll interval."""
    path = write_config(folder, sim, operation="insert")
    wait = "" if reference_wait_s is None else f"reference_wait_s = {reference_wait_s}\n"
    path.write_text(
        path.read_text(encoding="utf-8")
        + f"\n[daemon]\nlinger_ms = 50\npoll_interval_s = 0.05\ngrace_s = 5\n{wait}",
        encoding="utf-8",
    )
    return path


def account_line(key: str) -> dict[str, Any]:
    return {"module": "Accounts", "key": key, "record": {"Account_Name": f"Account {key}"}}


def contact_line(key: str, account: str) -> dict[str, Any]:
    reference = {"$ref": {"module": "Accounts", "key": account}}
    return {
        "module": "Contacts",
        "key": key,
        "record": {"Last_Name": f"Contact {key}", "Account_Name": reference},
    }


def held(sim: SimHandle, module: str, field: str, value: str) -> dict[str, Any] | None:
    """The simulator's record of `module` whose `field` is `value` (with its id), or None."""
    for record_id, record in sim.state.store.records[module].items():
        if record.fields.get(field) == value:
            return {"id": record_id, **record.fields}
    return None


def assert_linked(sim: SimHandle, contact_key: str, account_key: str) -> None:
    """The CRM holds the Contact, its lookup naming the id of the CRM's copy of the Account."""
    account = held(sim, "Accounts", "Account_Name", f"Account {account_key}")
    contact = held(sim, "Contacts", "Last_Name", f"Contact {contact_key}")
    assert account is not None
    assert contact is not None
    assert contact["Account_Name"] == {"id": account["id"]}


async def test_a_contact_waits_for_an_account_appended_later(
    sim: SimHandle, tmp_path: Path
) -> None:
    """The Contact's line comes first and waits; once the Account's line is appended,
    the Contact is inserted linked to the Account's new id."""
    feed = tmp_path / "changes.jsonl"
    feed.touch()
    config = keyed_config(tmp_path, sim)
    async with running_daemon(config, tmp_path) as process:
        append(feed, [contact_line("c1", "a1"), account_line("a0")])
        await wait_until(
            lambda: held(sim, "Accounts", "Account_Name", "Account a0") is not None, timeout_s=10
        )
        await asyncio.sleep(SETTLE_S)
        assert held(sim, "Contacts", "Last_Name", "Contact c1") is None  # still waiting
        assert process.returncode is None

        append(feed, [account_line("a1")])
        await wait_until(
            lambda: held(sim, "Contacts", "Last_Name", "Contact c1") is not None, timeout_s=10
        )
    assert process.returncode == 0
    assert_linked(sim, "c1", "a1")
    assert await failures_json(config, tmp_path) == []


@pytest.mark.timeout(60)
async def test_a_reference_that_never_resolves_fails_after_reference_wait_s(
    sim: SimHandle, tmp_path: Path
) -> None:
    """`reference_wait_s = 1`: a Contact naming an Account that never comes fails
    UNRESOLVED_REFERENCE (with its line and key) no sooner than 1 s after it was read,
    while the daemon keeps serving: a Contact whose Account comes in time is linked."""
    feed = tmp_path / "changes.jsonl"
    feed.touch()
    config = keyed_config(tmp_path, sim, reference_wait_s=1)
    async with running_daemon(config, tmp_path) as process:
        await asyncio.sleep(0.5)  # let it start and mint its token
        appended = time.monotonic()
        append(feed, [contact_line("orphan", "never"), contact_line("c2", "a2")])
        await asyncio.sleep(0.3)
        append(feed, [account_line("a2")])

        failures: list[dict[str, Any]] = []
        while not failures:
            assert time.monotonic() - appended < 10, "the orphan never failed"
            failures = await failures_json(config, tmp_path)
            if not failures:
                await asyncio.sleep(0.05)
        waited_s = time.monotonic() - appended
        assert process.returncode is None
    assert waited_s >= 1.0, waited_s
    (failure,) = failures
    assert (failure["module"], failure["key"], failure["code"], failure["position"]) == (
        "Contacts",
        "orphan",
        "UNRESOLVED_REFERENCE",
        1,
    )
    assert "never" in failure["message"]
    assert held(sim, "Contacts", "Last_Name", "Contact orphan") is None
    assert_linked(sim, "c2", "a2")

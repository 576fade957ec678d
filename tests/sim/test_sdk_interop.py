"""Interoperability: Zoho's official Python SDK (zohocrmsdk2-0) against the simulator.

A client we did not write refreshes a token, fetches field metadata, updates
records and reads back per-record results, including a partial failure (202).
The SDK is synchronous (requests), so the simulator runs in a background thread
with its own event loop. The SDK keeps global state (its Initializer), so this
module initialises it once per test and writes its files under tmp_path.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncengine.sim import SimHandle, running_simulator

zcrm = pytest.importorskip("zcrmsdk.src.com.zoho.crm.api.initializer")
from zcrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken  # noqa: E402
from zcrmsdk.src.com.zoho.api.authenticator.store.token_store import TokenStore  # noqa: E402
from zcrmsdk.src.com.zoho.api.logger import Logger  # noqa: E402
from zcrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter  # noqa: E402
from zcrmsdk.src.com.zoho.crm.api.record import (  # noqa: E402
    ActionWrapper,
    APIException,
    BodyWrapper,
    Record,
    RecordOperations,
    SuccessResponse,
)
from zcrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig  # noqa: E402
from zcrmsdk.src.com.zoho.crm.api.user_signature import UserSignature  # noqa: E402

Initializer = zcrm.Initializer
LEAD_ID_START = 4_876_876_000_000_000_001


class SimulatorDataCenter(DataCenter):  # type: ignore[misc]
    """A data centre whose API and accounts server are the local simulator."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def get_iam_url(self) -> str:
        """The SDK takes the full token URL as its accounts URL."""
        return f"{self.base_url}/oauth/v2/token"

    def get_file_upload_url(self) -> str:
        """Unused by records calls; the simulator itself."""
        return self.base_url

    def environment(self) -> Any:
        """The Environment the SDK's Initializer accepts."""
        return DataCenter.Environment(
            self.base_url, self.get_iam_url(), self.get_file_upload_url(), "sim"
        )


class MemoryTokenStore(TokenStore):  # type: ignore[misc]
    """An in-memory SDK token store keyed by user email."""

    def __init__(self) -> None:
        self.tokens: dict[str, Any] = {}
        self.saves = 0

    def get_token(self, user: Any, token: Any) -> Any:
        """The stored token for the user, or None (the SDK then refreshes)."""
        return self.tokens.get(user.get_email())

    def save_token(self, user: Any, token: Any) -> None:
        """Keep the refreshed token."""
        token.set_user_mail(user.get_email())
        self.tokens[user.get_email()] = token
        self.saves += 1

    def delete_token(self, token: Any) -> None:
        """Forget a token."""
        self.tokens = {k: v for k, v in self.tokens.items() if v is not token}

    def get_tokens(self) -> list[Any]:
        """Every stored token."""
        return list(self.tokens.values())

    def delete_tokens(self) -> None:
        """Forget every token."""
        self.tokens.clear()

    def get_token_by_id(self, id: str, token: Any) -> Any:
        """The token with the SDK's id, or None."""
        return next((t for t in self.tokens.values() if t.get_id() == id), None)


@pytest.fixture
def threaded_sim() -> Iterator[SimHandle]:
    """A simulator serving from its own thread and event loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        holder["stop"] = asyncio.Event()
        async with running_simulator(admin=True) as handle:
            handle.state.store.reset()
            holder["handle"] = handle
            ready.set()
            await holder["stop"].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "simulator thread did not start"
    try:
        yield holder["handle"]
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
        loop.close()


def test_sdk_refreshes_updates_and_reads_partial_results(
    threaded_sim: SimHandle, tmp_path: Path
) -> None:
    """The official SDK updates (one SUCCESS, one INVALID_DATA: 202) and upserts Leads."""
    state = threaded_sim.state
    for n in range(2):
        record_id = str(LEAD_ID_START + n)
        fields = {"Last_Name": f"Lead {n}", "Company": "Acme", "Email": f"l{n}@example.org"}
        state.store.put("Leads", record_id, fields, "2024-01-01T00:00:00+00:00").writes = 0
    store = MemoryTokenStore()
    Initializer.initialize(
        user=UserSignature("sync@example.org"),
        environment=SimulatorDataCenter(threaded_sim.base_url).environment(),
        token=OAuthToken(
            client_id="demo-client", client_secret="demo-secret", refresh_token="demo-refresh"
        ),
        store=store,
        sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False),
        resource_path=str(tmp_path),
        logger=Logger.get_instance(Logger.Levels.INFO, str(tmp_path / "sdk.log")),
    )
    good, bad = Record(), Record()
    good.set_id(LEAD_ID_START)
    good.add_key_value("Company", "Updated by SDK")
    bad.set_id(LEAD_ID_START + 1)
    bad.add_key_value("Email", "not-an-email")
    body = BodyWrapper()
    body.set_data([good, bad])
    body.set_trigger([])

    response = RecordOperations().update_records("Leads", body)

    assert response.get_status_code() == 202
    wrapper = response.get_object()
    assert isinstance(wrapper, ActionWrapper)
    first, second = wrapper.get_data()
    assert isinstance(first, SuccessResponse)
    assert first.get_code().get_value() == "SUCCESS"
    assert str(first.get_details()["id"]) == str(LEAD_ID_START)
    assert isinstance(second, APIException)
    assert second.get_code().get_value() == "INVALID_DATA"
    assert second.get_details()["api_name"] == "Email"
    assert store.saves == 1
    assert state.stats.token_mints == 1
    assert state.stats.by_status["200"] >= 1  # the SDK's settings/fields fetch
    stored = state.store.get("Leads", str(LEAD_ID_START))
    assert stored is not None
    assert stored.fields["Company"] == "Updated by SDK"
    assert stored.writes == 1

    match, fresh = Record(), Record()
    for record, email in ((match, "l1@example.org"), (fresh, "new@example.org")):
        record.add_key_value("Last_Name", "Upserted")
        record.add_key_value("Company", "Acme")
        record.add_key_value("Email", email)
    upsert = BodyWrapper()
    upsert.set_data([match, fresh])
    upserted = RecordOperations().upsert_records("Leads", upsert).get_object().get_data()
    assert [r.get_action().get_value() for r in upserted] == ["update", "insert"]
    assert upserted[0].get_duplicate_field() == "Email"
    assert str(upserted[0].get_details()["id"]) == str(LEAD_ID_START + 1)

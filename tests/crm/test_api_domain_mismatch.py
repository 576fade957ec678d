"""A configured api_domain that is not the org's data centre is a config error (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncengine.crm.client import WriteRequest
from syncengine.crm.origin import check_api_domain
from syncengine.errors import ConfigError, FatalError
from syncengine.model import Operation
from syncengine.sim.server import running_simulator
from tests.crm.conftest import crm_stack
from tests.integration.conftest import run_cli, seed_leads, write_config, write_feed

EU = "https://www.zohoapis.eu"


def test_same_origin_written_differently_is_no_mismatch() -> None:
    check_api_domain("https://www.zohoapis.com", "https://WWW.zohoapis.com:443/")
    check_api_domain("http://127.0.0.1:8000", "http://127.0.0.1:8000/")
    check_api_domain("https://www.zohoapis.com", None)
    with pytest.raises(ConfigError, match=r"crm\.api_domain"):
        check_api_domain("http://127.0.0.1:8000", "http://127.0.0.1:8001")


async def test_the_client_stops_before_writing_to_another_data_centre() -> None:
    async with (
        running_simulator(admin=True, api_domain=EU) as sim,
        crm_stack(sim.base_url) as stack,
    ):
        request = WriteRequest("Leads", Operation.UPDATE, [{"id": "1", "Company": "A"}])
        with pytest.raises(ConfigError) as caught:
            await stack.client.write(request)
        assert isinstance(caught.value, FatalError)  # the senders stop the pass on it
        assert sim.base_url in str(caught.value)
        assert EU in str(caught.value)
        assert stack.client.stats.requests == 0


async def test_run_exits_2_naming_the_key_and_both_values(tmp_path: Path) -> None:
    async with running_simulator(admin=True, api_domain=EU) as sim:
        await seed_leads(sim, 3)
        path = write_config(tmp_path, sim)
        write_feed(tmp_path / "changes.jsonl", [{"id": "4876876000000100001", "Company": "X"}])
        result = await run_cli("run", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "crm.api_domain" in line
    assert sim.base_url in line
    assert EU in line
    assert "Traceback" not in result.stderr

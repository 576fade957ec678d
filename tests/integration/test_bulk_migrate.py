"""`migrate --api bulk|auto` end to end: real processes against in-process simulators.

How `auto` picks, a replaced feed file, an org without bulk write. That the
bulk phase leaves the CRM and the journal exactly as the records path would
is `test_bulk_equivalence_100k` (and, killed at each step, `test_bulk_kills`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from syncengine.sim.server import SimHandle, running_simulator
from tests.integration.conftest import (
    FIRST_ID,
    admin_get,
    run_cli,
    seed_leads,
    sim_leads,
    write_config,
    write_feed,
)


@pytest.mark.parametrize(("inserts", "expect_bulk"), [(300, False), (6_000, True)])
async def test_auto_picks_by_credits(
    sim: SimHandle, tmp_path: Path, inserts: int, expect_bulk: bool
) -> None:
    """auto: 300 inserts cost 30 credits by records (< 500): records; 6,000 cost 600: bulk."""
    feed: list[dict[str, Any] | bytes] = [
        {"record": {"Last_Name": f"L{n}", "Company": "Acme"}, "operation": "insert"}
        for n in range(inserts)
    ]
    (tmp_path / "a").mkdir()
    write_feed(tmp_path / "a" / "changes.jsonl", feed)
    config = write_config(tmp_path / "a", sim, limits="bulk_poll_s = 0.2")
    result = await run_cli(
        "migrate", "-c", str(config), "--api", "auto", cwd=tmp_path / "a", timeout_s=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    stats = await admin_get(sim, "stats")
    assert stats["bulk_jobs"] == (1 if expect_bulk else 0)
    assert len(await sim_leads(sim)) == inserts
    plans = [
        orjson.loads(line)
        for line in result.stderr.splitlines()
        if line.startswith("{") and '"bulk.plan"' in line
    ]
    # The census counts keys in a fixed table of hash slots: a key that shares its
    # slot goes by the records API (with 6,000 keys, now and then one does).
    assert [p["api"] for p in plans] == ["bulk" if expect_bulk else "records"]
    assert inserts - 5 <= plans[0]["rows"] <= inserts
    summary = next(
        orjson.loads(line) for line in result.stderr.splitlines() if '"run.summary"' in line
    )
    assert summary["credits_spent_by_bulk"] == (
        501 if expect_bulk else 0
    )  # the job and the org read
    assert summary["synced"] == inserts


async def test_a_replaced_file_is_a_new_feed_for_the_bulk_phase(
    sim: SimHandle, tmp_path: Path
) -> None:
    """Keyless inserts are journaled under their file's generation: a new export at the
    same path, whose lines have the same numbers, is sent in full, by bulk again."""

    def export(tag: str) -> list[dict[str, Any] | bytes]:
        return [
            {"record": {"Last_Name": f"{tag} {n}", "Company": tag}, "operation": "insert"}
            for n in range(1_000)
        ]

    write_feed(tmp_path / "changes.jsonl", export("first"))
    config = write_config(tmp_path, sim, limits="bulk_poll_s = 0.2")
    first = await run_cli("migrate", "-c", str(config), "--api", "bulk", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    fresh = tmp_path / "changes.new"
    write_feed(fresh, export("second"))
    fresh.replace(tmp_path / "changes.jsonl")
    second = await run_cli("migrate", "-c", str(config), "--api", "bulk", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    companies = sorted(e["fields"]["Company"] for e in (await sim_leads(sim)).values())
    assert companies == ["first"] * 1_000 + ["second"] * 1_000
    assert (await admin_get(sim, "stats"))["bulk_jobs"] == 2


@pytest.mark.parametrize("api", ["auto", "bulk"])
async def test_an_org_without_bulk_write_is_migrated_by_the_records_api(
    tmp_path: Path, api: str
) -> None:
    """A token without the bulk scopes (or a CRM without the API): `auto` warns and sends
    everything by the records API, exit 0; `--api bulk` stops with exit 3 naming why,
    and what it had journaled goes out with the next records pass."""
    scopes = ("ZohoCRM.modules.ALL", "ZohoCRM.settings.ALL")
    async with running_simulator(port=0, admin=True, scopes=scopes) as sim:
        await seed_leads(sim, 6000)
        config = write_config(tmp_path, sim)
        rows = [{"id": str(FIRST_ID + n), "Company": f"Updated {n}"} for n in range(6000)]
        write_feed(tmp_path / "changes.jsonl", rows)
        result = await run_cli("migrate", "-c", str(config), "--api", api, cwd=tmp_path)
        if api == "bulk":
            assert result.returncode == 3, result.stderr
            assert "bulk write is not available" in result.stderr
            result = await run_cli("migrate", "-c", str(config), "--api", "records", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        if api == "auto":
            assert "bulk.unavailable" in result.stderr
        held = await sim_leads(sim)
        assert all(held[row["id"]]["fields"]["Company"] == row["Company"] for row in rows)
        assert (await admin_get(sim, "stats"))["bulk_jobs"] == 0

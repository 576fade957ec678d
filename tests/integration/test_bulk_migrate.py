"""`migrate --api bulk|auto` end to end: real processes against in-process simulators.

The bulk phase must leave the CRM and the journal exactly as the records path
would for the same feed: the same records with the same values, the same
failures (module, id, position, code, blamed field, source key), nothing sent
twice, and a second `migrate` with nothing left to send.
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
    failures_json,
    run_cli,
    seed_leads,
    sim_leads,
    write_config,
    write_feed,
)

#: Fields the simulator sets itself (times, owner, id): they differ between two simulators.
_SYSTEM_FIELDS = frozenset(
    {
        "id",
        "Created_Time",
        "Modified_Time",
        "Created_By",
        "Modified_By",
        "Owner",
        "Last_Activity_Time",
    }
)


def mixed_feed(inserts: int, updates: int, upserts: int) -> list[dict[str, Any] | bytes]:
    """Inserts, updates of seeded leads and upserts, with rows the CRM or the feed refuses.

    Every 97th insert lacks its mandatory Last_Name, every 89th update has a
    bad e-mail, one line is not JSON, one update's record occurs twice (it
    stays on the records path), and one update deletes nothing but blanks a
    field (a CSV cannot carry that, so the records path sends it).
    """
    rows: list[dict[str, Any] | bytes] = []
    for n in range(max(inserts, updates, upserts)):
        if n < inserts:
            record: dict[str, Any] = {"Company": f"New {n}", "Email": f"new{n}@example.org"}
            if n % 97 != 5:
                record["Last_Name"] = f"Insert {n}"
            rows.append({"record": record, "operation": "insert"})
        if n < updates:
            update: dict[str, Any] = {"id": str(FIRST_ID + n), "Company": f"Updated {n}"}
            if n % 89 == 7:
                update["Email"] = "not an e-mail"
            rows.append(update)
        if n < upserts:
            upsert = {
                "Last_Name": f"Upsert {n}",
                "Email": f"up{n}@example.org",
                "Description": f"D{n}",
            }
            rows.append({"record": upsert, "operation": "upsert"})
    rows.insert(3, b"{not json")
    rows.append({"id": str(FIRST_ID + 1), "Company": "Updated 1, again"})
    rows.append({"id": str(FIRST_ID + 2), "Company": "", "Description": "Blanked"})
    return rows


def crm_state(
    leads: dict[str, dict[str, Any]], seeded_count: int
) -> tuple[dict[str, Any], list[str]]:
    """Seeded leads by id, and every other lead's user fields, sorted (ids differ by CRM)."""
    seeded: dict[str, Any] = {}
    created: list[str] = []
    for record_id, entry in leads.items():
        fields = {k: v for k, v in entry["fields"].items() if k not in _SYSTEM_FIELDS}
        if FIRST_ID <= int(record_id) < FIRST_ID + seeded_count:
            seeded[record_id] = fields
        else:
            created.append(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode())
    return seeded, sorted(created)


def failure_view(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must agree between the paths (the message's wording differs by API)."""
    view = [
        (
            row["module"],
            row["id"],
            row["position"],
            row["code"],
            (row.get("details") or {}).get("api_name"),
            row.get("key"),
        )
        for row in rows
    ]
    return sorted(view, key=repr)


async def migrate_on(
    sim: SimHandle, folder: Path, feed: list[dict[str, Any] | bytes], api: str, seeded: int
) -> tuple[int, Path]:
    """Seeds `sim`, writes the feed and config in `folder`, runs `migrate --api API`."""
    folder.mkdir()
    await seed_leads(sim, seeded)
    write_feed(folder / "changes.jsonl", feed)
    config = write_config(folder, sim, limits="bulk_poll_s = 0.2")
    result = await run_cli("migrate", "-c", str(config), "--api", api, cwd=folder, timeout_s=240)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return result.returncode, config


async def test_bulk_ends_as_the_records_path_does(sim: SimHandle, tmp_path: Path) -> None:
    """20,000 changes by bulk: the same CRM state and failures as by the records API."""
    feed = mixed_feed(inserts=6_000, updates=8_000, upserts=6_000)
    async with running_simulator(port=0, admin=True) as twin:
        status_bulk, config_bulk = await migrate_on(sim, tmp_path / "bulk", feed, "bulk", 8_000)
        status_records, config_records = await migrate_on(
            twin, tmp_path / "records", feed, "records", 8_000
        )
        assert status_bulk == status_records == 1
        stats_bulk = await admin_get(sim, "stats")
        assert stats_bulk["bulk_jobs"] == 3  # one job per (module, operation) group
        assert stats_bulk["bulk_uploads"] == 3
        assert (await admin_get(twin, "stats"))["bulk_jobs"] == 0
        leads_bulk, leads_records = await sim_leads(sim), await sim_leads(twin)
        seeded_bulk, created_bulk = crm_state(leads_bulk, 8_000)
        seeded_records, created_records = crm_state(leads_records, 8_000)
        assert len(created_bulk) == 6_000 - 62 + 6_000
        assert [k for k in seeded_bulk if seeded_bulk[k] != seeded_records.get(k)] == []
        assert seeded_bulk == seeded_records
        assert created_bulk == created_records
        failures_bulk = await failures_json(config_bulk, tmp_path / "bulk")
        failures_records = await failures_json(config_records, tmp_path / "records")
    assert failure_view(failures_bulk) == failure_view(failures_records)
    assert {row["code"] for row in failures_bulk} >= {"BAD_INPUT", "MANDATORY_NOT_FOUND"}
    # Each seeded lead was written once per change the feed holds for it.
    assert leads_bulk[str(FIRST_ID + 3)]["writes"] == 1
    assert leads_bulk[str(FIRST_ID + 1)]["writes"] == 2
    # A second migrate finds nothing to send.
    written = stats_bulk["records_written"]
    again = await run_cli("migrate", "-c", str(config_bulk), cwd=tmp_path / "bulk")
    assert again.returncode == 0, again.stderr[-2000:]
    stats = await admin_get(sim, "stats")
    assert (stats["records_written"], stats["bulk_jobs"]) == (written, 3)


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

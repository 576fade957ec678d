"""Rows a bulk-write job synced leave `skip_unchanged` digests, as the records path's do."""

from __future__ import annotations

from pathlib import Path

import orjson

from syncengine.bulk.accepted import digest_keys, with_digests
from syncengine.bulk.jobs_journal import JobLine
from syncengine.engine.unchanged import decode, encode, field_digests
from syncengine.journal import RecordUpdate, encode_payload
from syncengine.model import Change, Operation, RecordState
from syncengine.sim.server import SimHandle
from tests.integration.conftest import (
    FIRST_ID,
    admin_get,
    run_cli,
    seed_leads,
    write_config,
)
from tests.integration.test_skip_unchanged import export

LEADS = 6_000  # 600 credits by records, one job of 500 by bulk write


def line(change: Change) -> JobLine:
    return JobLine(change.key or "", 1, "jsonl:feed", encode_payload(change))


def test_an_update_keeps_what_the_crm_held_before_and_adds_what_it_sent() -> None:
    before = {"Phone": "555-1", "Company": "Old"}
    update = Change("Leads", Operation.UPDATE, {"id": "7", "Company": "New"}, "Leads:7")
    insert = Change("Leads", Operation.INSERT, {"Last_Name": "A"}, "@jsonl:feed#2")
    lines = [line(update), line(insert)]
    synced = ("Leads:7", "Leads", "7", "update", 1, 1, "jsonl:feed")
    inserted = ("@jsonl:feed#2", "Leads", "9", "insert", 1, 2, "jsonl:feed")
    assert digest_keys(lines, [synced, inserted]) == ["Leads:7"]
    known = {"Leads:7": encode(field_digests(before))}
    first, second = with_digests(lines, [synced, inserted], known)
    assert isinstance(first, RecordUpdate)
    assert first.state is RecordState.SYNCED
    assert (first.key, first.record_id, first.position, first.source_id) == (
        "Leads:7",
        "7",
        1,
        "jsonl:feed",
    )
    assert first.accepted is not None
    assert decode(first.accepted) == field_digests({"Phone": "555-1", "Company": "New"})
    assert second == inserted  # a plain insert is never found unchanged: no digests


def test_a_record_the_journal_has_no_digests_for_keeps_only_what_was_sent() -> None:
    update = Change("Leads", Operation.UPDATE, {"id": "7", "Company": "New"}, "Leads:7")
    synced = ("Leads:7", "Leads", "7", "update", 1, 1, "jsonl:feed")
    (row,) = with_digests([line(update)], [synced], {})
    assert isinstance(row, RecordUpdate)
    assert row.accepted == encode(field_digests({"Company": "New"}))


async def test_a_run_after_a_bulk_migration_sends_only_what_changed(
    sim: SimHandle, tmp_path: Path
) -> None:
    """Migrate 6,000 updates by bulk write with skip_unchanged on; the next night's
    export differs in 3 records: `run` sends those 3 and finds the rest unchanged."""
    await seed_leads(sim, LEADS)

    def night(changed: set[int]) -> list[dict[str, object]]:
        return [
            {
                "id": str(FIRST_ID + n),
                "Company": f"Company {n}{' v2' if n in changed else ''}",
                "Phone": f"555-{n}",
            }
            for n in range(LEADS)
        ]

    feed = tmp_path / "changes.jsonl"
    export(feed, night(set()))
    config = write_config(tmp_path, sim, extra="skip_unchanged = true", limits="bulk_poll_s = 0.2")
    migrated = await run_cli("migrate", "-c", str(config), cwd=tmp_path, timeout_s=180)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    stats = await admin_get(sim, "stats")
    assert stats["bulk_jobs"] == 1
    written = stats["records_written"]

    export(feed, night({5, 500, 5_000}))
    ran = await run_cli("--log-format", "json", "run", "-c", str(config), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    summary = next(
        orjson.loads(text) for text in ran.stderr.splitlines() if '"run.summary"' in text
    )
    # The census may route a few records by the records API (hash collisions): they
    # leave digests too. So every record but the three changed is unchanged.
    assert summary["unchanged"] == LEADS - 3, summary
    assert summary["synced"] == LEADS, summary
    assert (await admin_get(sim, "stats"))["records_written"] == written + 3

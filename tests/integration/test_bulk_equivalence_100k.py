"""100,000 changes by `migrate --api bulk` end exactly as by `--api records`.

One feed of 100,000 lines (40,000 updates, 30,000 inserts, 29,995 upserts, an
ambiguous upsert, a lead updated twice, a field blanked and two lines that
are not JSON; rows of every bad kind, see `bulk_equivalence`) is migrated
once through each API into its own fresh simulator, by real
`python -m syncengine migrate` processes. The CRM end
state (every lead's fields; created leads by content, since ids differ) and
`failures --json` (every row whole: position, key, id, code, message,
details, attempts) must be identical, bar the one difference interface.md
documents (a bulk DUPLICATE_DATA does not name the record it clashed with).
Each lead must also have been written as many times by either path.
The kill variant, on a twentieth of this feed, is `test_bulk_kills`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from syncengine.sim.server import SimHandle, running_simulator
from tests.integration.bulk_equivalence import (
    FeedShape,
    crm_view,
    failures_view,
    mixed_feed,
    seed,
)
from tests.integration.conftest import admin_get, run_cli, write_config, write_feed

SHAPE = FeedShape(inserts=30_000, updates=40_000, upserts=29_995)


async def migrate(sim: SimHandle, folder: Path, api: str) -> Path:
    """Seeds `sim`, writes the feed and config in `folder`, runs `migrate --api API` (exit 1)."""
    folder.mkdir()
    await seed(sim, SHAPE)
    write_feed(folder / "changes.jsonl", mixed_feed(SHAPE))
    config = write_config(folder, sim, limits="bulk_poll_s = 0.2")
    result = await run_cli("migrate", "-c", str(config), "--api", api, cwd=folder, timeout_s=240)
    assert result.returncode == 1, result.stderr[-3000:]  # done, some records failed
    return config


@pytest.mark.timeout(300)
async def test_100k_by_bulk_end_as_by_records(sim: SimHandle, tmp_path: Path) -> None:
    assert SHAPE.lines == 100_000
    async with running_simulator(port=0, admin=True) as twin:
        config_bulk = await migrate(sim, tmp_path / "bulk", "bulk")
        config_records = await migrate(twin, tmp_path / "records", "records")
        stats_bulk = await admin_get(sim, "stats")
        assert (await admin_get(twin, "stats"))["bulk_jobs"] == 0
        # Most rows went by bulk write, in jobs of at most 25,000: two per operation.
        assert stats_bulk["bulk_jobs"] == 6
        assert stats_bulk["bulk_job_rows"] > 95_000

        seeded, created = await crm_view(sim, SHAPE)
        assert (seeded, created) == await crm_view(twin, SHAPE)
        assert {e["writes"] for e in seeded.values()} == {None, 0, 1}  # None: changed twice
        assert len(created) == len(set(created))  # no lead inserted twice

        failures_bulk = await failures_view(config_bulk, tmp_path / "bulk")
        failures_records = await failures_view(config_records, tmp_path / "records")
    mismatched = [(b, r) for b, r in zip(failures_bulk, failures_records, strict=False) if b != r][
        :5
    ]
    assert mismatched == []
    assert len(failures_bulk) == len(failures_records)
    # Every kind of refusal is there, from local validation and from the CRM.
    kinds = {(row["code"], (row["details"] or {}).get("api_name")) for row in failures_bulk}
    assert kinds >= {
        ("BAD_INPUT", None),
        ("MANDATORY_NOT_FOUND", "Last_Name"),
        ("INVALID_DATA", "Email"),
        ("INVALID_DATA", "Rating"),
        ("INVALID_DATA", "Company"),
        ("INVALID_DATA", "Owner"),
        ("INVALID_DATA", "id"),
        ("DUPLICATE_DATA", "Email"),
    }
    messages = {row["message"] for row in failures_bulk}
    assert "the id given seems to be invalid" in messages
    assert not [m for m in messages if "bulk write" in m]
    ambiguous = [row for row in failures_bulk if row["details"].get("more_records")]
    assert len(ambiguous) == 1

    # A second migrate finds nothing to send.
    again = await run_cli("migrate", "-c", str(config_bulk), "--api", "bulk", cwd=tmp_path / "bulk")
    assert again.returncode == 0, again.stderr[-2000:]
    stats = await admin_get(sim, "stats")
    assert (stats["records_written"], stats["bulk_jobs"]) == (
        stats_bulk["records_written"],
        stats_bulk["bulk_jobs"],
    )

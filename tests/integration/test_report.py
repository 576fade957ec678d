"""`syncengine report` and `migrate --report` on real runs against the simulator."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from syncengine.sim.server import SimHandle
from tests.integration.conftest import lead_updates, run_cli, seed_leads, write_config, write_feed

#: Anything that would make opening the page reach the network.
_EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|@import|url\(\s*["']?https?:""", re.I
)


def _assert_self_contained(page: str) -> None:
    assert _EXTERNAL.search(page) is None, _EXTERNAL.search(page)
    assert "<script" not in page.lower()


async def test_report_of_a_migrate_holds_its_figures_and_nothing_external(
    sim: SimHandle, tmp_path: Path
) -> None:
    await seed_leads(sim, 300)
    changes = lead_updates(300)
    changes[41]["Email"] = "not-an-address"
    write_feed(tmp_path / "changes.jsonl", changes)
    config = write_config(tmp_path, sim)

    migrated = await run_cli("migrate", "-c", str(config), "--report", "m.html", cwd=tmp_path)
    assert migrated.returncode == 1, migrated.stderr
    assert "report written to m.html" in migrated.stderr
    assert (tmp_path / "m.html").is_file()

    reported = await run_cli("report", "-c", str(config), "-o", "r.html", cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    assert "report written to r.html" in reported.stdout
    page = (tmp_path / "r.html").read_text()

    _assert_self_contained(page)
    assert "<td>migrate</td>" in page
    assert '<td class="n">299</td>' in page  # synced
    assert "1 (some failed)" in page
    assert page.count("<svg") == 4
    assert "records/s" in page
    assert "INVALID_DATA" in page
    assert "<td>Email</td>" in page
    assert "syncengine retry --code INVALID_DATA" in page
    # The failed record's feed position (line 42 of the feed, 0-based 41 or 1-based 42).
    example = page[page.index("Examples of INVALID_DATA") :]
    assert re.search(r"<td>4[12]</td>", example), example[:800]

    conn = sqlite3.connect(tmp_path / "journal.db")
    synced = conn.execute("SELECT sum(synced), count(*) FROM timeline").fetchone()
    conn.close()
    assert synced[0] == 299  # the timeline's spans add up to the run's count
    assert synced[1] >= 1


async def test_report_refuses_an_unknown_run_and_a_bad_since(
    sim: SimHandle, tmp_path: Path
) -> None:
    write_feed(tmp_path / "changes.jsonl", [])
    config = write_config(tmp_path, sim)
    assert (await run_cli("run", "-c", str(config), cwd=tmp_path)).returncode == 0

    missing = await run_cli("report", "-c", str(config), "--run", "99", cwd=tmp_path)
    assert missing.returncode == 2
    assert "--run 99: no such run" in missing.stderr

    bad = await run_cli("report", "-c", str(config), "--since", "yesterday", cwd=tmp_path)
    assert bad.returncode == 2
    assert "--since 'yesterday'" in bad.stderr

    ok = await run_cli("report", "-c", str(config), "--since", "1h", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    page = (tmp_path / "report.html").read_text()
    _assert_self_contained(page)
    assert "<td>run</td>" in page
    assert "No failed records" in page

"""Changes that name the same upsert match value never go in bulk-write jobs.

Jobs run in no feed order (and two of one group may run at once), so an
upsert sent by a job could create the record before the insert that precedes
it in the feed, which would then fail DUPLICATE_DATA; and of two inserts of
one e-mail, the later could take it. The bulk phase counts inserts and
upserts by the value of the field upsert jobs match on (Leads: `Email`, case
folded as the CRM compares it), so every change naming a value more than
once is left to the records pass, as a change whose record occurs twice is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from syncengine.sim.server import SimHandle
from tests.integration.conftest import admin_get, run_cli, sim_leads, write_config, write_feed

ROWS = 6_000
#: Upserts whose e-mail an insert also names: after it, before it, and in other case.
PAIRED = {10: 4_000, 5_000: 20, 300: 300}


def feed() -> list[dict[str, Any] | bytes]:
    rows: list[dict[str, Any] | bytes] = []
    for n in range(ROWS):
        upsert = {"Last_Name": f"Upsert {n}", "Email": f"up{n}@example.org", "Description": "up"}
        rows.append({"record": upsert, "operation": "upsert"})
    for n in range(ROWS):
        insert = {"Last_Name": f"Insert {n}", "Email": f"new{n}@example.org", "Company": "new"}
        rows.append({"record": insert, "operation": "insert"})
    for upsert_n, insert_n in PAIRED.items():
        email = f"up{upsert_n}@example.org"
        record = rows[ROWS + insert_n]
        assert isinstance(record, dict)
        record["record"]["Email"] = email.upper() if upsert_n == 300 else email
    # The upserts named first, so their job would run first.
    return rows


async def test_an_insert_and_an_upsert_of_one_email_go_by_the_records_api(
    sim: SimHandle, tmp_path: Path
) -> None:
    write_feed(tmp_path / "changes.jsonl", feed())
    config = write_config(tmp_path, sim, limits="bulk_poll_s = 0.2\nbulk_jobs_in_flight = 1")
    result = await run_cli("migrate", "-c", str(config), "--api", "bulk", cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    plans = {
        plan["operation"]: plan["rows"]
        for line in result.stderr.splitlines()
        if '"bulk.plan"' in line and (plan := orjson.loads(line))
    }
    # Each group less its paired rows (a census hash collision may send one more row
    # by the records API).
    assert ROWS - len(PAIRED) - 3 <= plans["upsert"] <= ROWS - len(PAIRED)
    assert ROWS - len(PAIRED) - 3 <= plans["insert"] <= ROWS - len(PAIRED)
    stats = await admin_get(sim, "stats")
    assert stats["bulk_job_rows"] == plans["upsert"] + plans["insert"]
    # One lead per e-mail, whichever of the pair the records API sent first.
    emails = [str(e["fields"]["Email"]).lower() for e in (await sim_leads(sim)).values()]
    assert len(emails) == len(set(emails)) == 2 * ROWS - len(PAIRED)

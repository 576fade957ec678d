"""`syncengine check` against the simulator: it lists exactly what a real pass then fails.

Random feeds of updates to seeded leads, inserts (with unique e-mails that
may repeat), unusable lines and unknown fields, each value valid or not:
`check --all` lists the same records, positions and codes that `migrate` of
the same feed leaves in `failures`, and nothing else.

Generated values stay away from the cases where Zoho's published rules are
more lenient than the simulator today (e-mails with `+tag` local parts,
phones with letters or `#` extensions, numbers in text fields, `Z` offsets,
a restricted picklist the metadata does not mark) and from the mandatory
fields that are due to change (Leads' `Company` is always given): there the
check sends, as it must, and the simulator refuses.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncengine.check_command import run_check
from syncengine.config import load_config
from syncengine.demo import write_demo_files
from syncengine.journal import Journal
from syncengine.reports import failure_documents
from syncengine.runner import run_pass
from syncengine.sim.server import SimHandle, running_simulator
from tests.integration.conftest import (
    FIRST_ID,
    SECRET_ENV,
    admin_post,
    failures_json,
    run_cli,
    seed_leads,
    sim_leads,
    write_config,
    write_feed,
)

SEEDED = 4

#: Per field: values the simulator and Zoho both take, and values both refuse.
VALID: dict[str, list[Any]] = {
    "First_Name": ["Ann", "Bo"],
    "Phone": ["+1 555 0100", "555-0100"],
    "No_of_Employees": [5, 120],
    "Lead_Status": ["Contacted", "Brand new status"],
    "Rating": ["Active"],
    "Languages": [["French"], []],
    "Date_of_Birth": ["1990-05-17"],
    "Last_Contacted": ["2024-01-31T09:30:00+05:30"],
    "Email_Opt_Out": [True, False],
    "Annual_Revenue": [1000.5, 7],
    "Website": ["https://example.org"],
    "Favourite_Colour": ["blue"],  # no such field: the CRM ignores it
}
INVALID: dict[str, list[Any]] = {
    "First_Name": ["x" * 41],
    "Phone": ["555@0100", "5" * 31],
    "No_of_Employees": ["lots", 1_234_567_890],
    "Lead_Status": ["s" * 121],
    "Languages": ["French"],
    "Date_of_Birth": ["17/05/1990", "2023-02-30"],
    "Last_Contacted": ["2024-01-31 09:30"],
    "Email_Opt_Out": ["yes"],
    "Annual_Revenue": ["a lot"],
}
POOL = ["a@example.org", "b@example.org", "A@Example.org"]


@st.composite
def fields(draw: st.DrawFn) -> dict[str, Any]:
    """Up to three fields, each valid or (one time in four) not."""
    names = draw(st.lists(st.sampled_from(sorted(VALID)), max_size=3, unique=True))
    record: dict[str, Any] = {}
    for name in names:
        bad = name in INVALID and draw(st.integers(0, 3)) == 0
        record[name] = draw(st.sampled_from(INVALID[name] if bad else VALID[name]))
    return record


@st.composite
def lines(draw: st.DrawFn) -> dict[str, Any] | bytes:
    """One feed line: an update, an insert, or (rarely) a line that is not JSON."""
    kind = draw(st.sampled_from(["update"] * 5 + ["insert"] * 4 + ["bad"]))
    if kind == "bad":
        return b'{"id": '
    record = draw(fields())
    if kind == "update":
        if draw(st.integers(0, 5)) == 0:
            record["Last_Name"] = ""  # blanking a mandatory field
        if draw(st.integers(0, 5)) == 0:
            record["Email"] = "not-an-address"
        return {"id": str(FIRST_ID + draw(st.integers(0, SEEDED - 1))), **record}
    if draw(st.integers(0, 4)) > 0:
        record["Last_Name"] = draw(st.sampled_from(["Kim", "Lee"]))
    record["Company"] = "Acme"
    email = draw(st.sampled_from([None, "not-an-address", *POOL]))
    if email is not None:
        record["Email"] = email
    return {"record": record, "operation": "insert"}


def _rows(rows: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {(row["module"], row["id"], row["position"], row["code"]) for row in rows}


async def _failed_rows(sim: SimHandle, folder: Path, *, validate: bool) -> list[dict[str, Any]]:
    """`migrate` of the feed in `folder` into a freshly seeded simulator: the failures."""
    await admin_post(sim, "reset", {})
    await seed_leads(sim, SEEDED)
    extra = "" if validate else "validate = false"
    config = load_config(write_config(folder, sim, extra=extra), environ=SECRET_ENV)
    await run_pass(config, command="migrate", stop=asyncio.Event())
    async with await Journal.open(config.journal.path) as journal:
        return failure_documents(await journal.failures())


async def _check_then_migrate(folder: Path, feed: list[dict[str, Any] | bytes]) -> None:
    async with running_simulator(port=0, admin=True) as sim:
        await seed_leads(sim, SEEDED)
        checked = folder / "checked"
        checked.mkdir()
        write_feed(checked / "changes.jsonl", feed)
        config = load_config(write_config(checked, sim), environ=SECRET_ENV)
        predicted = _rows(
            [r.as_json() for r in (await run_check(config, whole_feed=True)).result.refusals]
        )
        for validate in (False, True):
            sent = folder / f"validate-{validate}"
            sent.mkdir()
            write_feed(sent / "changes.jsonl", feed)
            # The simulator alone judges (validate = false): check predicted it exactly; and a
            # pass that validates first ends the same way.
            assert predicted == _rows(await _failed_rows(sim, sent, validate=validate)), validate


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(lines(), min_size=1, max_size=16))
def test_check_lists_exactly_what_migrate_fails(
    tmp_path_factory: pytest.TempPathFactory, feed: list[dict[str, Any] | bytes]
) -> None:
    """Same records, same positions, same codes; nothing more, nothing less."""
    asyncio.run(_check_then_migrate(tmp_path_factory.mktemp("check"), feed))


async def test_check_command_reports_and_changes_nothing(sim: SimHandle, tmp_path: Path) -> None:
    """Exit 1 with the refusals (text and JSON); no write reaches the CRM, the journal keeps
    no record and no checkpoint; after the pass, only `--all` looks behind the checkpoint."""
    await seed_leads(sim, 2)
    config = write_config(tmp_path, sim)
    write_feed(
        tmp_path / "changes.jsonl",
        [
            {"id": str(FIRST_ID), "Email": "kim+news@example.org", "Shoe_Size": 9},
            {"id": str(FIRST_ID + 1), "No_of_Employees": "lots"},
            {"record": {"Company": "Lee Ltd"}, "operation": "insert"},
        ],
    )
    text = await run_cli("check", "-c", str(config), cwd=tmp_path)
    assert text.returncode == 1, text.stderr
    assert "position 2: Leads 4876876000000100002: INVALID_DATA [No_of_Employees]" in text.stdout
    assert "position 3: Leads (no id): MANDATORY_NOT_FOUND [Last_Name]" in text.stdout
    assert "unknown field Leads.Shoe_Size" in text.stdout
    as_json = await run_cli("check", "-c", str(config), "--json", cwd=tmp_path)
    document = orjson.loads(as_json.stdout)
    assert [(r["position"], r["code"], r["field"]) for r in document["refused"]] == [
        (2, "INVALID_DATA", "No_of_Employees"),
        (3, "MANDATORY_NOT_FOUND", "Last_Name"),
    ]
    assert document["read"] == 3
    assert document["unknown_fields"] == [
        {"module": "Leads", "field": "Shoe_Size", "changes": 1, "first_position": 1}
    ]
    assert all(lead["writes"] == 0 for lead in (await sim_leads(sim)).values())
    status = orjson.loads(
        (await run_cli("status", "-c", str(config), "--json", cwd=tmp_path)).stdout
    )
    assert status["records"] == {"synced": 0, "pending": 0, "failed": 0}
    assert status["checkpoints"] == {}

    migrate = await run_cli("migrate", "-c", str(config), cwd=tmp_path)
    assert migrate.returncode == 1
    after = await run_cli("check", "-c", str(config), "--json", cwd=tmp_path)
    assert (after.returncode, orjson.loads(after.stdout)["refused"]) == (0, [])
    again = await run_cli("check", "-c", str(config), "--all", "--json", cwd=tmp_path)
    assert again.returncode == 1
    assert orjson.loads(again.stdout)["refused"] == document["refused"]


async def test_check_refuses_a_bad_config(tmp_path: Path) -> None:
    """A config that does not load is exit 2 with one line naming it."""
    config = tmp_path / "sync.toml"
    config.write_text("[crm]\nvalidate = 'sometimes'\n", encoding="utf-8")
    result = await run_cli("check", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "syncengine: error:" in result.stderr


async def test_check_on_the_demo_feed_lists_exactly_what_its_migrate_fails(
    sim: SimHandle, tmp_path: Path
) -> None:
    """The demo's own feed (bad JSON, a bad e-mail, a missing Last_Name among 5,000 leads):
    `check --all` names the same positions and codes as the failures of a real migrate."""
    config = write_demo_files(tmp_path, records=5000, port=sim.port)
    checked = await run_cli("check", "-c", str(config), "--all", "--json", cwd=tmp_path)
    assert checked.returncode == 1, checked.stderr
    predicted = {(r["position"], r["code"]) for r in orjson.loads(checked.stdout)["refused"]}
    migrated = await run_cli("migrate", "-c", str(config), cwd=tmp_path, timeout_s=120)
    assert migrated.returncode == 1, migrated.stderr
    failed = {(r["position"], r["code"]) for r in await failures_json(config, tmp_path)}
    assert predicted == failed
    assert {code for _, code in failed} == {"BAD_INPUT", "INVALID_DATA", "MANDATORY_NOT_FOUND"}

"""Deletes and source keys end to end: the CRM holds exactly the records alive in the source.

Histories a source table really has (a row inserted, updated, deleted,
inserted again under the same key), interleaved at random across records,
cut at random into cron runs with random concurrency: after the last run the
simulator holds one record per key alive in the source, with the fields of
its latest life, and `ids` maps exactly those keys to exactly those records.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncengine.config import load_config
from syncengine.journal import Journal
from syncengine.runner import run_pass
from syncengine.sim.server import SimHandle, running_simulator
from tests.integration.conftest import (
    FIRST_ID,
    SECRET_ENV,
    admin_get,
    failures_json,
    run_cli,
    seed_leads,
    sim_leads,
    write_config,
)

Line = dict[str, Any]


@st.composite
def source_histories(draw: st.DrawFn) -> tuple[list[Line], list[int], int]:
    """Feed lines of keyed inserts, updates and deletes as a table's life makes them."""
    alive = [False] * draw(st.integers(1, 4))
    lines: list[Line] = []
    for _ in range(draw(st.integers(0, 14))):
        index = draw(st.integers(0, len(alive) - 1))
        key = f"r{index}"
        if not alive[index]:
            value = draw(st.sampled_from(["Ann", "Bo", "Cy"]))
            record = {"Last_Name": f"L{index}", "Company": "Acme", "First_Name": value}
            lines.append({"key": key, "operation": "insert", "record": record})
            alive[index] = True
        elif draw(st.integers(0, 3)) == 0:
            lines.append({"key": key, "operation": "delete"})
            alive[index] = False
        else:
            field = draw(st.sampled_from(["First_Name", "Company"]))
            value = draw(st.sampled_from(["Dee", "Eve", "Globex"]))
            lines.append({"key": key, "operation": "update", "record": {field: value}})
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(lines))), max_size=3))))
    return lines, cuts, draw(st.integers(1, 3))


def expected_records(lines: list[Line]) -> dict[str, dict[str, Any]]:
    """Per key alive at the end, the fields of its latest life (insert, then updates)."""
    alive: dict[str, dict[str, Any]] = {}
    for line in lines:
        if line["operation"] == "delete":
            alive.pop(line["key"], None)
        elif line["operation"] == "insert":
            alive[line["key"]] = dict(line["record"])
        else:
            alive[line["key"]].update(line["record"])
    return alive


def write_lines(path: Path, lines: list[Line]) -> None:
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))


async def id_map(journal_path: Path) -> dict[str, str]:
    async with await Journal.open(journal_path) as journal:
        return {key: crm_id async for _, key, crm_id in journal.id_map("Leads")}


@settings(max_examples=15, deadline=None)
@given(source_histories())
def test_the_crm_ends_with_exactly_the_records_alive_in_the_source(
    tmp_path_factory: pytest.TempPathFactory, history: tuple[list[Line], list[int], int]
) -> None:
    lines, cuts, concurrency = history
    folder = tmp_path_factory.mktemp("lives")
    asyncio.run(_runs(folder, lines, cuts, concurrency))


async def _runs(folder: Path, lines: list[Line], cuts: list[int], concurrency: int) -> None:
    async with running_simulator(port=0, admin=True) as sim:
        path = write_config(folder, sim, operation="insert")
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("concurrency = 10", f"concurrency = {concurrency}"), "utf-8")
        config = load_config(path, environ=SECRET_ENV)
        for end in [*cuts, len(lines)]:
            write_lines(folder / "changes.jsonl", lines[:end])
            result = await run_pass(config, command="run", stop=asyncio.Event())
            assert result.exit_status == 0, result
        expected = expected_records(lines)
        held = await sim_leads(sim)
        mapped = await id_map(config.journal.path)
        assert set(mapped) == set(expected)
        assert len(held) == len(expected)
        for key, fields in expected.items():
            assert held[mapped[key]]["fields"] == fields, (key, lines)


async def test_a_delete_supersedes_a_rejected_change_and_an_update_after_it_fails(
    sim: SimHandle, tmp_path: Path
) -> None:
    """By id: a rejected update then a delete ends synced and gone; an update of the
    deleted id fails with the CRM's own code, and a second delete is ALREADY_DELETED."""
    await seed_leads(sim, 2)
    first, second = str(FIRST_ID), str(FIRST_ID + 1)
    config = write_config(tmp_path, sim)
    write_lines(
        tmp_path / "changes.jsonl",
        [
            {"id": first, "Rating": "Bogus"},  # a restricted picklist: rejected
            {"record": {"id": first}, "operation": "delete"},
            {"record": {"id": second}, "operation": "delete"},
        ],
    )
    result = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # the pass met a rejection...
    assert await sim_leads(sim) == {}  # ...which the delete then superseded
    assert await failures_json(config, tmp_path) == []
    write_lines(
        tmp_path / "changes.jsonl",
        [
            {"id": first, "Rating": "Bogus"},
            {"record": {"id": first}, "operation": "delete"},
            {"record": {"id": second}, "operation": "delete"},
            {"id": second, "First_Name": "Late"},
            {"record": {"id": first}, "operation": "delete"},
        ],
    )
    result = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    (failure,) = await failures_json(config, tmp_path)
    assert (failure["id"], failure["code"], failure["position"]) == (second, "INVALID_DATA", 4)
    async with (
        await Journal.open(config.parent / "journal.db") as journal,
        # The row keeps the code that tells "was not there" from "deleted now".
        journal._db.execute(
            "SELECT state, code FROM records WHERE key = ?", (f"Leads:{first}",)
        ) as cursor,
    ):
        assert tuple(await cursor.fetchone() or ()) == ("synced", "ALREADY_DELETED")


async def test_keys_update_by_mapped_id_and_unknown_keys_fail(
    sim: SimHandle, tmp_path: Path
) -> None:
    """A keyed insert maps its key; a later keyed change updates that id; an update of a
    key never inserted fails UNKNOWN_KEY with its line; `ids` prints the map in every form."""
    config = write_config(tmp_path, sim, operation="insert", extra="")
    lines = [
        {"key": "k1", "record": {"Last_Name": "Kim", "Company": "Acme"}},
        {"key": "k2", "operation": "update", "record": {"First_Name": "Nobody"}},
    ]
    write_lines(tmp_path / "changes.jsonl", lines)
    assert (await run_cli("run", "-c", str(config), cwd=tmp_path)).returncode == 1
    lines.append({"key": "k1", "record": {"First_Name": "Ann"}})  # an insert: now an update
    write_lines(tmp_path / "changes.jsonl", lines)
    assert (await run_cli("run", "-c", str(config), cwd=tmp_path)).returncode == 0
    held = await sim_leads(sim)
    assert [lead["fields"] for lead in held.values()] == [
        {"Last_Name": "Kim", "Company": "Acme", "First_Name": "Ann"}
    ]
    (record_id,) = held
    (failure,) = await failures_json(config, tmp_path)
    assert (failure["code"], failure["position"], failure["key"]) == ("UNKNOWN_KEY", 2, "k2")
    as_csv = await run_cli("ids", "-c", str(config), "--csv", cwd=tmp_path)
    assert as_csv.stdout == f"module,key,id\nLeads,k1,{record_id}\n"
    as_json = await run_cli("ids", "-c", str(config), "--json", "--module", "Leads", cwd=tmp_path)
    assert orjson.loads(as_json.stdout) == [{"module": "Leads", "key": "k1", "id": record_id}]
    other = await run_cli("ids", "-c", str(config), "--module", "Contacts", cwd=tmp_path)
    assert (other.returncode, other.stdout) == (0, "")
    both = await run_cli("ids", "-c", str(config), "--csv", "--json", cwd=tmp_path)
    assert both.returncode == 2


async def test_changes_queued_behind_waiting_ones_never_stall_the_feed(
    sim: SimHandle, tmp_path: Path
) -> None:
    """More changes wait behind unresolved references than the chunker's room, and the
    Accounts they name come last: intake must go on, and every Contact ends linked."""
    contacts = 2500  # each with an update queued behind it: more than the 1,000 of room
    lines: list[Line] = []
    for n in range(contacts):
        ref = {"$ref": {"module": "Accounts", "key": f"a{n % 7}"}}
        record = {"Last_Name": f"C{n}", "Account_Name": ref}
        lines.append({"key": f"c{n}", "module": "Contacts", "record": record})
    lines += [
        {
            "key": f"c{n}",
            "module": "Contacts",
            "operation": "update",
            "record": {"First_Name": "Ann"},
        }
        for n in range(contacts)
    ]
    lines += [
        {"key": f"a{n}", "module": "Accounts", "record": {"Account_Name": f"A{n}"}}
        for n in range(7)
    ]
    write_lines(tmp_path / "changes.jsonl", lines)
    config = write_config(tmp_path, sim, operation="insert")
    result = await run_cli("run", "-c", str(config), cwd=tmp_path, timeout_s=60)
    assert result.returncode == 0, result.stderr
    state = await admin_get(sim, "records?module=Accounts")
    account_of = {
        fields["fields"]["Account_Name"]: rid for rid, fields in state["Accounts"].items()
    }
    held = (await admin_get(sim, "records?module=Contacts"))["Contacts"]
    assert len(held) == contacts
    for record in held.values():
        number = int(record["fields"]["Last_Name"][1:])
        assert record["fields"]["Account_Name"] == {"id": account_of[f"A{number % 7}"]}
        assert record["fields"]["First_Name"] == "Ann"


async def test_a_sqlite_outbox_with_a_key_column_inserts_links_and_deletes(
    sim: SimHandle, tmp_path: Path
) -> None:
    """A table feed: `[source] key` names the key column (never sent), `_operation` deletes,
    and a `<Field>@<Module>` column references an Account by its key."""
    path = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, _module, _operation,"
            ' customer_id, Last_Name, Account_Name, "Account_Name@Accounts")'
        )
        db.executemany(
            "INSERT INTO outbox (_module, _operation, customer_id, Last_Name, Account_Name,"
            ' "Account_Name@Accounts") VALUES (?, ?, ?, ?, ?, ?)',
            [
                ("Contacts", "insert", "c1", "Kim", None, "a1"),
                ("Contacts", "insert", "c2", "Lee", None, "a1"),
                ("Accounts", "insert", "a1", None, "Acme", None),
                ("Contacts", "delete", "c2", None, None, None),
            ],
        )
    config = write_config(tmp_path, sim, feed="app.db", source_type="sqlite", operation="insert")
    text = config.read_text().replace(
        'path = "app.db"', 'path = "app.db"\ntable = "outbox"\ncursor = "seq"\nkey = "customer_id"'
    )
    config.write_text(text)
    result = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    accounts = (await admin_get(sim, "records?module=Accounts"))["Accounts"]
    contacts = (await admin_get(sim, "records?module=Contacts"))["Contacts"]
    ((account_id, account),) = accounts.items()
    assert account["fields"]["Account_Name"] == "Acme"
    assert [c["fields"] for c in contacts.values()] == [
        {"Last_Name": "Kim", "Account_Name": {"id": account_id}}
    ]
    listed = await run_cli("ids", "-c", str(config), "--csv", cwd=tmp_path)
    assert sorted(listed.stdout.splitlines()[1:]) == sorted(
        [f"Accounts,a1,{account_id}", f"Contacts,c1,{next(iter(contacts))}"]
    )

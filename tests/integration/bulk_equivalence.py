"""A mixed feed with bad rows of every kind, and what must agree between the two write APIs.

Used by the records-vs-bulk equivalence and kill tests: `mixed_feed` builds
inserts, updates and upserts in a fixed interleaving, with rows that local
validation refuses (missing mandatory, bad e-mail, restricted picklist, too
long) and rows only the CRM refuses (an unknown id for an update, a lookup
naming no user, an e-mail the CRM's pattern refuses, a duplicate of a seeded
lead's e-mail, an upsert matching two records). No insert names the e-mail
of an upsert: the records API orders changes to one key only, so which of
the two came first would be its own race (`test_bulk_match_values`).
`crm_view` and `failures_view` are what both paths must leave identical;
`job_states` and `sim_job` tell the kill tests where a migration stands.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from syncengine.sim.bulk_jobs import BulkJob, JobState
from syncengine.sim.server import SimHandle
from tests.integration.conftest import FIRST_ID, failures_json, seed_leads, sim_leads

#: Fields the simulator sets itself (times, owner, id): they differ between two simulators.
SYSTEM_FIELDS = frozenset(
    {"id", "Created_Time", "Modified_Time", "Created_By", "Modified_By", "Last_Activity_Time"}
)
#: Leads the feed changes twice: the records API may merge the two changes into one
#: write or not, as its timing has it, so their write counts are not compared.
CHANGED_TWICE = frozenset({str(FIRST_ID + 1), str(FIRST_ID + 2)})
#: The e-mail two seeded leads share: an upsert naming it matches both (DUPLICATE_DATA).
TWIN_EMAIL = "twin@example.org"


@dataclass(frozen=True)
class FeedShape:
    """How many of each operation the feed holds; `seeded` leads exist before it."""

    inserts: int
    updates: int
    upserts: int

    @property
    def seeded(self) -> int:
        """Updated leads, then as many that upserts match by e-mail or inserts clash with."""
        return self.updates + self.upserts // 3 + self.inserts // 113 + 1

    @property
    def lines(self) -> int:
        """Feed lines: the changes, the five lines `mixed_feed` adds."""
        return self.inserts + self.updates + self.upserts + 5


def seeded_email(index: int) -> str:
    """The e-mail the simulator gives the seeded lead `FIRST_ID + index`."""
    return f"user{FIRST_ID + index}@example.org"


def _insert(n: int, shape: FeedShape) -> dict[str, Any]:
    record: dict[str, Any] = {
        "Last_Name": f"Insert {n}",
        "Company": f"New {n}",
        "Email": f"new{n}@example.org",
        "Lead_Source": "Cold Call",
    }
    if n % 97 == 5:
        del record["Last_Name"]  # MANDATORY_NOT_FOUND, found before sending
    elif n % 101 == 7:
        record["Email"] = f"not an e-mail {n}"  # INVALID_DATA, found before sending
    elif n % 103 == 9:
        record["Rating"] = "Hot"  # not in the restricted picklist
    elif n % 107 == 11:
        record["Company"] = "x" * 201  # longer than the field
    elif n % 109 == 13:
        record["Owner"] = {"id": "123"}  # no such user: only the CRM knows
    elif n % 113 == 15:
        # A seeded lead's e-mail: DUPLICATE_DATA from the CRM.
        record["Email"] = seeded_email(shape.updates + shape.upserts // 3 + n // 113)
    elif n % 127 == 17:
        record["Email"] = f"caf\u00e9{n}@example.org"  # the CRM's pattern refuses it
    return {"record": record, "operation": "insert"}


def _update(n: int) -> dict[str, Any]:
    update: dict[str, Any] = {"id": str(FIRST_ID + n), "Company": f"Updated {n}"}
    if n % 3 == 0:
        update["No_of_Employees"] = n
    if n % 89 == 7:
        update["id"] = str(FIRST_ID - 1_000_000 - n)  # no such lead: the CRM refuses
    elif n % 131 == 19:
        update["Email"] = "bad@@example.org"
    elif n % 139 == 21:
        update["Last_Name"] = "y" * 81
    return update


def _upsert(n: int, shape: FeedShape) -> dict[str, Any]:
    # A third match a seeded lead that no update touches (they update it); the rest insert.
    email = seeded_email(shape.updates + n // 3) if n % 3 == 0 else f"up{n}@example.org"
    record: dict[str, Any] = {"Last_Name": f"Upsert {n}", "Email": email, "Description": f"D{n}"}
    if n % 149 == 23:
        record["Rating"] = "Warm"
    elif n % 151 == 25:
        record["Last_Name"] = ""  # blanks a mandatory field
    return {"record": record, "operation": "upsert"}


def mixed_feed(shape: FeedShape) -> list[dict[str, Any] | bytes]:
    """Inserts, updates and upserts interleaved, with bad rows (see the module docstring)."""
    rows: list[dict[str, Any] | bytes] = []
    for n in range(max(shape.inserts, shape.updates, shape.upserts)):
        if n < shape.updates:
            rows.append(_update(n))
        if n < shape.inserts:
            rows.append(_insert(n, shape))
        if n < shape.upserts:
            rows.append(_upsert(n, shape))
    rows.insert(3, b"{not json")
    twin = {"Last_Name": "Twin", "Email": TWIN_EMAIL, "Company": "Which one?"}
    rows.insert(len(rows) // 2, {"record": twin, "operation": "upsert"})
    rows.insert(len(rows) // 3, b'{"id": ')
    # A lead changed twice (its key occurs twice: the records API sends both), and a
    # field blanked (a CSV cell cannot tell blank from absent: the records API sends it).
    once, blanked = sorted(CHANGED_TWICE)
    rows.append({"id": once, "Company": "Updated 1, again"})
    rows.append({"id": blanked, "Company": "", "Description": "Blanked"})
    return rows


async def seed(sim: SimHandle, shape: FeedShape) -> None:
    """The leads the feed updates and matches, and two that share `TWIN_EMAIL`."""
    await seed_leads(sim, shape.seeded)
    twins = [{"Last_Name": f"Twin {n}", "Email": TWIN_EMAIL} for n in range(2)]
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{sim.base_url}/__admin/seed", json={"module": "Leads", "records": twins}
        ) as response,
    ):
        assert response.status == 200, await response.text()


def _fields(entry: dict[str, Any]) -> dict[str, Any]:
    """A lead's user fields and how many writes it took."""
    fields = {k: v for k, v in entry["fields"].items() if k not in SYSTEM_FIELDS}
    return {"fields": fields, "writes": entry["writes"]}


async def crm_view(sim: SimHandle, shape: FeedShape) -> tuple[dict[str, Any], list[str]]:
    """Seeded leads by id with their user fields and writes, and every other lead's, sorted.

    Created leads are compared by their whole content (ids differ between two
    simulators): each carries a distinct `Last_Name` and e-mail. Equal write
    counts mean no change was applied more often by one path than the other
    (`CHANGED_TWICE` leads show None: one write or two).
    """
    seeded: dict[str, Any] = {}
    created: list[str] = []
    for record_id, entry in (await sim_leads(sim)).items():
        if FIRST_ID <= int(record_id) < FIRST_ID + shape.seeded:
            seeded[record_id] = _fields(entry)
            if record_id in CHANGED_TWICE:
                assert seeded[record_id]["writes"] >= 1
                seeded[record_id]["writes"] = None
        else:
            created.append(orjson.dumps(_fields(entry), option=orjson.OPT_SORT_KEYS).decode())
    return seeded, sorted(created)


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A `failures --json` row as both paths must agree on it: all of it, but one key.

    The only difference allowed is the one interface.md documents: a bulk
    result names the field of a DUPLICATE_DATA but not the record it clashed
    with, so `details.id` is left out of duplicates that are not an upsert's
    ambiguous match.
    """
    out = dict(row)
    details = dict(out.get("details") or {})
    if out["code"] == "DUPLICATE_DATA" and "more_records" not in details:
        details.pop("id", None)
    out["details"] = details
    return out


async def failures_view(config: Path, cwd: Path) -> list[dict[str, Any]]:
    """Every failure, whole, by position (`comparable`)."""
    rows = await failures_json(config, cwd)
    return sorted((comparable(row) for row in rows), key=lambda r: repr(r["position"]))


def job_states(journal: Path) -> list[tuple[str, str, bool]]:
    """The migration's journaled jobs in order: (operation, state, job id known)."""
    if not journal.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
        try:
            rows = db.execute(
                "SELECT operation, state, job_id IS NOT NULL FROM bulk_jobs ORDER BY id"
            ).fetchall()
        except sqlite3.OperationalError:  # not created yet, or busy
            return []
    return [(str(op), str(state), bool(known)) for op, state, known in rows]


def journaled_job_ids(journal: Path) -> int:
    """How many jobs the migration has journaled with their CRM job id."""
    return sum(1 for _op, _state, known in job_states(journal) if known)


def sim_job(sim: SimHandle, number: int) -> BulkJob | None:
    """The simulator's `number`th job (1-based), once created."""
    jobs = list(sim.state.bulk.jobs.values())
    return jobs[number - 1] if len(jobs) >= number else None


#: When to kill a migration: a test of the simulator and the journal it writes.
Moment = Callable[[SimHandle, Path], bool]


def uploading(count: int) -> Moment:
    """The `count`th file has reached the simulator (its id may not be journaled)."""
    return lambda sim, _journal: sim.state.stats.bulk_uploads >= count


def created(number: int) -> Moment:
    """Job `number` exists in the simulator and the journal holds its id."""
    return lambda sim, journal: (
        sim_job(sim, number) is not None and journaled_job_ids(journal) >= number
    )


def polled(number: int) -> Moment:
    """Job `number` was polled while it ran: a job's state moves only when it is
    looked at, or settles on a timer at its end, so INPROGRESS means a poll saw it."""

    def moment(sim: SimHandle, _journal: Path) -> bool:
        job = sim_job(sim, number)
        return job is not None and job.state is JobState.INPROGRESS

    return moment


def downloading(number: int) -> Moment:
    """Job `number`'s result is being downloaded."""

    def moment(sim: SimHandle, _journal: Path) -> bool:
        job = sim_job(sim, number)
        return job is not None and job.downloads >= 1

    return moment

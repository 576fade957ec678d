"""A bulk result row's refusal journaled as the records API answers the same refusal.

The reference is the simulator's records API itself: each record is written
once by its per-record rules (`writes.insert_one` / `update_one` /
`upsert_one`, what a records-API request answers) into one store and once as
a bulk-write row (`bulk_jobs`' row rules, whose `ERRORS` cell says only
`CODE-Column`) into a twin store; the row's answer, read as the client reads
a result file and passed through `outcomes.as_records_api` with the field
metadata the simulator serves, must be the records API's element: the same
code, message and details, bar a DUPLICATE_DATA's `id` (interface.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from syncengine.bulk.jobs_journal import JobLine
from syncengine.bulk.outcomes import as_records_api, rows_for
from syncengine.crm.bulk_results import row_outcome
from syncengine.crm.field_rules import ModuleRules, compile_rules
from syncengine.journal import RecordUpdate, encode_payload
from syncengine.model import Change, Operation, RecordOutcome, RecordState, Verdict
from syncengine.sim.bulk_jobs import RowResult, row_result
from syncengine.sim.config import SimConfig
from syncengine.sim.schema import field_metadata
from syncengine.sim.state import SimState
from syncengine.sim.validation import ErrorElement
from syncengine.sim.writes import WriteContext, duplicate_order, insert_one, update_one, upsert_one

SEEDED = "4876876000000100001"
TWIN = "twin@example.org"


def fresh_state() -> SimState:
    """A simulator with one lead to update and two that share an e-mail."""
    state = SimState(SimConfig())
    now = "2024-01-01T00:00:00+00:00"
    state.store.put("Leads", SEEDED, {"Last_Name": "Seeded", "Email": "seeded@x.org"}, now)
    for n, record_id in enumerate(("4876876000000100002", "4876876000000100003")):
        state.store.put("Leads", record_id, {"Last_Name": f"Twin {n}", "Email": TWIN}, now)
    return state


def context(state: SimState) -> WriteContext:
    return WriteContext(
        module=state.modules["Leads"],
        store=state.store,
        faults=state.faults,
        config=state.config,
        now="2024-01-02T00:00:00+00:00",
        user=dict(state.schema.users[0]),
        layout_rules=False,
    )


def records_api(operation: Operation, record: dict[str, Any]) -> ErrorElement:
    """What a records-API request answers for `record`."""
    ctx = context(fresh_state())
    if operation is Operation.INSERT:
        return insert_one(ctx, record)
    if operation is Operation.UPDATE:
        return update_one(ctx, record, None)
    return upsert_one(ctx, record, duplicate_order(ctx.module, None))


def bulk_row(operation: Operation, record: dict[str, Any]) -> RowResult:
    """The result-file line a bulk job writes for `record` (update by id, upsert by Email)."""
    ctx = context(fresh_state())
    if operation is Operation.INSERT:
        return row_result(insert_one(ctx, record))
    if operation is Operation.UPDATE:
        return row_result(update_one(ctx, record, None))
    return row_result(upsert_one(ctx, record, ["Email"]))


def leads_rules() -> ModuleRules:
    state = fresh_state()
    return compile_rules("Leads", field_metadata(state.schema.modules["Leads"]))


CASES: list[tuple[str, Operation, dict[str, Any]]] = [
    ("no Last_Name", Operation.INSERT, {"Company": "Acme"}),
    ("bad e-mail", Operation.INSERT, {"Last_Name": "L", "Email": "not an e-mail"}),
    ("e-mail the CRM refuses", Operation.INSERT, {"Last_Name": "L", "Email": "caf\u00e9@x.org"}),
    ("restricted picklist", Operation.INSERT, {"Last_Name": "L", "Rating": "Hot"}),
    ("too long", Operation.INSERT, {"Last_Name": "x" * 81}),
    ("too long e-mail", Operation.INSERT, {"Last_Name": "L", "Email": "a" * 95 + "@x.org"}),
    ("not a number", Operation.INSERT, {"Last_Name": "L", "No_of_Employees": "many"}),
    ("owner unknown", Operation.INSERT, {"Last_Name": "L", "Owner": {"id": "123"}}),
    ("duplicate e-mail", Operation.INSERT, {"Last_Name": "L", "Email": "seeded@x.org"}),
    ("unknown id", Operation.UPDATE, {"id": "4876876000000999999", "Company": "C"}),
    ("blanked mandatory", Operation.UPDATE, {"id": SEEDED, "Last_Name": None}),
    ("update bad e-mail", Operation.UPDATE, {"id": SEEDED, "Email": "bad@@x.org"}),
    ("ambiguous upsert", Operation.UPSERT, {"Last_Name": "L", "Email": TWIN}),
    (
        "upsert bad picklist",
        Operation.UPSERT,
        {"Last_Name": "L", "Email": "n@x.org", "Rating": "x"},
    ),
]


def change_of(operation: Operation, record: dict[str, Any]) -> Change:
    return Change(module="Leads", operation=operation, record=record, key="k")


@pytest.mark.parametrize(("case", "operation", "record"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("with_rules", [True, False], ids=["metadata", "no-metadata"])
def test_a_bulk_refusal_reads_as_the_records_api_answers_it(
    case: str, operation: Operation, record: dict[str, Any], with_rules: bool
) -> None:
    expected = records_api(operation, record)
    assert expected["code"] != "SUCCESS", case
    line = bulk_row(operation, record)
    assert "-" in line.errors or line.errors == expected["code"]
    answer = row_outcome(line.status, line.record_id, line.errors)
    rules = leads_rules() if with_rules else None
    got = as_records_api(answer, change_of(operation, record), rules, find_by="Email")
    details = dict(expected["details"])
    if expected["code"] == "DUPLICATE_DATA" and "more_records" not in details:
        details.pop("id")  # a result file does not name the record clashed with
    if not with_rules:
        # Without the field metadata only what the row itself shows can be stated.
        details.pop("expected_data_type", None)
        details.pop("maximum_length", None)
    assert (got.code, got.message, got.details) == (expected["code"], expected["message"], details)
    assert got.verdict is answer.verdict is Verdict.REJECT


def test_a_locked_record_names_the_record_and_is_retried() -> None:
    answer = row_outcome("SKIPPED", "", "RECORD_LOCKED-id")
    got = as_records_api(answer, change_of(Operation.UPDATE, {"id": SEEDED, "Company": "C"}))
    assert got.code == "RECORD_LOCKED"
    assert got.message == "Sorry, you cannot perform this operation as the record is locked."
    assert got.details == {"id": SEEDED}
    assert got.verdict is Verdict.RETRY


@pytest.mark.parametrize(
    "answer",
    [
        row_outcome("ADDED", "4876876000000100009", ""),
        row_outcome("SKIPPED", "", ""),
        row_outcome("SKIPPED", "", "CANNOT_PROCESS-Email"),
        RecordOutcome(Verdict.RETRY, "BULK_JOB_FAILED", "the bulk-write job ended FAILED"),
    ],
    ids=["added", "skipped", "unknown code", "job failed"],
)
def test_other_answers_are_kept_as_they_are(answer: RecordOutcome) -> None:
    change = change_of(Operation.INSERT, {"Last_Name": "L"})
    assert as_records_api(answer, change, leads_rules()) is answer


def test_rows_for_journals_the_records_api_refusal() -> None:
    change = change_of(Operation.INSERT, {"Last_Name": "L", "Email": "caf\u00e9@x.org"})
    line = JobLine("k", 7, "feed", encode_payload(change))
    answer = row_outcome("SKIPPED", "", "INVALID_DATA-Email")
    rows = rows_for([line], [answer], leads_rules())
    assert (rows.failed, rows.synced, rows.handed_over) == (1, 0, 0)
    update = rows.updates[0]
    assert isinstance(update, RecordUpdate)
    assert update.state is RecordState.FAILED
    assert (update.code, update.message, update.details, update.position) == (
        "INVALID_DATA",
        "invalid data",
        {"api_name": "Email", "expected_data_type": "email"},
        7,
    )


def test_an_upsert_clashing_on_another_unique_field_is_no_ambiguous_match() -> None:
    """Only the job's match field held by several records is `more_records`; a clash on
    another unique field names that field (and not the record: the file does not say)."""
    change = change_of(Operation.UPSERT, {"Last_Name": "L", "Email": "a@x.org", "Code": "7"})
    clash = as_records_api(row_outcome("SKIPPED", "", "DUPLICATE_DATA-Code"), change, None)
    assert (clash.code, clash.details) == ("DUPLICATE_DATA", {"api_name": "Code"})
    ambiguous = row_outcome("SKIPPED", "", "DUPLICATE_DATA-Email")
    got = as_records_api(ambiguous, change, None, find_by="Email")
    assert got.details == {"api_name": "Email", "more_records": True}

"""A bulk-write job's answers as journal rows, as the records path would write them; pure.

A row the CRM wrote is `synced` with its record id; a row it rejected is
`failed` with the code, message and details and its whole change as the
payload `retry` re-sends; anything else (a row the job skipped or could not
process, a job that ended FAILED, a job whose fate is unknown) is `pending`
with its payload, due at once, so the records pass that follows re-drives it
(`Journal.due`). Every row keeps its feed position and file, which is how
that pass's replay window knows the feed's line is settled.

A rejected row is journaled with what the records API answers for the same
refusal (`as_records_api`), so `failures` reads alike whichever API wrote a
record: the result file says only `CODE-Column`, and the message and the
other `details` keys are derived from the code, the column, the value the row
sent and the field's metadata. What cannot be derived (the id of the record a
DUPLICATE_DATA clashed with) is left out (interface.md, "Bulk write").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from syncengine.bulk.jobs_journal import JobLine
from syncengine.crm.field_checks import ID_FIELD, Rejection, bad_id
from syncengine.crm.field_rules import ModuleRules
from syncengine.engine.owed import blamed_position
from syncengine.journal import RecordUpdate, SyncedRow, decode_payload, encode_payload
from syncengine.model import Change, Operation, RecordOutcome, RecordState, Verdict

#: Rows of a job that was journaled but whose creation is unknown (the crash bound).
JOB_UNKNOWN = "BULK_JOB_UNKNOWN"
#: Rows of an insert job whose result file could not be matched to the rows sent.
RESULT_UNREADABLE = "BULK_RESULT_UNREADABLE"

#: The records API's message for a per-record code that names a field or the record
#: (crm-api.md §1.5, §1.6 and the simulator's answers, which follow them).
RECORDS_API_MESSAGES: Final = {
    "INVALID_DATA": "invalid data",
    "MANDATORY_NOT_FOUND": "required field not found",
    "DUPLICATE_DATA": "duplicate data",
    "RECORD_LOCKED": "Sorry, you cannot perform this operation as the record is locked.",
    "RECORD_IN_BLUEPRINT": "The record is in blue print",
    "NOT_APPROVED": "record not approved",
}
#: Codes whose records-API details name the record itself (`{"id"}`), not a field.
_RECORD_CODES: Final = frozenset({"RECORD_LOCKED", "NOT_APPROVED"})
#: Field types whose too-long value is `maximum_length`, not a wrong type.
_LENGTH_TYPES: Final = frozenset(
    {"text", "textarea", "picklist", "email", "phone", "website", "multiselectpicklist"}
)


@dataclass(slots=True)
class JobRows:
    """The journal rows for one job's lines, and how many ended which way."""

    updates: list[RecordUpdate | SyncedRow] = field(default_factory=list)
    synced: int = 0
    failed: int = 0
    handed_over: int = 0


def _invalid_data(column: str, value: Any, rules: ModuleRules | None) -> Rejection:
    """`INVALID_DATA` for `column` as the records API states it for the value sent."""
    if column == ID_FIELD:
        return bad_id()
    details: dict[str, Any] = {"api_name": column}
    if isinstance(value, dict) and "id" in value:
        details["id"] = str(value["id"])  # a lookup naming no record
        return Rejection("INVALID_DATA", RECORDS_API_MESSAGES["INVALID_DATA"], details)
    if rules is not None and (rule := rules.fields.get(column)) is not None:
        checker = rules.checkers.get(column)
        local = checker(value) if checker is not None and value is not None else None
        if local is not None and local.code == "INVALID_DATA" and local.api_name == column:
            return local  # the field's own rule names the problem, as the CRM does
        text = ";".join(map(str, value)) if isinstance(value, list) else value
        if (
            rule.data_type in _LENGTH_TYPES
            and rule.length is not None
            and isinstance(text, str)
            and len(text) > rule.length
        ):
            details["maximum_length"] = str(rule.length)
        elif rule.data_type:
            details["expected_data_type"] = rule.data_type
    return Rejection("INVALID_DATA", RECORDS_API_MESSAGES["INVALID_DATA"], details)


def as_records_api(
    outcome: RecordOutcome,
    change: Change,
    rules: ModuleRules | None = None,
    *,
    find_by: str | None = None,
) -> RecordOutcome:
    """A result row's refusal as the records API answers the same refusal; others as they are.

    `outcome.details["errors"]` is the parsed `ERRORS` cell (`bulk_results`); its
    first code and column are what the records API reports (it names one
    problem per record). `rules` (the module's field metadata, when known)
    gives the `expected_data_type` or `maximum_length` an `INVALID_DATA` names;
    `find_by` is the job's match field, which an upsert's DUPLICATE_DATA names
    only when more than one record holds the value (`more_records`).
    """
    errors = outcome.details.get("errors") if outcome.details else None
    if not errors or outcome.code not in RECORDS_API_MESSAGES:
        return outcome
    columns = errors[0].get("columns") or []
    column = columns[0] if columns else None
    code = outcome.code
    record: Mapping[str, Any] = change.record
    if code in _RECORD_CODES:
        target = outcome.crm_id or change.record_id or record.get(ID_FIELD)
        details: dict[str, Any] = {} if target is None else {"id": str(target)}
        rejection = Rejection(code, RECORDS_API_MESSAGES[code], details)
    elif column is None:
        rejection = Rejection(code, RECORDS_API_MESSAGES[code], {})
    elif code == "INVALID_DATA":
        rejection = _invalid_data(column, record.get(column), rules)
    elif code == "DUPLICATE_DATA" and change.operation is Operation.UPSERT and column == find_by:
        # An upsert's match field that more than one record holds: an ambiguous match.
        details = {"api_name": column, "more_records": True}
        rejection = Rejection(code, RECORDS_API_MESSAGES[code], details)
    else:
        rejection = Rejection(code, RECORDS_API_MESSAGES[code], {"api_name": column})
    return RecordOutcome(
        outcome.verdict, rejection.code, rejection.message, rejection.details, outcome.crm_id
    )


def rows_for(
    lines: Sequence[JobLine],
    outcomes: Sequence[RecordOutcome],
    rules: ModuleRules | None = None,
    *,
    find_by: str | None = None,
) -> JobRows:
    """The journal rows for `lines` answered by `outcomes` (one each, in order); `rules`
    (the module's field metadata, when known) and `find_by` (the job's) complete the
    refusals' details as the records API states them (`as_records_api`)."""
    out = JobRows()
    for line, answer in zip(lines, outcomes, strict=True):
        change = decode_payload(line.payload, attempts=1)
        outcome = as_records_api(answer, change, rules, find_by=find_by)
        if outcome.verdict is Verdict.SYNCED:
            out.synced += 1
            out.updates.append(
                (
                    line.key,
                    change.module,
                    outcome.crm_id or change.record_id,
                    change.operation.value,
                    1,
                    line.position,
                    line.source,
                )
            )
            continue
        failed = outcome.verdict is Verdict.REJECT
        blamed = blamed_position(change, outcome.details.get("api_name")) if failed else None
        if failed:
            out.failed += 1
        else:
            out.handed_over += 1
        out.updates.append(
            RecordUpdate(
                key=line.key,
                module=change.module,
                record_id=outcome.crm_id or change.record_id,
                operation=change.operation,
                state=RecordState.FAILED if failed else RecordState.PENDING,
                attempts=1,
                code=outcome.code,
                message=outcome.message or None,
                details=outcome.details or None,
                next_attempt_at=None,
                payload=encode_payload(change, blamed=blamed),
                position=line.position,
                source_id=line.source,
            )
        )
    return out


def handed_over(lines: Sequence[JobLine], code: str, message: str) -> JobRows:
    """Every line as `pending` under `code`: the records path sends them."""
    return rows_for(lines, [RecordOutcome(Verdict.RETRY, code, message)] * len(lines))


def failed_unknown(lines: Sequence[JobLine], message: str) -> JobRows:
    """Every line of an insert job with an unreadable result as `failed`: it may be written."""
    return rows_for(lines, [RecordOutcome(Verdict.REJECT, RESULT_UNREADABLE, message)] * len(lines))

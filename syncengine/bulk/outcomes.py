"""A bulk-write job's answers as journal rows, as the records path would write them; pure.

A row the CRM wrote is `synced` with its record id; a row it rejected is
`failed` with the code, message and details and its whole change as the
payload `retry` re-sends; anything else (a row the job skipped or could not
process, a job that ended FAILED, a job whose fate is unknown) is `pending`
with its payload, due at once, so the records pass that follows re-drives it
(`Journal.due`). Every row keeps its feed position and file, which is how
that pass's replay window knows the feed's line is settled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from syncengine.bulk.jobs_journal import JobLine
from syncengine.engine.owed import blamed_position
from syncengine.journal import RecordUpdate, SyncedRow, decode_payload, encode_payload
from syncengine.model import RecordOutcome, RecordState, Verdict

#: Rows of a job that was journaled but whose creation is unknown (the crash bound).
JOB_UNKNOWN = "BULK_JOB_UNKNOWN"
#: Rows of an insert job whose result file could not be matched to the rows sent.
RESULT_UNREADABLE = "BULK_RESULT_UNREADABLE"


@dataclass(slots=True)
class JobRows:
    """The journal rows for one job's lines, and how many ended which way."""

    updates: list[RecordUpdate | SyncedRow] = field(default_factory=list)
    synced: int = 0
    failed: int = 0
    handed_over: int = 0


def rows_for(lines: Sequence[JobLine], outcomes: Sequence[RecordOutcome]) -> JobRows:
    """The journal rows for `lines` answered by `outcomes` (one each, in order)."""
    out = JobRows()
    for line, outcome in zip(lines, outcomes, strict=True):
        change = decode_payload(line.payload, attempts=1)
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

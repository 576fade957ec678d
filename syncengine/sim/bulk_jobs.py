"""Bulk-write jobs: their life (`ADDED` → `INPROGRESS` → `COMPLETED` / `FAILED`) and rows.

A job is created `ADDED`, turns `INPROGRESS` after `bulk_queue_s` and ends
`bulk_job_s` later: `FAILED` (nothing applied) when its seeded fault says so,
else `COMPLETED` with every row written through the records API's own
per-record rules (`writes.insert_one` / `update_one` / `upsert_one`), so a
row fails here exactly when the same record would fail over REST. States are
worked out from the simulator's clock whenever a job is looked at, and a
timer settles the job on time when nobody looks (crm-bulk-write.md §3, §8).

Each row gets a `RowResult` (`ADDED`, `UPDATED` or `SKIPPED`, the record id,
the `ERRORS` text `CODE-Column`) that `bulk_result` writes into the result file.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from syncengine.sim.bulk_cells import cell_value
from syncengine.sim.bulk_request import MAX_ROWS, CsvFile, JobSpec
from syncengine.sim.validation import ErrorElement, error
from syncengine.sim.writes import WriteContext, insert_one, update_one, upsert_one

#: First id handed to an uploaded file and to a job (18–19 digits, as real ids).
FIRST_FILE_ID: Final = 4_876_876_000_005_000_001
FIRST_JOB_ID: Final = 4_876_876_000_006_000_001


class JobState(enum.StrEnum):
    """A job's `status` as `GET /crm/bulk/v2/write/{id}` spells it (JSON samples)."""

    ADDED = "ADDED"
    INPROGRESS = "INPROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class RowResult:
    """One row's line in the result file."""

    status: str  # ADDED, UPDATED or SKIPPED
    record_id: str
    errors: str


@dataclass(slots=True)
class BulkJob:
    """One job: what was asked, when, its fate, and once settled its rows."""

    id: str
    spec: JobSpec
    upload: CsvFile
    created_time: str
    created_at: float
    queue_s: float
    run_s: float
    fails: bool
    state: JobState = JobState.ADDED
    results: list[RowResult] | None = None
    downloads: int = 0
    timer: asyncio.TimerHandle | None = None

    def counts(self) -> dict[str, int]:
        """The file counts; added + updated + skipped = total once the job is done."""
        rows = self.results or []
        added = sum(1 for r in rows if r.status == "ADDED")
        updated = sum(1 for r in rows if r.status == "UPDATED")
        return {
            "added_count": added,
            "updated_count": updated,
            "skipped_count": len(rows) - added - updated,
            "total_count": len(self.upload.rows),
        }


@dataclass(slots=True)
class BulkState:
    """Uploaded files and jobs of one simulator, with their id counters and fault stream."""

    seed: int = 0
    uploads: dict[str, CsvFile] = field(default_factory=dict)
    jobs: dict[str, BulkJob] = field(default_factory=dict)
    next_file_id: int = FIRST_FILE_ID
    next_job_id: int = FIRST_JOB_ID
    fail_stream: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.reset(self.seed)

    def reset(self, seed: int) -> None:
        """Forget files and jobs (their timers are cancelled); restart the fault stream."""
        for job in self.jobs.values():
            if job.timer is not None:
                job.timer.cancel()
        self.seed = seed
        self.uploads.clear()
        self.jobs.clear()
        self.next_file_id = FIRST_FILE_ID
        self.next_job_id = FIRST_JOB_ID
        self.fail_stream = random.Random(f"{seed}:bulk_fault_fail")

    def add_upload(self, upload: CsvFile) -> str:
        """Keep an uploaded file; its new `file_id`."""
        file_id = str(self.next_file_id)
        self.next_file_id += 1
        self.uploads[file_id] = upload
        return file_id

    def draw_failure(self, probability: float) -> bool:
        """Whether the next job fails; drawn only while the knob is on."""
        return probability > 0.0 and self.fail_stream.random() < probability

    def new_job_id(self) -> str:
        """A fresh job id."""
        job_id = str(self.next_job_id)
        self.next_job_id += 1
        return job_id


def _row_record(spec: JobSpec, fields: dict[str, Any], row: list[str]) -> dict[str, Any]:
    """The records-API body of one CSV row, following the job's field mappings."""
    record: dict[str, Any] = {}
    for mapping in spec.mappings:
        index = mapping.index
        cell = row[index] if index is not None and index < len(row) else ""
        if not cell and mapping.default is not None:
            cell = mapping.default
        if not cell:
            if not spec.ignore_empty:
                record[mapping.api_name] = None  # an empty cell blanks the field
            continue
        field_spec = fields.get(mapping.api_name)
        value = cell if field_spec is None else cell_value(field_spec, cell, mapping.format)
        record[mapping.api_name] = value
    return record


def _update_by_field(ctx: WriteContext, record: dict[str, Any], find_by: str) -> ErrorElement:
    """Update the one record whose `find_by` field holds the row's value; never insert."""
    ids = ctx.store.find(ctx.name, find_by, record.get(find_by))
    if not ids:
        return error("RESOURCE_NOT_FOUND", "record not found", {"api_name": find_by})
    if len(ids) > 1:
        return error("DUPLICATE_DATA", "duplicate data", {"api_name": find_by})
    return update_one(ctx, record, ids[0])


def _write_row(ctx: WriteContext, spec: JobSpec, record: dict[str, Any]) -> ErrorElement:
    """Apply one row as the records API would apply the same record."""
    find_by = spec.find_by
    if spec.operation == "insert":
        return insert_one(ctx, record)
    if spec.operation == "update":
        if find_by == "id":
            return update_one(ctx, record, None)
        return _update_by_field(ctx, record, str(find_by))
    if find_by == "id":
        known = record.get("id")
        if isinstance(known, str) and ctx.store.exists(ctx.name, known):
            return update_one(ctx, record, None)
        return insert_one(ctx, {k: v for k, v in record.items() if k != "id"})
    return upsert_one(ctx, record, [str(find_by)])


def row_result(element: ErrorElement) -> RowResult:
    """The result line of a records-API element: `STATUS`, `RECORD_ID`, `ERRORS`."""
    if element.get("code") == "SUCCESS":
        status = "ADDED" if element.get("message") == "record added" else "UPDATED"
        return RowResult(status, str(element["details"]["id"]), "")
    column = element.get("details", {}).get("api_name")
    code = str(element.get("code"))
    return RowResult("SKIPPED", "", f"{code}-{column}" if column else code)


def run_rows(ctx: WriteContext, job: BulkJob) -> list[RowResult]:
    """Write every row in file order; rows past the 25,000th are refused `LIMIT_EXCEEDED`."""
    fields = dict(ctx.module.schema.fields)
    results: list[RowResult] = []
    for position, row in enumerate(job.upload.rows):
        if position >= MAX_ROWS:
            results.append(RowResult("SKIPPED", "", "LIMIT_EXCEEDED"))
            continue
        record = _row_record(job.spec, fields, row)
        results.append(row_result(_write_row(ctx, job.spec, record)))
    return results


def advance(job: BulkJob, now: float, write: Callable[[BulkJob], list[RowResult]]) -> None:
    """Bring `job` to the state its age gives; `write` applies its rows when it completes."""
    if job.state in (JobState.COMPLETED, JobState.FAILED):
        return
    age_s = now - job.created_at
    if age_s >= job.queue_s:
        job.state = JobState.INPROGRESS
    if age_s >= job.queue_s + job.run_s:
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        if job.fails:
            job.state = JobState.FAILED
        else:
            job.results = write(job)
            job.state = JobState.COMPLETED

"""What the Bulk Write API's JSON answers mean, and the errors its client raises; pure.

Answers are judged by their body, never by HTTP status alone: upload errors
come under HTTP 200 in Zoho's OAS and Postman collection and under 400/413
in its docs (crm-bulk-write.md §1), unknown jobs under 404 or 400 (§3). A
job's status is read as `ADDED`, `IN PROGRESS` (also spelled `INPROGRESS`),
`COMPLETED` or `FAILED`; any other spelling counts as still running, so the
poll goes on to its deadline rather than reading results that are not there.

Errors::

    SyncError
    └── BulkWriteError            a bulk call did not do what was asked (`code`, `http_status`)
        ├── BulkRefusedError      (also FatalError) refused; retrying cannot help
        ├── BulkUnavailableError  (also TransportError) no usable answer after retries
        ├── BulkJobUnknownError   an insert job was sent and not answered: it may exist
        ├── BulkPollTimeoutError  the job did not finish by the deadline (`job_id`, `last`)
        └── BulkResultError       the result file cannot be read as an answer to the file sent
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import orjson

from syncengine.errors import FatalError, SyncError, TransportError


class BulkWriteError(SyncError):
    """A bulk-write call did not do what was asked; `code` is the CRM's or ours."""

    def __init__(self, message: str, *, code: str, http_status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class BulkRefusedError(BulkWriteError, FatalError):
    """The CRM refused the call for a reason a resend cannot change (scope, body, file)."""


class BulkUnavailableError(BulkWriteError, TransportError):
    """No usable answer after the retries allowed; nothing is known to have happened."""


class BulkJobUnknownError(BulkWriteError):
    """An insert job was sent and no answer came: it may exist, and re-creating may duplicate."""


class BulkPollTimeoutError(BulkWriteError):
    """The job had not finished by the deadline; poll `job_id` again later."""

    def __init__(self, message: str, *, job_id: str, last: JobStatus | None) -> None:
        super().__init__(message, code="POLL_DEADLINE")
        self.job_id = job_id
        self.last = last


class BulkResultError(BulkWriteError):
    """The result file is not an answer to the file that was sent."""


class JobPhase(enum.StrEnum):
    """Where a job is; RUNNING covers ADDED, IN PROGRESS and spellings not known."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job's details as `GET /crm/bulk/v2/write/{id}` gave them."""

    job_id: str
    status: str
    phase: JobPhase
    download_url: str | None
    added: int
    updated: int
    skipped: int
    total: int


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: status and decoded JSON body (None when not JSON)."""

    http_status: int
    body: Any


def decode(http_status: int, payload: bytes) -> Answer:
    """The answer with its body decoded; a body that is not JSON becomes None."""
    try:
        body = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        body = None
    return Answer(http_status, body)


def error_code(answer: Answer) -> str:
    """The error code an answer carries: `code`, the bare `ERROR_CODE` style, or HTTP_<n>."""
    body = answer.body
    if isinstance(body, dict):
        if isinstance(body.get("code"), str):
            return str(body["code"])
        if "ERROR_CODE" in body:
            return "BAD_REQUEST_HEADERS" if "x-error" in body else str(body["ERROR_CODE"])
    return f"HTTP_{answer.http_status}"


def is_success(answer: Answer, code: str) -> bool:
    """Whether the body says `status: success` with `code` (the HTTP status is not trusted)."""
    body = answer.body
    return (
        isinstance(body, dict)
        and body.get("status") == "success"
        and body.get("code") == code
        and isinstance(body.get("details"), dict)
    )


def detail_id(answer: Answer, key: str) -> str | None:
    """`details[key]` as a string of digits (ids may come as numbers), or None."""
    value = answer.body["details"].get(key)
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return text if text.isdigit() else None


def phase_of(status: str) -> JobPhase:
    """COMPLETED and FAILED end a job; everything else means wait."""
    normal = status.replace(" ", "").replace("_", "").upper()
    if normal == "COMPLETED":
        return JobPhase.COMPLETED
    if normal == "FAILED":
        return JobPhase.FAILED
    return JobPhase.RUNNING


def _count(file: dict[str, Any], key: str) -> int:
    value = file.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_job_status(answer: Answer, job_id: str) -> JobStatus | None:
    """The job's status from a details answer, or None when the body is not one."""
    body = answer.body
    if answer.http_status != 200 or not isinstance(body, dict):
        return None
    status = body.get("status")
    if not isinstance(status, str):
        return None
    resources = body.get("resource")
    file: dict[str, Any] = {}
    if isinstance(resources, list) and resources and isinstance(resources[0], dict):
        found = resources[0].get("file")
        file = found if isinstance(found, dict) else {}
    result = body.get("result")
    url = result.get("download_url") if isinstance(result, dict) else None
    return JobStatus(
        job_id=job_id,
        status=status,
        phase=phase_of(status),
        download_url=url if isinstance(url, str) and url else None,
        added=_count(file, "added_count"),
        updated=_count(file, "updated_count"),
        skipped=_count(file, "skipped_count"),
        total=_count(file, "total_count"),
    )

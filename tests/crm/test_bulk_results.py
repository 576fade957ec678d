"""Pure reading of bulk-write answers: result files, row codes, job status, error bodies."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest

from syncengine.crm.bulk_answers import (
    Answer,
    BulkResultError,
    JobPhase,
    error_code,
    is_success,
    parse_job_status,
    phase_of,
)
from syncengine.crm.bulk_csv import plan_files
from syncengine.crm.bulk_results import (
    failed_job_outcomes,
    parse_errors,
    parse_result,
    row_outcome,
)
from syncengine.model import Operation, Verdict

SENT = plan_files(
    "Leads",
    Operation.UPSERT,
    [{"Email": "a@example.org", "Last_Name": "A"}, {"Email": "b@example.org", "Last_Name": "B"}],
    find_by="Email",
).files[0]


def result_zip(rows: list[list[str]], *, files: int = 1) -> bytes:
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in range(files):
            archive.writestr(f"Leads-{n}.csv", text.getvalue())
    return buffer.getvalue()


HEADER = ["Email", "Last_Name", "STATUS", "RECORD_ID", "ERRORS"]


def test_errors_text_is_split_into_codes_and_columns() -> None:
    """`CODE-Col,Col:CODE-Col` gives each code with its columns."""
    assert parse_errors("MANDATORY_NOT_FOUND-Company,Last_Name:DUPLICATE_DATA-Email") == [
        ("MANDATORY_NOT_FOUND", ["Company", "Last_Name"]),
        ("DUPLICATE_DATA", ["Email"]),
    ]
    assert parse_errors("LIMIT_EXCEEDED") == [("LIMIT_EXCEEDED", [])]
    assert parse_errors("") == []


@pytest.mark.parametrize(
    ("status", "record_id", "errors", "verdict", "code"),
    [
        ("ADDED", "4876876000000000001", "", Verdict.SYNCED, "SUCCESS"),
        ("Updated", "4876876000000000001", "", Verdict.SYNCED, "SUCCESS"),
        ("ADDED", "", "", Verdict.RETRY, "BAD_RESPONSE"),
        ("SKIPPED", "", "INVALID_DATA-Email", Verdict.REJECT, "INVALID_DATA"),
        ("SKIPPED", "", "DUPLICATE_DATA-Email", Verdict.REJECT, "DUPLICATE_DATA"),
        ("SKIPPED", "", "CANNOT_PROCESS-Email", Verdict.RETRY, "CANNOT_PROCESS"),
        ("SKIPPED", "", "", Verdict.RETRY, "SKIPPED"),
        ("UNPROCESSED", "", "", Verdict.RETRY, "UNPROCESSED"),
    ],
)
def test_row_outcomes_use_the_records_api_classification(
    status: str, record_id: str, errors: str, verdict: Verdict, code: str
) -> None:
    """Written rows are synced with their id; errors go through classification."""
    outcome = row_outcome(status, record_id, errors)
    assert (outcome.verdict, outcome.code) == (verdict, code)
    if verdict is Verdict.SYNCED:
        assert outcome.crm_id == record_id


def test_result_rows_join_the_rows_sent() -> None:
    """Rows by position, checked against the key echoed in the first column."""
    payload = result_zip(
        [
            HEADER,
            ["a@example.org", "A", "ADDED", "11", ""],
            ["b@example.org", "B", "SKIPPED", "", "MANDATORY_NOT_FOUND-Company"],
        ]
    )
    first, second = parse_result(payload, SENT)
    assert (first.verdict, first.crm_id) == (Verdict.SYNCED, "11")
    assert (second.code, second.details["api_name"]) == ("MANDATORY_NOT_FOUND", "Company")


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"not a zip", "unreadable"),
        (result_zip([HEADER], files=2), "2 CSV files"),
        (result_zip([["Email", "STATUS", "RECORD_ID"]]), "no ERRORS column"),
        (result_zip([HEADER, ["a@example.org", "A", "ADDED", "11", ""]]), "1 rows for 2"),
        (
            result_zip(
                [
                    HEADER,
                    ["b@example.org", "B", "ADDED", "12", ""],
                    ["a@example.org", "A", "ADDED", "11", ""],
                ]
            ),
            "row 1 answers",
        ),
    ],
)
def test_a_result_that_does_not_answer_the_file_is_refused(payload: bytes, problem: str) -> None:
    """Unreadable, mis-shaped, short or reordered results raise, never mis-pair."""
    with pytest.raises(BulkResultError, match=problem):
        parse_result(payload, SENT)


def test_failed_job_rows_are_retried() -> None:
    """A FAILED job: every row RETRY, none synced."""
    assert {(o.verdict, o.code) for o in failed_job_outcomes(SENT)} == {
        (Verdict.RETRY, "BULK_JOB_FAILED")
    }


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("ADDED", JobPhase.RUNNING),
        ("INPROGRESS", JobPhase.RUNNING),
        ("IN PROGRESS", JobPhase.RUNNING),
        ("QUEUED", JobPhase.RUNNING),
        ("COMPLETED", JobPhase.COMPLETED),
        ("FAILED", JobPhase.FAILED),
    ],
)
def test_job_phase_spellings(status: str, phase: JobPhase) -> None:
    """Both spellings of in-progress run; unknown ones keep the poll waiting."""
    assert phase_of(status) is phase


def test_job_status_from_details() -> None:
    """Counts and the download URL come from the details body (Zoho's v2 sample)."""
    body = {
        "status": "COMPLETED",
        "id": "4150868000005350003",
        "resource": [
            {
                "status": "COMPLETED",
                "file": {
                    "added_count": 9,
                    "skipped_count": 2,
                    "updated_count": 0,
                    "total_count": 11,
                },
            }
        ],
        "result": {"download_url": "https://download-accl.zoho.com/v2/crm/1/bulk-write/2/2.zip"},
    }
    status = parse_job_status(Answer(200, body), "4150868000005350003")
    assert status is not None
    assert (status.phase, status.added, status.skipped, status.total) == (
        JobPhase.COMPLETED,
        9,
        2,
        11,
    )
    assert status.download_url is not None
    assert parse_job_status(Answer(404, {"code": "RESOURCE_NOT_FOUND"}), "1") is None


def test_error_codes_are_read_from_the_body() -> None:
    """Upload errors under HTTP 200 and the bare header-error body both name a code."""
    upload_error = Answer(200, {"status": "error", "code": "INVALID_FILE_FORMAT"})
    assert error_code(upload_error) == "INVALID_FILE_FORMAT"
    assert not is_success(upload_error, "FILE_UPLOAD_SUCCESS")
    headers = Answer(400, {"ERROR_CODE": 400, "ERROR_MESSAGE": "Bad Request", "x-error": "x"})
    assert error_code(headers) == "BAD_REQUEST_HEADERS"
    assert error_code(Answer(502, None)) == "HTTP_502"

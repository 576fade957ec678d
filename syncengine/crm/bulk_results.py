"""A bulk-write result file read as one `RecordOutcome` per row sent; pure.

The result ZIP holds one CSV whose columns include `STATUS`, `RECORD_ID` and
`ERRORS`, read by name (their order is [unverified]); it echoes the first
mapped input columns. No row number is documented, so rows are joined by
position and each is checked against the row sent: the echoed first cell must
equal the key the file carried there (crm-bulk-write.md §4). A file that
fails the check raises `BulkResultError` instead of pairing answers with the
wrong records.

Codes are the records API's: `ADDED` / `UPDATED` → SUCCESS, `Verdict.SYNCED`
with the record id; otherwise the first `ERRORS` code (`CODE-Column,Column:
CODE-Column`) through `classification`, so `INVALID_DATA` is rejected and an
unknown code retried. A row with no error text (`SKIPPED`, `UNPROCESSED`)
is retried under its status as the code. A job that ended `FAILED` gives
every row RETRY with `BULK_JOB_FAILED` [unverified whether a failed job
applied some rows: an insert retried may then duplicate].
"""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Final

from syncengine.crm.bulk_answers import BulkResultError
from syncengine.crm.bulk_csv import BulkFile
from syncengine.crm.classification import classify_record, verdict_for
from syncengine.model import RecordOutcome, Verdict

#: STATUS values that mean the row was written (legacy SDKs' WRITE_STATUS).
WRITTEN: Final = frozenset({"ADDED", "UPDATED"})
RESULT_COLUMNS: Final = ("STATUS", "RECORD_ID", "ERRORS")
JOB_FAILED: Final = "BULK_JOB_FAILED"


def parse_errors(text: str) -> list[tuple[str, list[str]]]:
    """`MANDATORY_NOT_FOUND-Company,Last_Name:DUPLICATE_DATA-Email` as (code, columns) pairs."""
    out: list[tuple[str, list[str]]] = []
    for part in text.split(":"):
        code, _, columns = part.strip().partition("-")
        if code:
            out.append((code.strip(), [c.strip() for c in columns.split(",") if c.strip()]))
    return out


def row_outcome(status: str, record_id: str, errors: str) -> RecordOutcome:
    """The outcome of one result row."""
    label = status.strip().upper()
    record_id = record_id.strip()
    if label in WRITTEN and record_id.isdigit():
        message = "record added" if label == "ADDED" else "record updated"
        return RecordOutcome(
            Verdict.SYNCED, "SUCCESS", message, {"id": record_id, "status": label}, record_id
        )
    parsed = parse_errors(errors)
    if not parsed:
        code = label.replace(" ", "_") or "UNPROCESSED"
        if label in WRITTEN:
            code = "BAD_RESPONSE"  # written, says the file, yet no usable id
        return RecordOutcome(Verdict.RETRY, code, f"bulk write: {label or 'no status'}")
    code, columns = parsed[0]
    details: dict[str, object] = {
        "status": label,
        "errors": [{"code": c, "columns": cols} for c, cols in parsed],
    }
    if columns:
        details["api_name"] = columns[0]
    verdict = verdict_for(classify_record(code))
    return RecordOutcome(verdict, code, f"bulk write: {errors.strip()}", details)


def result_csv(payload: bytes) -> str:
    """The text of the one CSV inside a result ZIP."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith(".csv")]
            if len(names) != 1:
                raise BulkResultError(
                    f"the result ZIP holds {len(names)} CSV files, not one", code="BAD_RESULT"
                )
            return archive.read(names[0]).decode("utf-8-sig")
    except (zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise BulkResultError(f"the result file is unreadable: {exc}", code="BAD_RESULT") from exc


def parse_result(payload: bytes, sent: BulkFile) -> list[RecordOutcome]:
    """One outcome per row of `sent`, in its order; BulkResultError if the file does not match."""
    reader = csv.DictReader(io.StringIO(result_csv(payload), newline=""))
    header = reader.fieldnames or []
    missing = [c for c in RESULT_COLUMNS if c not in header]
    if missing:
        raise BulkResultError(f"the result file has no {missing[0]} column", code="BAD_RESULT")
    rows = list(reader)
    if len(rows) != len(sent.positions):
        raise BulkResultError(
            f"the result file has {len(rows)} rows for {len(sent.positions)} sent",
            code="BAD_RESULT",
        )
    echoed = header[0] if header[0] not in RESULT_COLUMNS else None
    outcomes: list[RecordOutcome] = []
    for number, (row, key) in enumerate(zip(rows, sent.keys, strict=True), start=1):
        if echoed is not None and (row.get(echoed) or "") != key:
            raise BulkResultError(
                f"result row {number} answers {echoed}={row.get(echoed)!r}, not the row sent",
                code="BAD_RESULT",
            )
        outcomes.append(
            row_outcome(
                row.get("STATUS") or "", row.get("RECORD_ID") or "", row.get("ERRORS") or ""
            )
        )
    return outcomes


def failed_job_outcomes(sent: BulkFile, status: str = "FAILED") -> list[RecordOutcome]:
    """Every row of a job that ended FAILED: retried, none claimed written."""
    message = f"the bulk-write job ended {status}"
    return [RecordOutcome(Verdict.RETRY, JOB_FAILED, message) for _ in sent.positions]

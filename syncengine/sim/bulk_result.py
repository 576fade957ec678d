"""What the simulator shows of a bulk-write job: its details JSON and its result ZIP.

Shapes follow crm-bulk-write.md §3 and §4 (Zoho's v2 samples): `module` as a
string for a v2 body (an object when the job was created with one), counts
per file that sum to `total_count`, an absolute `download_url` once the job
is `COMPLETED`. The result ZIP holds one CSV named `<Module>-<file name>`
with the first three mapped input columns, then `STATUS`, `RECORD_ID` and
`ERRORS`, one line per input row in input order.
"""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any, Final

from syncengine.sim.bulk_jobs import BulkJob, JobState

#: The org's `zgid` (also the `X-CRM-ORG` uploads must carry) and its id.
ORG_ZGID: Final = "694902309"
ORG_ID: Final = "4876876000000022001"
#: Input columns repeated in the result before STATUS, RECORD_ID, ERRORS.
ECHOED_COLUMNS: Final = 3


def download_path(job_id: str) -> str:
    """The result's path on the simulator, shaped as in Zoho's v2 sample."""
    return f"/v2/crm/{ORG_ZGID}/bulk-write/{job_id}/{job_id}.zip"


def _mappings_json(job: BulkJob) -> list[dict[str, Any]]:
    return [
        {
            "api_name": m.api_name,
            "index": m.index,
            "format": m.format,
            "find_by": None,
            "default_value": None if m.default is None else {"value": m.default},
        }
        for m in job.spec.mappings
    ]


def _resource_json(job: BulkJob) -> dict[str, Any]:
    spec = job.spec
    # [unverified] a failed job's resource and file status: the job's own.
    status = str(job.state)
    module: Any = {"api_name": spec.module} if spec.module_as_object else spec.module
    return {
        "status": status,
        "code": status,
        "type": "data",
        "module": module,
        "find_by": spec.find_by,
        "ignore_empty": spec.ignore_empty,
        "field_mappings": _mappings_json(job),
        "file": {"status": status, "name": job.upload.name, **job.counts()},
    }


def job_json(job: BulkJob, base_url: str, user: dict[str, str]) -> dict[str, Any]:
    """The body of `GET /crm/bulk/v2/write/{job_id}`."""
    body: dict[str, Any] = {
        "status": str(job.state),
        "character_encoding": job.spec.character_encoding or "UTF-8",
        "id": job.id,
        "operation": job.spec.operation,
        "created_by": {"id": user["id"], "name": user["name"]},
        "created_time": job.created_time,
        "callback": job.spec.callback,
        "resource": [_resource_json(job)],
    }
    if job.state is JobState.COMPLETED:
        body["result"] = {"download_url": base_url + download_path(job.id)}
    return body


def result_csv(job: BulkJob) -> str:
    """The result CSV text: echoed input columns, then STATUS, RECORD_ID, ERRORS."""
    echoed = [m.index for m in job.spec.mappings if m.index is not None][:ECHOED_COLUMNS]
    header = job.upload.header
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([header[i] for i in echoed] + ["STATUS", "RECORD_ID", "ERRORS"])
    for row, result in zip(job.upload.rows, job.results or [], strict=True):
        cells = [row[i] if i < len(row) else "" for i in echoed]
        writer.writerow([*cells, result.status, result.record_id, result.errors])
    return out.getvalue()


def result_zip(job: BulkJob) -> bytes:
    """The result file as served: a ZIP holding `<Module>-<file name>`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{job.spec.module}-{job.upload.name}", result_csv(job))
    return buffer.getvalue()

"""Handlers of the Bulk Write API and of the org endpoint its uploads need.

Routes (crm-bulk-write.md §1–§4):

- `GET /crm/v2/org` → `{"org": [{"id", "zgid", ...}]}`: where a client reads
  the `X-CRM-ORG` value uploads carry;
- `POST /crm/v2/upload` (multipart part `file`, headers `feature: bulk-write`
  and `X-CRM-ORG`) → `FILE_UPLOAD_SUCCESS` with a `file_id`. Upload errors
  answer HTTP 200 with an error body, as the v8 OAS and Zoho's Postman
  collection show (the docs' 400/413 is the other reading; clients must
  decide on the body's `code`);
- `POST /crm/bulk/v2/write` → 201 with the job id; charges `bulk_job_credits`
  (500) from the records API's credit ledger, 429 when they are not left;
- `GET /crm/bulk/v2/write/{job_id}` → the job's details (404 `RESOURCE_NOT_FOUND`
  for an unknown job, as v7 documents; v8's OAS says 400);
- `GET /v2/crm/{zgid}/bulk-write/{job_id}/{name}.zip` → the result ZIP; the
  first `bulk_drop_downloads` downloads of each job send half the file and
  drop the connection.

`bulk_upload_s` and `bulk_download_s` hold an upload's answer (the file is
kept and counted first) and a result's first byte (the download counted
first) that long: a slow transfer, and a window in which a test knows the
client is mid-upload or mid-download.

Scopes: `ZohoCRM.bulk.ALL` or `.CREATE` and the module's write scope for
jobs, `ZohoFiles.files.ALL` for uploads. Status, upload and download cost no
credits [unverified].
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

import orjson
from aiohttp import BodyPartReader, web

from syncengine.sim.access import scope_allows, token_problem
from syncengine.sim.bulk_jobs import BulkJob, JobState, RowResult, advance, run_rows
from syncengine.sim.bulk_request import MAX_FILE_BYTES, BulkError, parse_job, read_upload
from syncengine.sim.bulk_result import ORG_ID, ORG_ZGID, download_path, job_json, result_zip
from syncengine.sim.records_api import iso_now, run_limited
from syncengine.sim.responses import CREDITS_MESSAGE, respond, whole_error
from syncengine.sim.state import STATE_KEY, SimState
from syncengine.sim.writes import WriteContext

BAD_HEADERS: Final[dict[str, Any]] = {
    "ERROR_CODE": 400,
    "ERROR_MESSAGE": "Bad Request",
    "x-error": "check if headers [feature, X-CRM-ORG] are present and valid",
}
_UPLOAD_CHUNK: Final = 64 * 1024


def _error(state: SimState, problem: BulkError, *, status: int | None = None) -> web.Response:
    body = {
        "code": problem.code,
        "details": problem.details,
        "message": problem.message,
        "status": "error",
    }
    return respond(state, problem.status if status is None else status, body)


def _scopes_allow(state: SimState, wanted: tuple[str, ...]) -> bool:
    held = {s.casefold() for s in state.config.scopes}
    return any(s.casefold() in held for s in wanted)


def _refusal(request: web.Request, state: SimState, scopes: tuple[str, ...]) -> web.Response | None:
    """The token or scope error that stops a bulk call, or None."""
    code = token_problem(state.config, state.tokens, request.headers.get("Authorization"))
    if code is None and not _scopes_allow(state, scopes):
        code = "OAUTH_SCOPE_MISMATCH"
    return None if code is None else whole_error(state, code)


async def get_org(request: web.Request) -> web.Response:
    """`GET /crm/v2/org`: the one org, with the `zgid` bulk uploads name."""
    state = request.app[STATE_KEY]
    code = token_problem(state.config, state.tokens, request.headers.get("Authorization"))
    held = {s.casefold() for s in state.config.scopes}
    if code is None and not any(s.startswith(("zohocrm.org.", "zohocrm.settings.")) for s in held):
        code = "OAUTH_SCOPE_MISMATCH"
    if code is not None:
        return whole_error(state, code)
    user = state.schema.users[0]

    def work() -> tuple[int, Any]:
        org = {
            "id": ORG_ID,
            "zgid": ORG_ZGID,
            "company_name": "Simulated Org",
            "primary_email": "admin@example.org",
            "primary_zuid": user["id"],
            "time_zone": "UTC",
            "iso_code": "USD",
            "currency_symbol": "$",
            "country_code": "US",
            "type": "production",
        }
        return 200, {"org": [org]}

    return await run_limited(request, state, records=0, heavy=False, cost=1, work=work)


async def _read_file_part(request: web.Request) -> bytes | BulkError:
    """The multipart part named `file`, read up to the size limit."""
    problem = BulkError(
        200, "INVALID_FILE_FORMAT", "invalid file format. only zip format is supported", {}
    )
    if not request.content_type.startswith("multipart/"):
        return problem
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name != "file":
            continue
        data = bytearray()
        while chunk := await part.read_chunk(_UPLOAD_CHUNK):
            data += chunk
            if len(data) > MAX_FILE_BYTES:
                return BulkError(200, "FILE_TOO_LARGE", "file size exceeds the limit", {})
        return bytes(data)
    return problem


async def upload_file(request: web.Request) -> web.Response:
    """`POST /crm/v2/upload`: keep a ZIP holding one CSV; answer its `file_id`."""
    state = request.app[STATE_KEY]
    refused = _refusal(request, state, ("ZohoFiles.files.ALL",))
    if refused is not None:
        return refused
    if (
        request.headers.get("feature") != "bulk-write"
        or request.headers.get("X-CRM-ORG") != ORG_ZGID
    ):
        return respond(state, 400, BAD_HEADERS)
    raw = await _read_file_part(request)
    if isinstance(raw, BulkError):
        return _error(state, raw)
    upload = read_upload(raw)
    if isinstance(upload, BulkError):
        return _error(state, upload, status=200)
    file_id = state.bulk.add_upload(upload)
    state.stats.bulk_uploads += 1
    if state.config.bulk_upload_s > 0:
        await asyncio.sleep(state.config.bulk_upload_s)
    details = {"file_id": file_id, "created_time": iso_now(state)}
    body = {
        "status": "success",
        "code": "FILE_UPLOAD_SUCCESS",
        "message": "file uploaded.",
        "details": details,
    }
    return respond(state, 200, body)


def _write_rows(state: SimState) -> Callable[[BulkJob], list[RowResult]]:
    """The function that applies a settled job's rows to this simulator's store."""

    def write(job: BulkJob) -> list[RowResult]:
        ctx = WriteContext(
            module=state.modules[job.spec.module],
            store=state.store,
            faults=state.faults,
            config=state.config,
            now=iso_now(state),
            user=dict(state.schema.users[0]),
            layout_rules=False,  # [unverified] layout rules are not applied to imports
        )
        results = run_rows(ctx, job)
        written = sum(1 for r in results if r.status != "SKIPPED")
        state.stats.records_written += written
        state.stats.by_code.update(r.errors.split("-", 1)[0] for r in results if r.errors)
        return results

    return write


def _settle(state: SimState, job: BulkJob) -> None:
    advance(job, state.clock.now(), _write_rows(state))


async def create_job(request: web.Request) -> web.Response:
    """`POST /crm/bulk/v2/write`: check the body, charge the credits, queue the job."""
    state = request.app[STATE_KEY]
    refused = _refusal(request, state, ("ZohoCRM.bulk.ALL", "ZohoCRM.bulk.CREATE"))
    if refused is not None:
        return refused
    try:
        body: Any = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = None
    spec = parse_job(body, state.schema.modules, state.bulk.uploads)
    if isinstance(spec, BulkError):
        return _error(state, spec)
    if not scope_allows(state.config.scopes, spec.module, spec.operation):
        return whole_error(state, "OAUTH_SCOPE_MISMATCH")
    config, now = state.config, state.clock.now()
    if not state.limits.can_afford(config, config.bulk_job_credits, now):
        state.stats.throttled += 1
        return whole_error(state, "TOO_MANY_REQUESTS", message=CREDITS_MESSAGE)
    state.limits.charge(config.bulk_job_credits, now)
    state.stats.credits_used += config.bulk_job_credits
    job = BulkJob(
        id=state.bulk.new_job_id(),
        spec=spec,
        upload=state.bulk.uploads[spec.file_id],
        created_time=iso_now(state),
        created_at=now,
        queue_s=config.bulk_queue_s,
        run_s=config.bulk_job_s,
        fails=state.bulk.draw_failure(config.bulk_fault_fail),
    )
    state.bulk.jobs[job.id] = job
    state.stats.bulk_jobs += 1
    state.stats.bulk_job_rows += len(job.upload.rows)
    # Settle the job on time even when nobody polls it.
    job.timer = asyncio.get_running_loop().call_later(job.queue_s + job.run_s, _settle, state, job)
    user = state.schema.users[0]
    details = {"id": job.id, "created_by": {"id": user["id"], "name": user["name"]}}
    return respond(
        state,
        201,
        {"status": "success", "code": "SUCCESS", "message": "success", "details": details},
    )


def _known_job(request: web.Request, state: SimState) -> BulkJob | web.Response:
    job = state.bulk.jobs.get(request.match_info["job_id"])
    if job is None:
        problem = BulkError(404, "RESOURCE_NOT_FOUND", "the requested resource is not found", {})
        return _error(state, problem)
    _settle(state, job)
    return job


def _readable_job(request: web.Request, state: SimState) -> BulkJob | web.Response:
    """The job the path names, once the token may read bulk jobs; else the refusal."""
    refused = _refusal(
        request, state, ("ZohoCRM.bulk.ALL", "ZohoCRM.bulk.CREATE", "ZohoCRM.bulk.READ")
    )
    if refused is not None:
        return refused
    return _known_job(request, state)


async def get_job(request: web.Request) -> web.Response:
    """`GET /crm/bulk/v2/write/{job_id}`: the job's state and counts."""
    state = request.app[STATE_KEY]
    job = _readable_job(request, state)
    if isinstance(job, web.Response):
        return job
    return respond(state, 200, job_json(job, state.base_url, state.schema.users[0]))


async def _drop_midway(request: web.Request, state: SimState, payload: bytes) -> web.StreamResponse:
    """Send the headers and half the file, then close the connection."""
    state.stats.dropped += 1
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/zip"})
    response.content_length = len(payload)
    await response.prepare(request)
    await response.write(payload[: len(payload) // 2])
    if request.transport is not None:
        request.transport.abort()
    return response


async def download_result(request: web.Request) -> web.StreamResponse:
    """The result ZIP of a completed job (404 `RESOURCE_NOT_FOUND` before that)."""
    state = request.app[STATE_KEY]
    job = _readable_job(request, state)
    if isinstance(job, web.Response):
        return job
    if job.state is not JobState.COMPLETED or request.path != download_path(job.id):
        problem = BulkError(404, "RESOURCE_NOT_FOUND", "the requested resource is not found", {})
        return _error(state, problem)
    payload = result_zip(job)
    job.downloads += 1
    if state.config.bulk_download_s > 0:
        await asyncio.sleep(state.config.bulk_download_s)
    if job.downloads <= state.config.bulk_drop_downloads:
        return await _drop_midway(request, state, payload)
    state.stats.by_status["200"] += 1
    return web.Response(
        body=payload,
        content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{job.id}.zip"'},
    )


def add_bulk_routes(app: web.Application) -> None:
    """Mount the bulk routes; call before the records routes (`/crm/v2/upload` would match them)."""
    router = app.router
    router.add_get("/crm/v2/org", get_org)
    router.add_post("/crm/v2/upload", upload_file)
    router.add_post("/crm/bulk/v2/write", create_job)
    router.add_get("/crm/bulk/v2/write/{job_id}", get_job)
    router.add_get("/v2/crm/{zgid}/bulk-write/{job_id}/{name}", download_result)

"""The Bulk Write API client: upload a job file, create the job, poll it, fetch its result.

Each step is its own call so a caller can journal what it needs between
them and resume after a crash without uploading again: `plan_files` (pure,
`bulk_csv`) gives the files and the records' positions; `upload` answers a
`file_id`; `create_job` a job id; `poll(job_id)` and `outcomes(file,
status)` need only the job id and the `BulkFile` (rebuilt from the same
records). `run` chains the four for one file.

What each step retries (with jittered backoff, `tries` in all):

* `upload`, `status`, `download_result`: no answer, 5xx and 429, because
  repeating them changes nothing in the CRM (a lost upload is an orphan file);
* `create_job`: 429 always (the job was refused, not made); no answer and
  5xx only for update and upsert jobs, which apply the same values again.
  For an insert job they raise `BulkJobUnknownError`: a second job could
  insert every row twice, so the caller decides;
* a 401 gets one token refresh (single flight in `TokenProvider`), a second
  one is `BulkRefusedError`.

`poll` waits 10 s, then twice as long each time up to 60 s (crm-bulk-write.md
§5 recommends polling even with a callback) and raises `BulkPollTimeoutError`
at its deadline. The token is sent only to the API domain, the upload host
and Zoho's own hosts: a result `download_url` elsewhere is refused. A
relative `download_url` is joined to the API domain [unverified which host].
Redirects are never followed, so the token and the records stay where sent.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson
import structlog
import yarl

from syncengine.backoff import backoff_ceiling_s, backoff_s, parse_retry_after_s
from syncengine.crm.auth import TokenProvider
from syncengine.crm.bulk_answers import (
    Answer,
    BulkJobUnknownError,
    BulkPollTimeoutError,
    BulkRefusedError,
    BulkResultError,
    BulkUnavailableError,
    JobPhase,
    JobStatus,
    decode,
    detail_id,
    error_code,
    is_success,
    parse_job_status,
)
from syncengine.crm.bulk_csv import BulkFile, BulkPlan
from syncengine.crm.bulk_results import failed_job_outcomes, parse_result
from syncengine.crm.classification import TOKEN_CODES
from syncengine.crm.origin import check_api_domain, origin
from syncengine.crm.proxy import route_for
from syncengine.model import Operation, RecordOutcome

__all__ = ["BulkWriteClient"]

log = structlog.get_logger(__name__)

#: Hosts a result may be fetched from with the token: Zoho's own domains.
ZOHO_HOST: Final = re.compile(
    r"(^|\.)(zoho|zohoapis)\.(com|eu|in|com\.au|jp|com\.cn|sa)$|(^|\.)zohocloud\.ca$"
)
DataFactory = Callable[[], Any]


class _NoAnswer(Exception):
    """A request got no answer (timeout, dropped or refused connection)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True, slots=True)
class _Call:
    """One kind of request: what it is called in errors, and whether it may be repeated."""

    what: str
    may_repeat: bool


class BulkWriteClient:
    """Bulk-write jobs for one org, on the engine's session and token provider."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        api_domain: str,
        upload_url: str,
        tokens: TokenProvider,
        org_id: str | None = None,
        timeout_s: float = 300.0,
        tries: int = 5,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        poll_first_s: float = 10.0,
        poll_cap_s: float = 60.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        proxy: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`upload_url` is the file host (`https://content.zohoapis.com` in the US DC);
        `org_id` the org's zgid when known (else read once from `GET /crm/v2/org`)."""
        if tries < 1:
            raise ValueError("tries must be >= 1")
        self._session = session
        self._api = yarl.URL(api_domain.rstrip("/"))
        self._upload = yarl.URL(upload_url.rstrip("/"))
        self._tokens = tokens
        self._org_id = org_id
        self._timeout = aiohttp.ClientTimeout(
            total=timeout_s, connect=session.timeout.connect, sock_connect=None
        )
        self._tries = tries
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._poll_first_s = poll_first_s
        self._poll_cap_s = poll_cap_s
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._proxy = proxy
        self._environ = environ
        self._checked_api_domain: str | None = None

    # -- the steps -----------------------------------------------------------

    async def org_id(self) -> str:
        """The org's zgid, the `X-CRM-ORG` of uploads; read once, then kept."""
        if self._org_id is None:
            answer, _ = await self._exchange(
                "GET", self._api.with_path("/crm/v2/org"), _Call("org", may_repeat=True)
            )
            orgs = answer.body.get("org") if isinstance(answer.body, dict) else None
            zgid = orgs[0].get("zgid") if isinstance(orgs, list) and orgs else None
            if answer.http_status != 200 or not isinstance(zgid, str | int):
                raise self._refused("reading the org", answer)
            self._org_id = str(zgid)
        return self._org_id

    async def upload(self, file: BulkFile) -> str:
        """Upload the file's ZIP; its `file_id`. Safe to repeat (an orphan file at worst)."""
        headers = {"feature": "bulk-write", "X-CRM-ORG": await self.org_id()}
        zip_name = file.csv_name.rsplit(".", 1)[0] + ".zip"

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("file", file.payload, filename=zip_name, content_type="application/zip")
            return data

        answer, _ = await self._exchange(
            "POST",
            self._upload.with_path("/crm/v2/upload"),
            _Call("upload", may_repeat=True),
            data=form,
            headers=headers,
        )
        file_id = (
            detail_id(answer, "file_id") if is_success(answer, "FILE_UPLOAD_SUCCESS") else None
        )
        if file_id is None:
            raise self._refused(f"uploading {zip_name}", answer)
        log.info("bulk.uploaded", module=file.module, rows=len(file.positions), file_id=file_id)
        return file_id

    async def create_job(
        self, file: BulkFile, file_id: str, *, callback_url: str | None = None
    ) -> str:
        """Create the job for an uploaded file; its id (journal it before polling)."""
        body = orjson.dumps(file.job_body(file_id, callback_url=callback_url))
        call = _Call("creating the job", may_repeat=file.operation is not Operation.INSERT)
        answer, _ = await self._exchange(
            "POST",
            self._api.with_path("/crm/bulk/v2/write"),
            call,
            data=lambda: body,
            headers={"Content-Type": "application/json"},
        )
        job_id = detail_id(answer, "id") if is_success(answer, "SUCCESS") else None
        if job_id is None:
            raise self._refused(f"creating a {file.operation} job on {file.module}", answer)
        log.info("bulk.job_created", module=file.module, operation=file.operation, job_id=job_id)
        return job_id

    async def status(self, job_id: str) -> JobStatus:
        """The job's details now (one request, retried as the module docstring says)."""
        answer, _ = await self._exchange(
            "GET",
            self._api.with_path(f"/crm/bulk/v2/write/{job_id}"),
            _Call("reading the job", may_repeat=True),
        )
        status = parse_job_status(answer, job_id)
        if status is None:
            raise self._refused(f"reading job {job_id}", answer)
        return status

    async def poll(self, job_id: str, *, deadline_s: float) -> JobStatus:
        """Wait until the job is COMPLETED or FAILED, at most `deadline_s` seconds from now.

        Raises BulkPollTimeoutError (holding the last status seen) at the
        deadline; the job goes on in the CRM and may be polled again later.
        """
        deadline = self._clock() + deadline_s
        last: JobStatus | None = None
        for attempt in itertools.count(1):
            try:
                last = await self.status(job_id)
            except BulkUnavailableError as exc:
                log.warning("bulk.status_unavailable", job_id=job_id, code=exc.code)
            if last is not None and last.phase is not JobPhase.RUNNING:
                return last
            left_s = deadline - self._clock()
            if left_s <= 0:
                break
            delay_s = backoff_ceiling_s(attempt, base_s=self._poll_first_s, cap_s=self._poll_cap_s)
            log.debug("bulk.polled", job_id=job_id, status=last and last.status, wait_s=delay_s)
            await self._sleep(min(delay_s, left_s))
        raise BulkPollTimeoutError(
            f"bulk-write job {job_id} had not finished after {deadline_s:g} s "
            f"(last status {last.status if last else 'unknown'})",
            job_id=job_id,
            last=last,
        )

    async def download_result(self, status: JobStatus) -> bytes:
        """The result ZIP of a COMPLETED job; a download cut short is fetched again."""
        if status.download_url is None:
            raise BulkResultError(
                f"job {status.job_id} ({status.status}) has no download_url", code="NO_RESULT"
            )
        url = self._download_url(status.download_url)
        for tries in range(1, self._tries + 1):
            answer, payload = await self._exchange(
                "GET", url, _Call("downloading the result", may_repeat=True)
            )
            if answer.http_status == 200 and payload[:2] == b"PK":
                return payload
            if answer.http_status != 200:
                raise self._refused(f"downloading the result of job {status.job_id}", answer)
            log.warning("bulk.result_not_zip", job_id=status.job_id, tries=tries)
            await self._backoff(tries, None)
        raise BulkUnavailableError(
            f"the result of job {status.job_id} was not a ZIP after {self._tries} tries",
            code="BAD_RESULT",
        )

    async def outcomes(self, file: BulkFile, status: JobStatus) -> list[RecordOutcome]:
        """One outcome per row of `file`, from a finished job's status (and its result)."""
        if status.phase is JobPhase.FAILED:
            log.warning("bulk.job_failed", job_id=status.job_id, rows=len(file.positions))
            return failed_job_outcomes(file, status.status)
        if status.phase is not JobPhase.COMPLETED:
            raise ValueError(f"job {status.job_id} is still {status.status}")
        return parse_result(await self.download_result(status), file)

    async def run(
        self, file: BulkFile, *, deadline_s: float, callback_url: str | None = None
    ) -> list[RecordOutcome]:
        """Upload, create, poll and read one file's job: one outcome per row, in order."""
        file_id = await self.upload(file)
        job_id = await self.create_job(file, file_id, callback_url=callback_url)
        return await self.outcomes(file, await self.poll(job_id, deadline_s=deadline_s))

    async def run_plan(
        self, plan: BulkPlan, record_count: int, *, deadline_s: float
    ) -> list[RecordOutcome | None]:
        """Every file of `plan` as one job after another; outcomes by record position.

        A record the plan refused gets None: it was not sent, and the caller
        sends it through the records API. `deadline_s` applies to each job.
        """
        outcomes: list[RecordOutcome | None] = [None] * record_count
        for file in plan.files:
            for position, outcome in zip(
                file.positions, await self.run(file, deadline_s=deadline_s), strict=True
            ):
                outcomes[position] = outcome
        return outcomes

    # -- one request, retried ------------------------------------------------

    async def _exchange(
        self,
        method: str,
        url: yarl.URL,
        call: _Call,
        *,
        data: DataFactory | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[Answer, bytes]:
        """Send until the answer is neither a first 401 nor a retryable failure."""
        refreshed = False
        tries = 0
        while True:
            tries += 1
            try:
                status, payload, retry_after, token = await self._send(method, url, data, headers)
            except _NoAnswer as exc:
                self._check_unsure(call, exc.code, str(exc))
                await self._retry_or_raise(call, tries, exc.code, None)
                continue
            answer = decode(status, payload)
            code = error_code(answer) if status != 200 else ""
            if (status == 401 or code in TOKEN_CODES) and not refreshed:
                refreshed = True
                await self._tokens.invalidate(token)
                continue
            if status == 429 or code == "TOO_MANY_REQUESTS":
                await self._retry_or_raise(call, tries, code or "TOO_MANY_REQUESTS", retry_after)
                continue
            if status >= 500:
                self._check_unsure(call, code, f"HTTP {status}")
                await self._retry_or_raise(call, tries, code, retry_after)
                continue
            return answer, payload

    def _check_unsure(self, call: _Call, code: str, reason: str) -> None:
        """A call that must not be repeated got no clear answer: its outcome is unknown."""
        if not call.may_repeat:
            raise BulkJobUnknownError(
                f"{call.what}: no clear answer ({reason}); the job may exist, and creating "
                "it again could insert every row twice",
                code=code,
            )

    async def _retry_or_raise(
        self, call: _Call, tries: int, code: str, retry_after: str | None
    ) -> None:
        if tries >= self._tries:
            raise BulkUnavailableError(
                f"{call.what}: no usable answer after {tries} tries ({code})", code=code
            )
        log.warning("bulk.retry", what=call.what, code=code, tries=tries)
        await self._backoff(tries, retry_after)

    async def _backoff(self, tries: int, retry_after: str | None) -> None:
        delay_s = parse_retry_after_s(retry_after, now_epoch_s=self._wall_clock())
        if delay_s is None:
            delay_s = backoff_s(
                tries, base_s=self._backoff_base_s, cap_s=self._backoff_cap_s, rng=self._rng
            )
        await self._sleep(delay_s)

    async def _send(
        self,
        method: str,
        url: yarl.URL,
        data: DataFactory | None,
        extra: dict[str, str] | None,
    ) -> tuple[int, bytes, str | None, str]:
        """One request with the current token: (status, body, Retry-After, token used)."""
        token = await self._tokens.token()
        answered = self._tokens.api_domain
        if answered is not None and answered != self._checked_api_domain:
            # Records sent to another data centre meet confusing failures; the
            # mismatch itself is the config error to report (as CrmClient does).
            check_api_domain(str(self._api), answered)
            self._checked_api_domain = answered
        headers = {"Authorization": f"Zoho-oauthtoken {token}", **(extra or {})}
        route = route_for(str(url), configured=self._proxy, environ=self._environ)
        if route is not None and route.forwarded:
            headers.update(route.request_headers())
        try:
            async with self._session.request(
                method,
                url,
                data=None if data is None else data(),
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                proxy=None if route is None else route.url,
                proxy_headers=None if route is None else route.connect_headers(),
            ) as response:
                payload = await response.read()
                return response.status, payload, response.headers.get("Retry-After"), token
        except TimeoutError as exc:
            raise _NoAnswer("TIMEOUT", "no answer within the timeout") from exc
        except aiohttp.ClientError as exc:
            raise _NoAnswer("CONNECTION_ERROR", type(exc).__name__) from exc

    # -- answers ---------------------------------------------------------------

    def _download_url(self, url: str) -> yarl.URL:
        """Where to fetch a result with the token; refused when not the CRM's own host."""
        target = yarl.URL(url)
        if not target.is_absolute():
            return self._api.join(target)
        trusted = {origin(str(self._api)), origin(str(self._upload))}
        host = (target.host or "").lower()
        if origin(url) in trusted or (target.scheme == "https" and ZOHO_HOST.search(host)):
            return target
        raise BulkRefusedError(
            f"the result's download_url points at {host}, not the CRM; the token is not sent there",
            code="UNTRUSTED_DOWNLOAD_URL",
        )

    def _refused(self, doing: str, answer: Answer) -> BulkRefusedError:
        """A one-line refusal naming what was done, the HTTP status and the code (no secrets)."""
        code = error_code(answer)
        body = answer.body
        message = body.get("message") if isinstance(body, dict) else None
        text = f"the CRM refused {doing}: HTTP {answer.http_status} {code}"
        if isinstance(message, str) and message:
            text += f" ({' '.join(message.split())[:200]})"
        log.error("bulk.refused", doing=doing, status=answer.http_status, code=code)
        return BulkRefusedError(text, code=code, http_status=answer.http_status)

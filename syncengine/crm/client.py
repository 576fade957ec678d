"""The CRM records client: one write request in, one outcome per record out.

`CrmClient.write` sends one `WriteRequest` (≤ 100 records) and returns exactly
one `RecordOutcome` per input record, in order. It knows nothing of queues or
the journal. What it settles itself, because none of it is a record attempt:

* 401 `INVALID_TOKEN`: single-flight refresh and resend; a second 401 right
  after a fresh token raises `FatalError`;
* 429: tell the limiter (AIMD, long pause), wait (Retry-After, else backoff
  with full jitter), resend;
* 400 without `data[]` (a poison record): split to isolate it, one request per
  halving plus one for the set-aside rest, so only the bad record fails;
* fatal codes (scope, permission, module, client bugs): raise `FatalError`
  with a one-line reason; but `INVALID_MODULE` for a module that only the
  feed names (not `[crm] module`) fails that request's records instead;
* an insert resent after a request that got no answer and now answered
  `DUPLICATE_DATA`: one GET of the existing record tells its own first copy
  (synced, with that id) from a real duplicate (failed as answered). After a
  killed run (`lost_answers`), any insert may be such a resend: its answer
  was lost with the process, so the client cannot remember it; the existing
  record must then also have been created while that run was alive.

Whole-request transient failures (5xx, timeout, dropped connection, bad body,
count mismatch) are not retried here: every record comes back RETRY with the
engine code `INTERNAL_ERROR`, `TIMEOUT`, `CONNECTION_ERROR` or `BAD_RESPONSE`,
because the engine counts attempts per record and schedules the resend.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import aiohttp
import orjson
import structlog
import yarl

from syncengine.backoff import backoff_s, parse_retry_after_s
from syncengine.credits import CreditModel
from syncengine.crm.auth import TokenProvider
from syncengine.crm.classification import ErrorClass, refuses_feed_module
from syncengine.crm.deletes import delete_query, settle_delete
from syncengine.crm.origin import check_api_domain
from syncengine.crm.proxy import route_for
from syncengine.crm.resent_inserts import (
    UnansweredInserts,
    created_within,
    existing_id,
    holds_values,
)
from syncengine.crm.responses import (
    BAD_RESPONSE,
    REDIRECTED,
    ParsedResponse,
    RecordResults,
    RequestFailure,
    parse_write_response,
)
from syncengine.crm.session import SendTrace, make_session
from syncengine.crm.write_request import WriteRequest, build_body, encode_record, method_and_path
from syncengine.errors import FatalError, TransportError
from syncengine.limits import Limiter, SlotTicket
from syncengine.model import Operation, RecordOutcome, Verdict

__all__ = ["ClientStats", "CrmClient", "WriteRequest", "make_session"]

log = structlog.get_logger(__name__)

TIMEOUT = "TIMEOUT"
CONNECTION_ERROR = "CONNECTION_ERROR"
BAD_INPUT = "BAD_INPUT"
CREDITS_HEADER = "X-API-CREDITS-REMAINING"
#: 429s in a row after which reading a record back is given up (the insert is retried).
READ_THROTTLE_TRIES = 5


@dataclass(slots=True)
class ClientStats:
    """Counters the engine logs and the daemon exports; they only grow."""

    #: HTTP requests sent to the records API (aiohttp resends not included).
    requests: int = 0
    #: Answers by HTTP status (0: no answer: timeout or connection error).
    by_status: Counter[int] = field(default_factory=Counter)
    #: Whole-request answers by code (CRM codes and the engine's own).
    by_code: Counter[str] = field(default_factory=Counter)
    #: Answers by (HTTP status, whole-request code); "-" for answers with per-record results.
    by_status_code: Counter[tuple[int, str]] = field(default_factory=Counter)
    #: Per-record results by CRM code.
    record_codes: Counter[str] = field(default_factory=Counter)
    #: 429 answers.
    throttled: int = 0
    #: Resends after a 401 (each reported the failed token to the provider).
    token_refreshes: int = 0
    #: Times aiohttp resent a request on a new connection by itself.
    aiohttp_resends: int = 0
    #: Requests spent isolating poison records (beyond the first).
    split_requests: int = 0
    #: Last `X-API-CREDITS-REMAINING` seen, if any.
    credits_remaining: int | None = None
    #: Resent inserts answered DUPLICATE_DATA whose existing record was read back.
    duplicates_checked: int = 0
    #: ... of which the existing record held the values sent: taken as synced.
    duplicates_resolved: int = 0
    #: Credits the answered calls cost by the config's model (`credits.CreditModel`).
    credits_spent: int = 0


class CrmClient:
    """Writes chunks of records to the CRM within the limiter's bounds."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        api_domain: str,
        tokens: TokenProvider,
        limiter: Limiter,
        total_timeout_s: float = 60.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        proxy: str | None = None,
        environ: Mapping[str, str] | None = None,
        configured_module: str | None = None,
        lost_answers: tuple[float, float] | None = None,
        credit_model: CreditModel | None = None,
    ) -> None:
        """`configured_module` is `[crm] module`: the one module whose refusal stops the run.

        `lost_answers` is (when the earliest of the killed runs just before
        this one began, when this one began), epoch seconds: the time in which
        inserts may have been applied with their answers lost with a killed
        process. None after a clean end.
        """
        self._session = session
        self._lost_answers = lost_answers
        self.credit_model = credit_model or CreditModel()
        self._configured_module = configured_module
        #: The proxy for the records API (`[crm] proxy`, else the environment's), or None.
        self._proxy = route_for(api_domain, configured=proxy, environ=environ)
        self._api_domain = api_domain
        self._base = yarl.URL(api_domain.rstrip("/"))
        #: The token answer's api_domain last compared with ours (compared once per value).
        self._checked_api_domain: str | None = None
        self._tokens = tokens
        self._limiter = limiter
        self._timeout = aiohttp.ClientTimeout(
            total=total_timeout_s,
            connect=session.timeout.connect,
            sock_connect=session.timeout.sock_connect,
            sock_read=session.timeout.sock_read,
        )
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._clock = clock
        self._unanswered = UnansweredInserts()
        self.stats = ClientStats()

    async def write(self, request: WriteRequest) -> list[RecordOutcome]:
        """One outcome per record of `request`, in order.

        Raises FatalError (AuthenticationError for refused credentials) when
        the run cannot go on. Safe to cancel: nothing is reported for a
        request whose answer was not read.
        """
        resent = self._take_resent(request)
        outcomes = await self._write(request)
        if resent:
            await self._resolve_duplicates(request, resent, outcomes)
        if self._lost_answers is not None and request.operation is Operation.INSERT:
            remembered = set(resent)
            lost = [index for index in range(len(outcomes)) if index not in remembered]
            await self._resolve_duplicates(request, lost, outcomes, created_in=self._lost_answers)
        if request.operation is Operation.DELETE:
            return [settle_delete(outcome) for outcome in outcomes]
        return outcomes

    async def _write(self, request: WriteRequest) -> list[RecordOutcome]:
        """`write` without the check of resent inserts."""
        count = len(request.records)
        try:
            # The usual case: the whole chunk encoded in one call.
            whole: bytes | None = orjson.dumps(request.records)
        except TypeError:
            whole = None
        first: ParsedResponse | None = None
        if whole is not None:
            first = await self._exchange(request, whole, range(count))
            if not _is_poison(first):
                return _outcomes(first, count)
        # A record JSON cannot carry, or a record the CRM chokes on: work
        # record by record, each encoded once for every split that sends it.
        outcomes: list[RecordOutcome | None] = [None] * count
        encoded: dict[int, bytes] = {}
        for index, record in enumerate(request.records):
            body = encode_record(record)
            if body is None:
                outcomes[index] = RecordOutcome(
                    Verdict.REJECT, BAD_INPUT, "record holds a value JSON cannot carry"
                )
            else:
                encoded[index] = body
        if isinstance(first, RequestFailure) and len(encoded) == count:
            await self._isolate(request, encoded, list(range(count)), first, outcomes)
        elif encoded:
            await self._write_indices(request, encoded, sorted(encoded), outcomes)
        return [_filled(outcome) for outcome in outcomes]

    async def _write_indices(
        self,
        request: WriteRequest,
        encoded: dict[int, bytes],
        indices: list[int],
        outcomes: list[RecordOutcome | None],
    ) -> None:
        """Send the records at `indices` and fill their outcomes."""
        parsed = await self._exchange(request, _array(encoded, indices), indices)
        if _is_poison(parsed):
            await self._isolate(request, encoded, indices, parsed, outcomes)
        else:
            _fill(outcomes, indices, parsed)

    async def _isolate(
        self,
        request: WriteRequest,
        encoded: dict[int, bytes],
        suspects: list[int],
        failure: RequestFailure,
        outcomes: list[RecordOutcome | None],
    ) -> None:
        """`suspects`, sent together, failed as a whole: find the bad record by halving.

        Each round sends the smaller half only: if it fails as a whole, the
        other half is set aside; if it gets per-record answers, the bad record
        is in the other half. The set-aside records go out together at the end
        (isolated again if they hold another bad record). A record is rejected
        only after it was sent alone and refused: when no single record is at
        fault (the body was too large together, 413, or only a combination is
        refused), the last suspect is sent alone and answered like any other.
        One bad record in n costs about ⌈log2 n⌉ + 2 extra requests.
        """
        set_aside: list[int] = []
        while len(suspects) > 1:
            half, rest = suspects[: len(suspects) // 2], suspects[len(suspects) // 2 :]
            self.stats.split_requests += 1
            parsed = await self._exchange(request, _array(encoded, half), half)
            if _is_poison(parsed):
                suspects, failure = half, parsed
                set_aside.extend(rest)
                if len(half) == 1:
                    break  # refused alone: this one is bad
                continue
            _fill(outcomes, half, parsed)
            if isinstance(parsed, RequestFailure):
                # No verdict on where the bad record is: send the rest as a new chunk.
                set_aside.extend(rest)
                suspects = []
                break
            suspects = rest
            if len(suspects) == 1:
                # Never sent alone: its turn, rather than blame it by elimination.
                self.stats.split_requests += 1
                parsed = await self._exchange(request, _array(encoded, suspects), suspects)
                if not _is_poison(parsed):
                    _fill(outcomes, suspects, parsed)
                    suspects = []
                    break
                failure = parsed
        for index in suspects:
            outcomes[index] = RecordOutcome(
                Verdict.REJECT, failure.code, failure.message, failure.details
            )
            log.warning("crm.poison_isolated", module=request.module, code=failure.code)
        if set_aside:
            self.stats.split_requests += 1
            await self._write_indices(request, encoded, sorted(set_aside), outcomes)

    async def _exchange(
        self, request: WriteRequest, records: bytes, indices: Sequence[int]
    ) -> ParsedResponse:
        """Send until the answer is neither a 429 nor a first 401; raise on fatal ones.

        `records` is the JSON array of the records of `request` at `indices`.
        """
        throttles = 0
        refreshed = False
        while True:
            try:
                token = await self._tokens.token()
            except TransportError as exc:
                return RequestFailure(ErrorClass.TRANSIENT_REQUEST, 0, CONNECTION_ERROR, str(exc))
            self._check_data_centre()
            parsed, retry_after = await self._send_once(request, records, indices, token)
            if isinstance(parsed, RecordResults):
                return parsed
            if parsed.error_class is ErrorClass.THROTTLED:
                throttles += 1
                refreshed = False
                await self._wait_throttled(throttles, retry_after)
                continue
            if parsed.error_class is ErrorClass.TOKEN and not refreshed:
                refreshed = True
                self.stats.token_refreshes += 1
                await self._tokens.invalidate(token)
                continue
            if parsed.error_class is ErrorClass.FATAL and refuses_feed_module(
                parsed.code, request.module, self._configured_module
            ):
                log.warning("crm.module_refused", module=request.module, code=parsed.code)
                return _refused(parsed, len(indices))
            if parsed.error_class in (ErrorClass.TOKEN, ErrorClass.FATAL):
                raise self._fatal(request, parsed)
            self._remember_unanswered(request, indices, parsed)
            return parsed

    def _remember_unanswered(
        self, request: WriteRequest, indices: Sequence[int], failure: RequestFailure
    ) -> None:
        """Inserts sent in a request that may have been applied but was not answered."""
        if (
            request.operation is Operation.INSERT
            and failure.error_class is ErrorClass.TRANSIENT_REQUEST
            and failure.code != REDIRECTED
        ):
            for index in indices:
                self._unanswered.remember(request.module, request.records[index])

    def _take_resent(self, request: WriteRequest) -> list[int]:
        """Positions of the request's inserts that were sent before without an answer."""
        if request.operation is not Operation.INSERT or not len(self._unanswered):
            return []
        module = request.module
        return [
            index
            for index, record in enumerate(request.records)
            if self._unanswered.take(module, record)
        ]

    async def _resolve_duplicates(
        self,
        request: WriteRequest,
        resent: list[int],
        outcomes: list[RecordOutcome],
        *,
        created_in: tuple[float, float] | None = None,
    ) -> None:
        """A resent insert answered DUPLICATE_DATA: its own first copy, or a real duplicate.

        One GET of the existing record decides (with `created_in`, it must
        also have been created in that time): it holds every value sent,
        so the unanswered attempt was applied and this change is synced with
        that id; it differs, so the duplicate is real and the failure stands.
        When the record cannot be read, the insert is retried (and remembered
        again), never guessed.
        """
        for index in resent:
            outcome = outcomes[index]
            if outcome.code != "DUPLICATE_DATA":
                continue
            record_id = existing_id(outcome.details)
            if record_id is None or not record_id.isdigit():
                continue  # nothing safe to read back: the failure stands
            self.stats.duplicates_checked += 1
            stored = await self._read_record(request.module, record_id)
            if stored is None:
                self._unanswered.remember(request.module, request.records[index])
                outcomes[index] = RecordOutcome(
                    Verdict.RETRY,
                    outcome.code,
                    "the resend met DUPLICATE_DATA and the existing record could not be read",
                    outcome.details,
                )
            elif (
                stored
                and holds_values(request.records[index], stored)
                and (created_in is None or created_within(stored, created_in))
            ):
                self.stats.duplicates_resolved += 1
                log.info("crm.resent_insert_found", module=request.module)
                outcomes[index] = RecordOutcome(
                    Verdict.SYNCED,
                    "SUCCESS",
                    "applied by an earlier attempt whose answer was lost",
                    {"id": record_id, "resolved": "DUPLICATE_DATA"},
                    record_id,
                )

    async def _read_record(self, module: str, record_id: str) -> dict[str, Any] | None:
        """`GET /crm/v2/{module}/{id}`: the record, {} when there is none, None when unknown."""
        answer = await self._get(f"/crm/v2/{module}/{record_id}")
        return None if answer is None else _read_answer(*answer)

    async def read_fields(self, module: str) -> tuple[int, bytes] | None:
        """`GET /crm/v2/settings/fields?module=`: (status, body), or None when unanswered.

        The field metadata local validation checks records against; one
        credit, no write. The caller parses the body (`crm.field_metadata`).
        """
        return await self._get("/crm/v2/settings/fields", {"module": module})

    async def _get(
        self, path: str, query: Mapping[str, str] | None = None
    ) -> tuple[int, bytes] | None:
        """One GET below the API domain: (status, body), None when no answer came.

        A 429 is waited out as for writes (a read shares the org's
        concurrency and credits); a few of them in a row leave it unanswered.
        """
        url = self._base.with_path(path)
        if query:
            url = url.with_query(query)
        for throttles in range(1, READ_THROTTLE_TRIES + 1):
            try:
                token = await self._tokens.token()
            except TransportError:
                return None
            headers = {"Authorization": f"Zoho-oauthtoken {token}"}
            if self._proxy is not None and self._proxy.forwarded:
                headers.update(self._proxy.request_headers())
            async with self._limiter.slot(records=1) as ticket:
                self.stats.requests += 1
                self.stats.credits_spent += self.credit_model.call_cost()
                try:
                    async with self._session.get(
                        url,
                        headers=headers,
                        timeout=self._timeout,
                        allow_redirects=False,
                        proxy=None if self._proxy is None else self._proxy.url,
                        proxy_headers=(
                            None if self._proxy is None else self._proxy.connect_headers()
                        ),
                    ) as response:
                        status = response.status
                        payload = await response.read()
                        retry_after = response.headers.get("Retry-After")
                except (TimeoutError, aiohttp.ClientError):
                    return None
                if status == 429:
                    self.stats.throttled += 1
                    self._limiter.on_throttled(ticket)
            if status != 429:
                return status, payload
            await self._wait_throttled(throttles, retry_after)
        return None

    def _check_data_centre(self) -> None:
        """Stop before writing when the token answer names another data centre.

        Records sent to the wrong data centre meet a run of confusing
        failures (INVALID_TOKEN, INVALID_URL_PATTERN); the mismatch itself is
        the config error to report (exit 2, both values named).
        """
        answered = self._tokens.api_domain
        if answered is None or answered == self._checked_api_domain:
            return
        check_api_domain(self._api_domain, answered)
        self._checked_api_domain = answered

    async def _send_once(
        self, request: WriteRequest, records: bytes, indices: Sequence[int], token: str
    ) -> tuple[ParsedResponse, str | None]:
        """One HTTP request inside a limiter slot; returns the parsed answer and Retry-After.

        `records` is the JSON array of the records of `request` at `indices`.
        """
        count = len(indices)
        method, path = method_and_path(request)
        url = self._base.with_path(path)
        body: bytes | None
        if request.operation is Operation.DELETE:
            url, body = url.with_query(delete_query(request, indices)), None
        else:
            body = build_body(request, records)
        headers = {
            "Authorization": f"Zoho-oauthtoken {token}",
            "Content-Type": "application/json",
        }
        if self._proxy is not None and self._proxy.forwarded:
            headers.update(self._proxy.request_headers())
        trace = SendTrace()
        async with self._limiter.slot(records=count) as ticket:
            self.stats.requests += 1
            try:
                async with self._session.request(
                    method,
                    url,
                    data=body,
                    headers=headers,
                    timeout=self._timeout,
                    trace_request_ctx=trace,
                    # A redirect would send the records and the token elsewhere.
                    allow_redirects=False,
                    proxy=None if self._proxy is None else self._proxy.url,
                    proxy_headers=None if self._proxy is None else self._proxy.connect_headers(),
                ) as response:
                    status = response.status
                    payload = await response.read()
                    retry_after = response.headers.get("Retry-After")
                    credits = response.headers.get(CREDITS_HEADER)
            except TimeoutError:
                return self._transport_failure(TIMEOUT, "no answer within the timeout", trace)
            except aiohttp.ClientError as exc:
                return self._transport_failure(CONNECTION_ERROR, type(exc).__name__, trace)
            finally:
                self.stats.aiohttp_resends += trace.resends
            parsed = parse_write_response(status, payload, count)
            if isinstance(parsed, RecordResults) and request.operation is not Operation.INSERT:
                parsed = _matching_ids(parsed, request, indices, status)
            self._account(status, parsed, credits, ticket)
            if isinstance(parsed, RecordResults):
                model = self.credit_model
                self.stats.credits_spent += (
                    model.call_cost()
                    if request.operation is Operation.DELETE
                    else model.write_cost(count)
                )
        return parsed, retry_after

    def _transport_failure(
        self, code: str, message: str, trace: SendTrace
    ) -> tuple[ParsedResponse, str | None]:
        """A request that got no answer: transient for the whole request."""
        self.stats.by_status[0] += 1
        self.stats.by_code[code] += 1
        self.stats.by_status_code[(0, code)] += 1
        log.warning("crm.no_answer", code=code, reason=message, resends=trace.resends)
        return RequestFailure(ErrorClass.TRANSIENT_REQUEST, 0, code, message), None

    def _account(
        self, status: int, parsed: ParsedResponse, credits: str | None, ticket: SlotTicket
    ) -> None:
        """Update counters and the limiter from one answer."""
        self.stats.by_status[status] += 1
        self.stats.by_status_code[
            (status, "-" if isinstance(parsed, RecordResults) else parsed.code)
        ] += 1
        if isinstance(parsed, RecordResults):
            codes = self.stats.record_codes
            if parsed.successes:
                codes["SUCCESS"] += parsed.successes
            if parsed.successes < len(parsed.outcomes):
                codes.update(o.code for o in parsed.outcomes if o.code != "SUCCESS")
            self._limiter.on_success()
            remaining = _int_or_none(credits)
            if remaining is not None:
                self.stats.credits_remaining = remaining
            self._limiter.on_credits_remaining(remaining)
            log.debug("crm.answered", status=status, records=len(parsed.outcomes))
            return
        self.stats.by_code[parsed.code] += 1
        if parsed.error_class is ErrorClass.THROTTLED:
            self.stats.throttled += 1
            self._limiter.on_throttled(ticket)
        log.info("crm.request_failed", status=status, code=parsed.code, kind=parsed.error_class)

    async def _wait_throttled(self, throttles: int, retry_after: str | None) -> None:
        """Wait before resending a throttled request: Retry-After, else jittered backoff."""
        delay_s = parse_retry_after_s(retry_after, now_epoch_s=self._clock())
        if delay_s is None:
            delay_s = backoff_s(
                throttles, base_s=self._backoff_base_s, cap_s=self._backoff_cap_s, rng=self._rng
            )
        log.warning("crm.throttled", delay_s=round(delay_s, 3), limit=self._limiter.limit)
        await self._sleep(delay_s)

    def _fatal(self, request: WriteRequest, failure: RequestFailure) -> FatalError:
        """A one-line reason naming the operation, status and CRM code (no secrets)."""
        message = " ".join(failure.message.split())[:200]
        reason = (
            f"the CRM refused {request.operation} on {request.module}: "
            f"HTTP {failure.status} {failure.code}"
        )
        if failure.error_class is ErrorClass.TOKEN:
            reason += " again right after a token refresh"
        if message:
            reason += f" ({message})"
        log.error("crm.fatal", status=failure.status, code=failure.code)
        return FatalError(reason)


def _read_answer(status: int, payload: bytes) -> dict[str, Any] | None:
    """The record a GET of one record answered; {} for none (204); None when unusable."""
    if status == 204:
        return {}
    if status != 200:
        return None
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    data = document.get("data") if isinstance(document, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        record: dict[str, Any] = data[0]
        return record
    return None


def _matching_ids(
    parsed: RecordResults, request: WriteRequest, indices: Sequence[int], status: int
) -> ParsedResponse:
    """`parsed`, unless an answer names another record than the one sent at its position.

    Answers are matched to records by position; an answer whose `details.id`
    disagrees with the id sent there belongs to another record, and using it
    would report one record's fate as another's. Such an answer is unusable
    as a whole (transient: sent again). Checked wherever an id was sent
    (every update; an upsert that carries one). An upsert without an id has
    nothing to compare: any id it gets back is the record it matched or made.

    Only successes are compared: an error's `details.id` may name another
    record on purpose (the one already holding a `DUPLICATE_DATA` value).
    """
    records = request.records
    answered_ids = [outcome.crm_id for outcome in parsed.outcomes]
    if answered_ids == [records[index].get("id") for index in indices]:
        return parsed  # the common case, compared in one go: every success names its record
    for position, (index, outcome) in enumerate(zip(indices, parsed.outcomes, strict=True)):
        answered = outcome.crm_id
        if answered is None:
            continue
        sent = records[index].get("id")
        if sent is not None and str(sent) != answered:
            return RequestFailure(
                ErrorClass.TRANSIENT_REQUEST,
                status,
                BAD_RESPONSE,
                f"data[{position}] names record {answered}, the record sent there is {sent}",
            )
    return parsed


def _fill(outcomes: list[RecordOutcome | None], indices: list[int], parsed: ParsedResponse) -> None:
    """Put the answer's outcomes (or the whole-request failure) at `indices`."""
    if isinstance(parsed, RecordResults):
        for index, outcome in zip(indices, parsed.outcomes, strict=True):
            outcomes[index] = outcome
        return
    for index in indices:
        outcomes[index] = _retry_outcome(parsed)


def _is_poison(parsed: ParsedResponse | None) -> TypeGuard[RequestFailure]:
    """True when the request failed as a whole because of a record in it."""
    return isinstance(parsed, RequestFailure) and parsed.error_class is ErrorClass.POISON


def _outcomes(parsed: ParsedResponse, count: int) -> list[RecordOutcome]:
    """The `count` outcomes of a request sent whole: its answers, or its failure for each."""
    if isinstance(parsed, RecordResults):
        return parsed.outcomes
    return [_retry_outcome(parsed) for _ in range(count)]


def _refused(failure: RequestFailure, count: int) -> RecordResults:
    """Each of `count` records failed with a whole-request refusal's code: not sent again."""
    return RecordResults(
        [
            RecordOutcome(Verdict.REJECT, failure.code, failure.message, dict(failure.details))
            for _ in range(count)
        ]
    )


def _retry_outcome(failure: RequestFailure) -> RecordOutcome:
    """A record's share of a whole-request failure: sent again later."""
    return RecordOutcome(Verdict.RETRY, failure.code, failure.message, dict(failure.details))


def _array(encoded: dict[int, bytes], indices: list[int]) -> bytes:
    """The JSON array of the records at `indices`, from their single encodings."""
    return b"[" + b",".join([encoded[index] for index in indices]) + b"]"


def _filled(outcome: RecordOutcome | None) -> RecordOutcome:
    """An outcome the write settled; a gap here is a bug in this module."""
    if outcome is None:
        raise AssertionError("a record was left without an outcome")
    return outcome


def _int_or_none(value: str | None) -> int | None:
    """A header's integer value, or None when absent or not an integer."""
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None

"""Handlers of the records API v2: insert, update, upsert, delete, read, metadata.

Each call goes through the same gate, in this order: token, module, scope
(`access`), body (`envelope`), a concurrency slot (429 at once when none is
free, and a heavy slot for writes of more than `heavy_records` records),
credits (429 when the window is spent), then the seeded fate of the request
(latency; a 500 or a dropped connection before anything is applied; a stall
after the records are applied, holding its slot while it hangs). Credits are
charged only for calls that reach validation. All OK answers 200 (insert 201);
some failed answers `partial_status` (202, or 207); all failed answers 400
with `data[]`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from syncengine.model import MAX_CHUNK_RECORDS
from syncengine.sim.access import access_problem
from syncengine.sim.config import write_cost
from syncengine.sim.envelope import BodyError, Envelope, parse_envelope
from syncengine.sim.faults import Fault
from syncengine.sim.responses import CONCURRENCY_MESSAGE, CREDITS_MESSAGE, respond, whole_error
from syncengine.sim.state import STATE_KEY, SimState
from syncengine.sim.writes import (
    ALL_TRIGGERS,
    WriteContext,
    delete_one,
    duplicate_order,
    insert_one,
    update_one,
    upsert_one,
)

#: A request's work once it holds its slot: (status, body).
Work = Callable[[], tuple[int, Any]]


def iso_now(state: SimState) -> str:
    """The simulator's wall-clock time as the API prints it (ISO 8601 with offset)."""
    moment = datetime.fromtimestamp(time.time() + state.clock.offset_s, UTC)
    return moment.isoformat(timespec="seconds")


def batch_status(elements: list[dict[str, Any]], *, created: bool, partial: int) -> int:
    """200 (201 for inserts) all OK, `partial` when mixed, 400 when every record failed."""
    ok = sum(1 for e in elements if e["status"] == "success")
    if ok == len(elements):
        return 201 if created else 200
    return partial if ok else 400


def _credit_headers(state: SimState) -> dict[str, str] | None:
    value = state.limits.header(state.config, state.clock.now())
    return None if value is None else {"X-API-CREDITS-REMAINING": value}


def _throttled(state: SimState, message: str) -> web.Response:
    """429 `TOO_MANY_REQUESTS`, with `Retry-After` only when the knob asks for it."""
    state.stats.throttled += 1
    headers = _credit_headers(state) or {}
    if state.config.retry_after_s is not None:
        headers["Retry-After"] = f"{state.config.retry_after_s:g}"
    return whole_error(state, "TOO_MANY_REQUESTS", message=message, headers=headers or None)


def _drop(request: web.Request, state: SimState) -> web.Response:
    """Close the connection with no answer; the returned response is never sent."""
    state.stats.dropped += 1
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


async def run_limited(
    request: web.Request, state: SimState, *, records: int, heavy: bool, cost: int, work: Work
) -> web.Response:
    """Run `work` under the concurrency, credit and fault rules (module docstring)."""
    config = state.config
    if not state.limits.try_enter(config, heavy=heavy):
        return _throttled(state, CONCURRENCY_MESSAGE)
    try:
        if not state.limits.can_afford(config, cost, state.clock.now()):
            return _throttled(state, CREDITS_MESSAGE)
        decision = state.faults.decide(config, records)
        if decision.fault is Fault.THROTTLE:
            return _throttled(state, CONCURRENCY_MESSAGE)
        if decision.delay_s > 0.0:
            await asyncio.sleep(decision.delay_s)
        if decision.fault is Fault.ERROR_500:
            return whole_error(state, "INTERNAL_ERROR")
        if decision.fault is Fault.DROP:
            return _drop(request, state)
        state.limits.charge(cost, state.clock.now())
        state.stats.credits_used += cost
        status, body = work()
        if decision.fault is Fault.DROP_AFTER and request.method != "GET":
            # The write is applied; only its answer is lost (the client must not
            # take the resend's DUPLICATE_DATA for a failure).
            return _drop(request, state)
        if decision.fault is Fault.STALL:
            state.stats.stalled += 1
            await asyncio.sleep(config.stall_s)
        return respond(state, status, body, headers=_credit_headers(state))
    finally:
        state.limits.leave(heavy=heavy)


def _gate(request: web.Request, state: SimState, operation: str) -> web.Response | None:
    """The whole-request error for a call the token, module, scope or `refuse_with` stops."""
    module = request.match_info["module"]
    code = access_problem(
        state.config,
        state.tokens,
        request.headers.get("Authorization"),
        module=module,
        known_modules=state.modules,
        operation=operation,
    )
    if code is None and state.config.refuse_with is not None:
        return refusal(state, state.config.refuse_with, module)
    return None if code is None else whole_error(state, code)


def refusal(state: SimState, code: str, module: str) -> web.Response:
    """A whole-request refusal a person must resolve (crm-api.md §1.7).

    `NO_PERMISSION` lists the profile permission that is missing, as Zoho's
    example does (`details.permissions`); the others carry no details.
    """
    details = {"permissions": [f"Crm_Implied_View_{module}"]} if code == "NO_PERMISSION" else {}
    return whole_error(state, code, details=details)


def _context(state: SimState, module_name: str, env: Envelope | None) -> WriteContext:
    return WriteContext(
        module=state.modules[module_name],
        store=state.store,
        faults=state.faults,
        config=state.config,
        now=iso_now(state),
        user=dict(state.schema.users[0]),
        layout_rules=env is not None and env.layout_rules,
    )


def _tally(state: SimState, elements: list[dict[str, Any]], env: Envelope) -> None:
    codes = [e["code"] for e in elements]
    state.stats.by_code.update(codes)
    written = codes.count("SUCCESS")
    state.stats.records_written += written
    if "workflow" in (ALL_TRIGGERS if env.trigger is None else env.trigger):
        state.stats.workflow_runs += written


async def _write(request: web.Request, operation: str) -> web.Response:
    """Insert, update or upsert: one result element per input record, in order."""
    state = request.app[STATE_KEY]
    refused = _gate(request, state, operation)
    if refused is not None:
        return refused
    module_name = request.match_info["module"]
    module = state.modules[module_name]
    env = parse_envelope(await request.read(), module, upsert=operation == "upsert")
    if isinstance(env, BodyError):
        return whole_error(state, env.code, details=env.details)
    poison = state.config.poison_field
    if poison is not None and any(isinstance(r, dict) and poison in r for r in env.data):
        details = {"api_name": poison, "expected_data_type": "jsonobject"}
        return whole_error(state, "INVALID_DATA", details=details)
    url_id = request.match_info.get("record_id")
    order = duplicate_order(module, env.duplicate_fields)

    def work() -> tuple[int, Any]:
        ctx = _context(state, module_name, env)
        if operation == "update":
            elements = [update_one(ctx, raw, url_id) for raw in env.data]
        elif operation == "insert":
            elements = [insert_one(ctx, raw) for raw in env.data]
        else:
            elements = [upsert_one(ctx, raw, order) for raw in env.data]
        _tally(state, elements, env)
        status = batch_status(
            elements, created=operation == "insert", partial=state.config.partial_status
        )
        return status, {"data": elements}

    count = len(env.data)
    heavy = count > state.config.heavy_records
    cost = write_cost(state.config, count)
    return await run_limited(request, state, records=count, heavy=heavy, cost=cost, work=work)


async def insert_records(request: web.Request) -> web.Response:
    """`POST /crm/v2/{module}`."""
    return await _write(request, "insert")


async def update_records(request: web.Request) -> web.Response:
    """`PUT /crm/v2/{module}` and `PUT /crm/v2/{module}/{record_id}`."""
    return await _write(request, "update")


async def upsert_records(request: web.Request) -> web.Response:
    """`POST /crm/v2/{module}/upsert`."""
    return await _write(request, "upsert")


async def delete_records(request: web.Request) -> web.Response:
    """`DELETE /crm/v2/{module}?ids=` and `DELETE /crm/v2/{module}/{record_id}`."""
    state = request.app[STATE_KEY]
    refused = _gate(request, state, "delete")
    if refused is not None:
        return refused
    one = request.match_info.get("record_id")
    ids = [one] if one else [i for i in request.query.get("ids", "").split(",") if i.strip()]
    if not ids:
        return whole_error(state, "REQUIRED_PARAM_MISSING", details={"param": "ids"})
    if len(ids) > MAX_CHUNK_RECORDS:
        return whole_error(state, "LIMIT_EXCEEDED", details={"limit": MAX_CHUNK_RECORDS})
    module_name = request.match_info["module"]

    def work() -> tuple[int, Any]:
        ctx = _context(state, module_name, None)
        elements = [delete_one(ctx, given) for given in ids]
        state.stats.by_code.update(e["code"] for e in elements)
        return batch_status(elements, created=False, partial=state.config.partial_status), {
            "data": elements
        }

    return await run_limited(request, state, records=len(ids), heavy=False, cost=1, work=work)


async def get_record(request: web.Request) -> web.Response:
    """`GET /crm/v2/{module}/{record_id}`: the record, or 204 when there is none."""
    state = request.app[STATE_KEY]
    refused = _gate(request, state, "read")
    if refused is not None:
        return refused
    module_name, record_id = request.match_info["module"], request.match_info["record_id"]

    def work() -> tuple[int, Any]:
        stored = state.store.get(module_name, record_id)
        if stored is None:
            return 204, None
        body = {
            "id": record_id,
            **stored.fields,
            "Created_Time": stored.created_time,
            "Modified_Time": stored.modified_time,
        }
        return 200, {"data": [body]}

    return await run_limited(request, state, records=1, heavy=False, cost=1, work=work)

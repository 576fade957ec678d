"""Admin endpoints under `/__admin/`, mounted only when the `admin` knob is on.

JSON shapes (other modules and tests depend on them):

- `POST /__admin/seed` with `{"module": "Leads", "records": [{"id": "...", ...}]}`
  (ids optional, generated when absent) and/or `{"module": "Leads", "count": N,
  "id_start": 4876876000000000001}` (N valid records with consecutive ids).
  Seeded records skip validation and start with `writes` 0. Answers
  `{"ids": [...]}`, or `{"count": N}` when more than 1,000 were seeded.
- `GET /__admin/records[?module=Leads]` → `{"Leads": {"<id>": {"fields": {...},
  "writes": <int>}}}`, every module when `module` is absent.
- `GET /__admin/stats` → `{"requests", "by_status": {"200": n}, "by_code":
  {"INVALID_TOKEN": n}, "records_written", "max_in_flight", "in_flight",
  "max_requests_per_minute", "throttled", "token_mints", "token_refusals",
  "credits_used", "dropped", "stalled", "workflow_runs", "bulk_uploads",
  "bulk_jobs", "bulk_job_rows"}`. Counts cover the
  records API and the token endpoint, not admin calls; `by_code` counts
  whole-request codes, per-record codes (including `SUCCESS`) and token `error`
  values; `max_in_flight` is the most such requests being handled at once, 429s
  included; `max_requests_per_minute` is the busiest rolling 60 s of records-API
  calls on the simulator's clock; `workflow_runs` counts records written by
  requests whose `trigger` let workflows run.
- `POST /__admin/reset` clears records, counters, tokens, credits and fault
  streams; with `{"config": true}` knobs also return to their start values.
- `POST /__admin/config` with `{knob: value, ...}` changes knobs at run time
  and answers the full current config; an unknown knob or bad value answers
  400 `{"error": "<knob>: <reason>"}` and changes nothing.
- `POST /__admin/clock` with `{"advance_s": S}` moves the simulator's clock
  forward (token expiry, mint window, credit window); answers `{"offset_s"}`.

Bad admin requests answer 400 `{"error": "..."}`.
"""

from __future__ import annotations

import itertools
from typing import Any, Final

import orjson
from aiohttp import web

from syncengine.sim.config import KnobError, config_to_json
from syncengine.sim.records_api import iso_now
from syncengine.sim.schema import SchemaError, sample_record
from syncengine.sim.state import STATE_KEY, SimState
from syncengine.sim.validation import parse_id

#: Above this many seeded records the answer gives a count instead of the ids.
ID_LIST_LIMIT: Final = 1_000


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _bad(message: str) -> web.Response:
    return _json({"error": message}, status=400)


async def _body(request: web.Request) -> dict[str, Any] | None:
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _seed_given(state: SimState, module: str, records: list[Any], now: str) -> list[str]:
    ids = []
    for raw in records:
        fields = {k: v for k, v in raw.items() if k != "id"}
        record_id = parse_id(raw.get("id")) or state.store.new_id()
        state.store.put(module, record_id, fields, now).writes = 0
        ids.append(record_id)
    return ids


def _seed_generated(state: SimState, module: str, count: int, id_start: int, now: str) -> list[str]:
    schema = state.schema.modules[module]
    ids = []
    for number in itertools.islice(itertools.count(id_start), count):
        record_id = str(number)
        state.store.put(module, record_id, sample_record(schema, number), now).writes = 0
        ids.append(record_id)
    state.store.next_id = max(state.store.next_id, id_start + count)
    return ids


async def seed(request: web.Request) -> web.Response:
    """Add records to a module without validation (see the module docstring)."""
    state = request.app[STATE_KEY]
    body = await _body(request)
    if body is None:
        return _bad("body: expected a JSON object")
    module = body.get("module")
    if module not in state.schema.modules:
        return _bad(f"module: unknown module {module!r}")
    records = body.get("records", [])
    count = body.get("count", 0)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        return _bad("records: expected a list of objects")
    if not isinstance(count, int) or count < 0:
        return _bad("count: expected a non-negative integer")
    id_start = body.get("id_start", state.store.next_id)
    if not isinstance(id_start, int) or len(str(id_start)) > 19:
        return _bad("id_start: expected an integer id of at most 19 digits")
    now = iso_now(state)
    ids = _seed_given(state, module, records, now)
    ids += _seed_generated(state, module, count, id_start, now)
    return _json({"count": len(ids)} if len(ids) > ID_LIST_LIMIT else {"ids": ids})


async def records(request: web.Request) -> web.Response:
    """Every record with its fields and write count, for one module or all."""
    state = request.app[STATE_KEY]
    module = request.query.get("module")
    if module is not None and module not in state.schema.modules:
        return _bad(f"module: unknown module {module!r}")
    return _json(state.store.snapshot(module))


async def stats(request: web.Request) -> web.Response:
    """The counters (see the module docstring)."""
    return _json(request.app[STATE_KEY].stats.to_json())


async def reset(request: web.Request) -> web.Response:
    """Clear state; `{"config": true}` also restores the starting knobs."""
    state = request.app[STATE_KEY]
    body = await _body(request)
    if body is None:
        return _bad("body: expected a JSON object")
    state.reset(config=body.get("config") is True)
    return _json({"reset": True})


async def config(request: web.Request) -> web.Response:
    """Change knobs at run time; answers the full config or names the bad knob."""
    state = request.app[STATE_KEY]
    body = await _body(request)
    if body is None:
        return _bad("body: expected a JSON object of knobs")
    try:
        state.set_config(body)
    except (KnobError, SchemaError) as exc:
        return _bad(str(exc))
    return _json(config_to_json(state.config))


async def clock(request: web.Request) -> web.Response:
    """Advance the simulator's clock by `advance_s` seconds."""
    state = request.app[STATE_KEY]
    body = await _body(request)
    advance = None if body is None else body.get("advance_s")
    if isinstance(advance, bool) or not isinstance(advance, int | float) or advance < 0:
        return _bad("advance_s: expected a non-negative number of seconds")
    state.clock.advance(float(advance))
    return _json({"offset_s": state.clock.offset_s})


def add_admin_routes(app: web.Application) -> None:
    """Mount the admin endpoints on `app`."""
    app.router.add_post("/__admin/seed", seed)
    app.router.add_get("/__admin/records", records)
    app.router.add_get("/__admin/stats", stats)
    app.router.add_post("/__admin/reset", reset)
    app.router.add_post("/__admin/config", config)
    app.router.add_post("/__admin/clock", clock)

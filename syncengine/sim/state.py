"""The simulator's live state: config, schema, records, tokens, limits, counters.

One `SimState` backs one running server; handlers read and change it, and
in-process tests reach it through `SimHandle.state` to inspect records or turn
knobs directly, with the same effect as `POST /__admin/config`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from syncengine.sim.bulk_jobs import BulkState
from syncengine.sim.config import SimConfig, apply_knobs, validate_config
from syncengine.sim.faults import FaultPlan
from syncengine.sim.limits import Limits
from syncengine.sim.schema import Schema, load_schema
from syncengine.sim.store import RecordStore
from syncengine.sim.tokens import Clock, TokenServer
from syncengine.sim.validation import CompiledModule, compile_module


@dataclass(slots=True)
class Stats:
    """Counters served by `GET /__admin/stats` (admin requests are not counted)."""

    requests: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_code: Counter[str] = field(default_factory=Counter)
    records_written: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    max_requests_per_minute: int = 0
    throttled: int = 0
    token_mints: int = 0
    token_refusals: int = 0
    credits_used: int = 0
    dropped: int = 0
    stalled: int = 0
    workflow_runs: int = 0
    #: Bulk Write API: files uploaded, jobs created, and rows in the jobs created.
    bulk_uploads: int = 0
    bulk_jobs: int = 0
    bulk_job_rows: int = 0

    def to_json(self) -> dict[str, Any]:
        """The stats as JSON: counters as plain objects."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["by_status"] = dict(self.by_status)
        out["by_code"] = dict(self.by_code)
        return out


class SimState:
    """Everything one simulator instance knows; changed only on its event loop."""

    def __init__(self, config: SimConfig) -> None:
        self.initial_config = dataclasses.replace(validate_config(config))
        self.config = dataclasses.replace(config)  # the caller's object is never changed
        self.clock = Clock()
        self.schema: Schema = load_schema(config.schema)
        self.modules: dict[str, CompiledModule] = {}
        self._compile()
        self.store = RecordStore(self.schema)
        self.tokens = TokenServer(self.clock)
        self.limits = Limits()
        self.faults = FaultPlan(config.seed)
        self.stats = Stats()
        self.recent_calls: deque[float] = deque()  # records-API arrival times, last minute
        self.base_url = ""  # set once the server listens
        self.bulk = BulkState(config.seed)  # bulk-write uploads and jobs

    def note_api_call(self) -> None:
        """Track the busiest rolling minute of records-API calls (`max_requests_per_minute`)."""
        now = self.clock.now()
        recent = self.recent_calls
        recent.append(now)
        while recent[0] <= now - 60.0:
            recent.popleft()
        stats = self.stats
        stats.max_requests_per_minute = max(stats.max_requests_per_minute, len(recent))

    def _compile(self) -> None:
        self.modules = {
            name: compile_module(module, self.schema.user_ids)
            for name, module in self.schema.modules.items()
        }

    @property
    def api_domain(self) -> str:
        """The `api_domain` token answers carry: the knob, else this server."""
        return self.config.api_domain or self.base_url

    def set_config(self, knobs: dict[str, Any]) -> SimConfig:
        """Apply knob changes at run time; raises `KnobError` and changes nothing if bad.

        A new schema file replaces every record (old records may not fit it), a
        new seed restarts the fault streams, and revoking kills live tokens.
        """
        new = apply_knobs(self.config, knobs)
        schema = load_schema(new.schema) if new.schema != self.config.schema else None
        old, self.config = self.config, new
        if schema is not None:
            self.schema = schema
            self._compile()
            self.store = RecordStore(schema)
        if new.seed != old.seed:
            self.faults.reseed(new.seed)
        if new.revoked and not old.revoked:
            self.tokens.revoke_all()
        return new

    def reset(self, *, config: bool = False) -> None:
        """Clear records, counters, tokens, credits and fault streams.

        With `config`, knobs go back to the values the server started with.
        """
        if config:
            self.set_config(
                {
                    f.name: getattr(self.initial_config, f.name)
                    for f in dataclasses.fields(SimConfig)
                }
            )
        self.store.reset()
        self.tokens.reset()
        self.limits.reset()
        self.faults.reseed(self.config.seed)
        self.recent_calls.clear()
        self.bulk.reset(self.config.seed)
        in_flight = self.stats.in_flight
        self.stats = Stats(in_flight=in_flight, max_in_flight=in_flight)


#: Where handlers find the state of the application serving them.
STATE_KEY: web.AppKey[SimState] = web.AppKey("syncengine_sim_state", SimState)

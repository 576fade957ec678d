"""The simulator's aiohttp application, and a way to run it in the current loop.

`create_app(config)` wires the token endpoint, the records API, the metadata
endpoints and (with `admin` on) the admin endpoints onto one application.
`running_simulator()` serves it on loopback for in-process tests; the
`syncengine sim` command (and `python -m syncengine.sim`) serves it as a
process for benchmarks, demos and crash tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from syncengine.sim import admin, bulk_api, metadata_api, oauth_api, records_api
from syncengine.sim.config import SimConfig
from syncengine.sim.responses import whole_error
from syncengine.sim.state import STATE_KEY, SimState

#: How long in-flight requests (a stall, say) may finish once the server stops.
SHUTDOWN_GRACE_S: Final = 0.25

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def track_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count non-admin requests and the most handled at once (`max_in_flight`)."""
    if request.path.startswith("/__admin/"):
        return await handler(request)
    state = request.app[STATE_KEY]
    stats = state.stats
    stats.requests += 1
    stats.in_flight += 1
    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
    if request.path.startswith("/crm/"):
        state.note_api_call()
    try:
        return await handler(request)
    finally:
        state.stats.in_flight -= 1  # `reset` may have replaced the stats object


async def unknown_route(request: web.Request) -> web.Response:
    """404 `INVALID_URL_PATTERN`; a records URL with a wrong verb: `INVALID_REQUEST_METHOD`."""
    state = request.app[STATE_KEY]
    parts = request.path.strip("/").split("/")
    if parts[:2] == ["crm", "v2"] and len(parts) in (3, 4):
        return whole_error(state, "INVALID_REQUEST_METHOD")
    return whole_error(state, "INVALID_URL_PATTERN")


def create_app(config: SimConfig) -> web.Application:
    """The simulator as an application; raises `KnobError`/`SchemaError` for a bad config."""
    app = web.Application(middlewares=[track_requests])
    app[STATE_KEY] = SimState(config)
    router = app.router
    router.add_post("/oauth/v2/token", oauth_api.issue_token)
    router.add_get("/crm/v2/settings/fields", metadata_api.get_fields)
    router.add_get("/crm/v2/settings/modules", metadata_api.get_modules)
    bulk_api.add_bulk_routes(app)  # before the records routes: /crm/v2/upload is no module
    router.add_post("/crm/v2/{module}/upsert", records_api.upsert_records)
    router.add_post("/crm/v2/{module}", records_api.insert_records)
    router.add_put("/crm/v2/{module}", records_api.update_records)
    router.add_delete("/crm/v2/{module}", records_api.delete_records)
    router.add_put("/crm/v2/{module}/{record_id}", records_api.update_records)
    router.add_delete("/crm/v2/{module}/{record_id}", records_api.delete_records)
    router.add_get("/crm/v2/{module}/{record_id}", records_api.get_record)
    if config.admin:
        admin.add_admin_routes(app)
    router.add_route("*", "/{tail:.*}", unknown_route)
    return app


@dataclass(frozen=True, slots=True)
class SimHandle:
    """A running simulator: where to reach it, and its live state."""

    base_url: str
    port: int
    state: SimState

    @property
    def accounts_url(self) -> str:
        """The `[crm] accounts_url` value: tokens at `{accounts_url}/oauth/v2/token`."""
        return self.base_url

    @property
    def token_url(self) -> str:
        """The full token endpoint URL (what Zoho's SDK takes as its accounts URL)."""
        return f"{self.base_url}/oauth/v2/token"

    @property
    def config(self) -> SimConfig:
        """The live config (knobs changed at run time included)."""
        return self.state.config


@asynccontextmanager
async def running_simulator(
    config: SimConfig | None = None, **overrides: Any
) -> AsyncIterator[SimHandle]:
    """Serve a simulator in the current loop until the block exits.

    Without `config` it listens on a free loopback port (port 0); `overrides`
    replace knobs of `config` (e.g. `admin=True, fault_500=0.1`). The server is
    stopped and its connections closed on exit, even on error.
    """
    base = config if config is not None else SimConfig(port=0)
    effective = dataclasses.replace(base, **overrides) if overrides else base
    app = create_app(effective)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, effective.host, effective.port)
        await site.start()
        port = int(runner.addresses[0][1])
        state = app[STATE_KEY]
        state.base_url = f"http://{effective.host}:{port}"
        yield SimHandle(base_url=state.base_url, port=port, state=state)
    finally:
        await runner.cleanup()

"""Metadata endpoints Zoho's SDK reads before it writes: fields and modules.

`GET /crm/v2/settings/fields?module=` answers `{"fields": [...]}` built from
the same schema the write endpoints enforce; `GET /crm/v2/settings/modules`
lists the modules. Both need a `ZohoCRM.settings.*` scope, count against the
concurrency limit and cost one credit, like any other call.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from syncengine.sim.access import access_problem
from syncengine.sim.records_api import run_limited
from syncengine.sim.responses import whole_error
from syncengine.sim.schema import field_metadata
from syncengine.sim.state import STATE_KEY, SimState


def _refusal(request: web.Request, state: SimState) -> web.Response | None:
    code = access_problem(
        state.config,
        state.tokens,
        request.headers.get("Authorization"),
        module=None,
        known_modules=state.modules,
        operation="settings",
    )
    return None if code is None else whole_error(state, code)


async def get_fields(request: web.Request) -> web.Response:
    """The field list of `?module=`; `REQUIRED_PARAM_MISSING` / `INVALID_MODULE` otherwise."""
    state = request.app[STATE_KEY]
    refused = _refusal(request, state)
    if refused is not None:
        return refused
    name = request.query.get("module")
    if not name:
        return whole_error(state, "REQUIRED_PARAM_MISSING", details={"param": "module"})
    module = state.schema.modules.get(name)
    if module is None:
        return whole_error(state, "INVALID_MODULE")

    def work() -> tuple[int, Any]:
        return 200, {"fields": field_metadata(module)}

    return await run_limited(request, state, records=0, heavy=False, cost=1, work=work)


async def get_modules(request: web.Request) -> web.Response:
    """Every module the schema defines, each marked `api_supported`."""
    state = request.app[STATE_KEY]
    refused = _refusal(request, state)
    if refused is not None:
        return refused

    def work() -> tuple[int, Any]:
        modules = [
            {
                "api_name": m.api_name,
                "module_name": m.api_name,
                "singular_label": m.api_name.rstrip("s"),
                "plural_label": m.api_name,
                "id": m.id,
                "api_supported": True,
                "generated_type": "default",
                "creatable": True,
                "editable": True,
                "deletable": True,
                "viewable": True,
            }
            for m in state.schema.modules.values()
        ]
        return 200, {"modules": modules}

    return await run_limited(request, state, records=0, heavy=False, cost=1, work=work)

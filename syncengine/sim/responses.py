"""JSON answers of the simulator, and the whole-request errors it can give.

Every answer of the records API and the token endpoint goes through `respond`,
which counts it in the stats (by status, and by `code` or token `error`).
Whole-request errors are bare objects `{"code", "details", "message",
"status": "error"}` with no `data` wrapper (crm-api.md §1.7).
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from aiohttp import web

from syncengine.sim.state import SimState

#: Whole-request error code → (HTTP status, message).
WHOLE_ERRORS: Final[dict[str, tuple[int, str]]] = {
    "INVALID_TOKEN": (401, "invalid oauth token"),
    "AUTHENTICATION_FAILURE": (401, "Authentication failed"),
    "OAUTH_SCOPE_MISMATCH": (401, "invalid oauth scope to access this URL"),
    "INVALID_MODULE": (400, "The module name given seems to be invalid"),
    "INVALID_URL_PATTERN": (404, "Please check if the URL trying to access is a correct one"),
    "INVALID_REQUEST_METHOD": (400, "The http request method type is not a valid one"),
    "REQUIRED_PARAM_MISSING": (400, "One of the expected parameter is missing"),
    "MANDATORY_NOT_FOUND": (400, "required field not found"),
    "INVALID_DATA": (400, "invalid data"),
    "LIMIT_EXCEEDED": (400, "the number of records exceeds the allowed limit"),
    "TOO_MANY_REQUESTS": (429, "too many requests"),
    "INTERNAL_ERROR": (500, "Internal Server Error"),
    # Refusals a person must resolve (crm-api.md §1.7); messages from Zoho's examples.
    "NO_PERMISSION": (403, "permission denied"),
    "AUTHORIZATION_FAILED": (400, "User does not have sufficient privilege to perform this action"),
    "FEATURE_NOT_SUPPORTED": (403, "feature not available in this edition"),
    "LICENSE_LIMIT_EXCEEDED": (400, "Request exceeds your license limit."),
}

CONCURRENCY_MESSAGE: Final = "The concurrency limit of the user for the given App has exceeded"
CREDITS_MESSAGE: Final = "You have reached the API credits limit for the rolling 24 hours"


def respond(
    state: SimState, status: int, body: Any, *, headers: dict[str, str] | None = None
) -> web.Response:
    """Serialise `body` with orjson (None: no body) and count the answer in the stats."""
    stats = state.stats
    stats.by_status[str(status)] += 1
    if body is None:
        return web.Response(status=status, headers=headers)
    if isinstance(body, dict):
        code = body.get("code") or body.get("error")
        if isinstance(code, str):
            stats.by_code[code] += 1
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def whole_error(
    state: SimState,
    code: str,
    *,
    details: dict[str, Any] | None = None,
    message: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A bare error object with the status `WHOLE_ERRORS` gives `code`."""
    status, default_message = WHOLE_ERRORS[code]
    body = {
        "code": code,
        "details": details or {},
        "message": message or default_message,
        "status": "error",
    }
    return respond(state, status, body, headers=headers)

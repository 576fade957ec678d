"""Who may call the records API: the access token, the module, the scope.

Checks run in the real service's order (token, then module, then scope) and
answer the whole-request error code to send, or None when the call may go on.
Scopes are read from the live config at each call, so restricting them at run
time takes effect at once (the real service binds scopes at consent time).
"""

from __future__ import annotations

from collections.abc import Container
from typing import Final

from syncengine.sim.config import SimConfig
from syncengine.sim.tokens import TokenServer

#: Scope operations each API operation accepts (crm-api.md §1.1, "Scopes").
#: WRITE is taken to cover every write; the docs do not pin it down.
OPERATION_SCOPES: Final[dict[str, frozenset[str]]] = {
    "insert": frozenset({"ALL", "WRITE", "CREATE"}),
    "upsert": frozenset({"ALL", "WRITE", "CREATE"}),
    "update": frozenset({"ALL", "WRITE", "UPDATE"}),
    "delete": frozenset({"ALL", "WRITE", "DELETE"}),
    "read": frozenset({"ALL", "READ"}),
}


def scope_allows(scopes: tuple[str, ...], module: str, operation: str) -> bool:
    """Whether `scopes` let a token do `operation` on `module` (case-insensitive).

    `operation` "settings" asks for field/module metadata (`ZohoCRM.settings.*`).
    """
    wanted = {s.casefold() for s in scopes}
    if operation == "settings":
        return any(s.startswith("zohocrm.settings.") for s in wanted)
    if "zohocrm.modules.all" in wanted:
        return True
    prefix = f"zohocrm.modules.{module.casefold()}."
    allowed = {op.casefold() for op in OPERATION_SCOPES[operation]}
    return any(s.startswith(prefix) and s[len(prefix) :] in allowed for s in wanted)


def token_problem(config: SimConfig, tokens: TokenServer, authorization: str | None) -> str | None:
    """`AUTHENTICATION_FAILURE` without a usable header, `INVALID_TOKEN` for a dead token."""
    if not authorization:
        return "AUTHENTICATION_FAILURE"
    scheme, _, token = authorization.partition(" ")
    accepted = scheme == "Zoho-oauthtoken" or (config.accept_bearer and scheme == "Bearer")
    if not accepted or not token:
        return "AUTHENTICATION_FAILURE"
    return None if tokens.is_valid(config, token.strip()) else "INVALID_TOKEN"


def access_problem(
    config: SimConfig,
    tokens: TokenServer,
    authorization: str | None,
    *,
    module: str | None,
    known_modules: Container[str],
    operation: str,
) -> str | None:
    """The whole-request error code that stops this call, or None."""
    problem = token_problem(config, tokens, authorization)
    if problem is not None:
        return problem
    if module is not None and module not in known_modules:
        return "INVALID_MODULE"
    if not scope_allows(config.scopes, module or "", operation):
        return "OAUTH_SCOPE_MISMATCH"
    return None

"""The accounts server's token endpoint: `POST /oauth/v2/token` (refresh grant).

Parameters come from the query string and/or a form body (crm-api.md §2.1);
the form wins where both give one. Errors answer a body with an `error` key
and HTTP `token_error_status` (200 by default, as Zoho does). The rules on
minting live in `tokens.TokenServer`.
"""

from __future__ import annotations

from aiohttp import web

from syncengine.sim.responses import respond
from syncengine.sim.state import STATE_KEY


async def issue_token(request: web.Request) -> web.Response:
    """Mint an access token for the refresh-token grant, or refuse with an `error` body."""
    state = request.app[STATE_KEY]
    params = {key: str(value) for key, value in request.query.items()}
    if request.can_read_body:
        form = await request.post()
        params.update({key: str(value) for key, value in form.items()})
    grant = state.tokens.request(state.config, params, state.api_domain)
    if grant.minted:
        state.stats.token_mints += 1
        return respond(state, 200, grant.body)
    state.stats.token_refusals += 1
    return respond(state, state.config.token_error_status, grant.body)

"""No request follows a redirect: a real `syncengine run` against servers that answer 307.

Server A is the CRM the config names; it redirects to server B, which
records every request it gets. B must never see records, the client secret
or the refresh token, and nothing redirected may be journaled as synced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiohttp import web

from tests.integration.conftest import SECRET_ENV, run_cli, write_feed

TOKEN = {"access_token": "1000.redirect-test", "expires_in": 3600}


@dataclass
class Hits:
    """What a server received: (method, path, body) per request."""

    requests: list[tuple[str, str, bytes]] = field(default_factory=list)


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def elsewhere(hits: Hits) -> web.Application:
    """Server B: answers everything as a success, and remembers it."""

    async def anything(request: web.Request) -> web.Response:
        body = await request.read()
        hits.requests.append((request.method, request.path, body))
        if request.path.endswith("/token"):
            return web.json_response(TOKEN)
        ok = {"code": "SUCCESS", "status": "success", "message": "ok", "details": {"id": "1"}}
        return web.json_response({"data": [ok] * 100})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


def redirecting(target: str, *, token_redirects: bool, hits: Hits) -> web.Application:
    """Server A: a token endpoint (or a 307 to B) and a records endpoint that answers 307 to B."""

    async def token(request: web.Request) -> web.Response:
        hits.requests.append((request.method, request.path, await request.read()))
        if token_redirects:
            raise web.HTTPTemporaryRedirect(f"{target}/oauth/v2/token")
        return web.json_response(TOKEN)

    async def write(request: web.Request) -> web.Response:
        hits.requests.append((request.method, request.path, await request.read()))
        raise web.HTTPTemporaryRedirect(f"{target}/crm/v2/Leads")

    app = web.Application()
    app.router.add_post("/oauth/v2/token", token)
    app.router.add_put("/crm/v2/Leads", write)
    return app


def config(folder: Path, crm_url: str) -> Path:
    path = folder / "sync.toml"
    path.write_text(
        f"""
[source]
type = "jsonl"
path = "changes.jsonl"

[crm]
api_domain = "{crm_url}"
accounts_url = "{crm_url}"
client_id = "demo-client"
client_secret = "${{SE_TEST_SECRET}}"
refresh_token = "${{SE_TEST_REFRESH}}"

[limits]
concurrency = 2
max_attempts = 2
retry_base_s = 0.01
retry_cap_s = 0.05

[journal]
path = "journal.db"
""",
        encoding="utf-8",
    )
    write_feed(folder / "changes.jsonl", [{"id": str(n), "Company": f"C{n}"} for n in range(5)])
    return path


def leaked(hits: Hits) -> bool:
    """True when B saw a record or a secret."""
    secrets = [value.encode() for value in SECRET_ENV.values()]
    return any(b"Company" in body or any(s in body for s in secrets) for *_, body in hits.requests)


async def test_a_redirected_record_write_is_not_followed_and_never_synced(tmp_path: Path) -> None:
    at_b, at_a = Hits(), Hits()
    async with serve(elsewhere(at_b)) as b_url:
        app = redirecting(b_url, token_redirects=False, hits=at_a)
        async with serve(app) as a_url:
            path = config(tmp_path, a_url)
            result = await run_cli("run", "--config", str(path), cwd=tmp_path)
            failures = await run_cli("failures", "--config", str(path), "--json", cwd=tmp_path)
    assert at_b.requests == []
    assert not leaked(at_b)
    assert result.returncode == 1, result.stderr
    writes = [r for r in at_a.requests if r[1] == "/crm/v2/Leads"]
    assert len(writes) >= 2  # transient first, then failed after max_attempts
    rows = orjson.loads(failures.stdout)
    assert {row["code"] for row in rows} == {"REDIRECTED"}
    assert len(rows) == 5


async def test_a_redirected_token_call_is_fatal_and_posts_no_secret_elsewhere(
    tmp_path: Path,
) -> None:
    at_b, at_a = Hits(), Hits()
    async with serve(elsewhere(at_b)) as b_url:
        app = redirecting(b_url, token_redirects=True, hits=at_a)
        async with serve(app) as a_url:
            result = await run_cli("run", "--config", str(config(tmp_path, a_url)), cwd=tmp_path)
    assert at_b.requests == []
    assert result.returncode == 3, result.stderr
    assert "REDIRECTED" in result.stderr
    assert "demo-secret" not in result.stderr
    assert "Traceback" not in result.stderr

"""A minimal CRM sink for the overhead and memory benchmarks.

It answers the token endpoint and every records write with one SUCCESS per
record, doing as little as a server can, so that what the benchmarks measure
is the client side. Run it in its own process:

    python benchmarks/sink.py --port 8950
"""

from __future__ import annotations

import argparse

import orjson
from aiohttp import web

_OK = {
    "code": "SUCCESS",
    "status": "success",
    "message": "record updated",
}


async def token(request: web.Request) -> web.Response:
    # The org's data centre is this server: a client checks the token answer's
    # api_domain against the one it was configured with.
    answer = {
        "access_token": "sink-token",
        "api_domain": f"{request.scheme}://{request.host}",
        "token_type": "Bearer",
        "expires_in": 3600,
    }
    return web.Response(body=orjson.dumps(answer), content_type="application/json")


async def write(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    data = [{**_OK, "details": {"id": str(record.get("id", "1"))}} for record in body["data"]]
    return web.Response(body=orjson.dumps({"data": data}), content_type="application/json")


async def fields(request: web.Request) -> web.Response:
    # The simulator's built-in layout of the module, so a validating engine has rules to apply.
    from syncengine.sim.schema import field_metadata, load_schema

    module = load_schema().modules[request.query.get("module", "Leads")]
    body = orjson.dumps({"fields": field_metadata(module)})
    return web.Response(body=body, content_type="application/json")


def make_app() -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/oauth/v2/token", token)
    app.router.add_get("/crm/v2/settings/fields", fields)
    app.router.add_route("*", "/crm/v2/{module}", write)
    app.router.add_route("*", "/crm/v2/{module}/upsert", write)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8950)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()

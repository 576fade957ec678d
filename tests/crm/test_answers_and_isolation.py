"""Answers matched to the records they belong to, and poison blamed only on proof.

A small loopback CRM whose answers depend on the body it receives: the
shapes the simulator never gives (a body too large only together, answers
naming other records) are what these tests need.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiohttp import web

from syncengine.crm.client import WriteRequest
from syncengine.model import Operation, Verdict
from tests.crm.conftest import crm_stack

Answer = Callable[[list[dict[str, Any]]], web.Response]
TOKEN = {"access_token": "1000.fake", "expires_in": 3600}


@asynccontextmanager
async def crm(answer: Answer, bodies: list[list[dict[str, Any]]]) -> AsyncIterator[str]:
    """Token endpoint plus writes answered by `answer(records sent)`; `bodies` logs them."""

    async def token(request: web.Request) -> web.Response:
        return web.json_response(TOKEN)

    async def write(request: web.Request) -> web.Response:
        records = orjson.loads(await request.read())["data"]
        bodies.append(records)
        return answer(records)

    app = web.Application()
    app.router.add_post("/oauth/v2/token", token)
    app.router.add_put("/crm/v2/Leads", write)
    app.router.add_post("/crm/v2/Leads/upsert", write)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def success(record_id: str) -> dict[str, Any]:
    return {"code": "SUCCESS", "status": "success", "message": "ok", "details": {"id": record_id}}


def echo(records: list[dict[str, Any]]) -> web.Response:
    return web.json_response({"data": [success(str(r["id"])) for r in records]})


def too_large_over(limit: int) -> Answer:
    """413 for bodies of more than `limit` records; every record is fine on its own."""

    def answer(records: list[dict[str, Any]]) -> web.Response:
        if len(records) > limit:
            return web.json_response(
                {"code": "REQUEST_ENTITY_TOO_LARGE", "message": "too large", "status": "error"},
                status=413,
            )
        return echo(records)

    return answer


def updates(count: int) -> WriteRequest:
    return WriteRequest(
        "Leads", Operation.UPDATE, [{"id": str(100 + n), "Company": f"C{n}"} for n in range(count)]
    )


async def test_a_413_splits_smaller_and_blames_no_record() -> None:
    """No single record causes the 413: every record is answered, none rejected as poison."""
    bodies: list[list[dict[str, Any]]] = []
    async with crm(too_large_over(1), bodies) as url, crm_stack(url) as stack:
        outcomes = await stack.client.write(updates(4))
    assert [o.verdict for o in outcomes] == [Verdict.SYNCED] * 4
    assert [o.crm_id for o in outcomes] == ["100", "101", "102", "103"]
    sent_alone = {body[0]["id"] for body in bodies if len(body) == 1}
    assert sent_alone == {"100", "101", "102", "103"}


async def test_a_combination_refused_blames_no_record() -> None:
    """A 400 only for records 2 and 3 together: both are sent alone and synced."""
    bodies: list[list[dict[str, Any]]] = []

    def answer(records: list[dict[str, Any]]) -> web.Response:
        ids = {r["id"] for r in records}
        if {"102", "103"} <= ids:
            return web.json_response(
                {"code": "INVALID_DATA", "message": "bad", "status": "error"}, status=400
            )
        return echo(records)

    async with crm(answer, bodies) as url, crm_stack(url) as stack:
        outcomes = await stack.client.write(updates(4))
    assert [o.verdict for o in outcomes] == [Verdict.SYNCED] * 4


async def test_a_record_refused_alone_is_the_one_rejected() -> None:
    bodies: list[list[dict[str, Any]]] = []

    def answer(records: list[dict[str, Any]]) -> web.Response:
        if any(r["id"] == "105" for r in records):
            return web.json_response(
                {"code": "INVALID_DATA", "message": "bad", "status": "error"}, status=400
            )
        return echo(records)

    async with crm(answer, bodies) as url, crm_stack(url) as stack:
        outcomes = await stack.client.write(updates(8))
    verdicts = {str(100 + n): o.verdict for n, o in enumerate(outcomes)}
    assert verdicts.pop("105") is Verdict.REJECT
    assert set(verdicts.values()) == {Verdict.SYNCED}
    assert [{"id": "105", "Company": "C5"}] in bodies  # refused when sent alone


async def test_an_update_answer_naming_another_record_is_not_used() -> None:
    """Answers swapped between positions: unusable (retried), never two wrong successes."""
    bodies: list[list[dict[str, Any]]] = []

    def swapped(records: list[dict[str, Any]]) -> web.Response:
        return web.json_response({"data": [success(str(r["id"])) for r in reversed(records)]})

    async with crm(swapped, bodies) as url, crm_stack(url) as stack:
        outcomes = await stack.client.write(updates(2))
    assert [(o.verdict, o.code) for o in outcomes] == [(Verdict.RETRY, "BAD_RESPONSE")] * 2
    assert "names record 101" in outcomes[0].message


async def test_an_upsert_with_an_id_is_checked_and_one_without_is_not() -> None:
    bodies: list[list[dict[str, Any]]] = []

    def other_id(records: list[dict[str, Any]]) -> web.Response:
        return web.json_response({"data": [success("999") for _ in records]})

    with_id = WriteRequest("Leads", Operation.UPSERT, [{"id": "100", "Email": "a@x.com"}])
    without_id = WriteRequest("Leads", Operation.UPSERT, [{"Email": "a@x.com"}])
    async with crm(other_id, bodies) as url, crm_stack(url) as stack:
        [checked] = await stack.client.write(with_id)
        [unchecked] = await stack.client.write(without_id)
    assert (checked.verdict, checked.code) == (Verdict.RETRY, "BAD_RESPONSE")
    assert (unchecked.verdict, unchecked.crm_id) == (Verdict.SYNCED, "999")


async def test_an_error_naming_the_record_holding_a_duplicate_is_kept() -> None:
    """DUPLICATE_DATA on an update may name the other record: still this record's answer."""
    bodies: list[list[dict[str, Any]]] = []

    def duplicate(records: list[dict[str, Any]]) -> web.Response:
        element = {"code": "DUPLICATE_DATA", "status": "error", "message": "dup",
                   "details": {"api_name": "Email", "id": "777"}}  # fmt: skip
        return web.json_response({"data": [element]}, status=202)

    async with crm(duplicate, bodies) as url, crm_stack(url) as stack:
        [outcome] = await stack.client.write(updates(1))
    assert (outcome.verdict, outcome.code) == (Verdict.REJECT, "DUPLICATE_DATA")

"""Proxies: `[crm] proxy` and the standard variables, through a real proxy on loopback.

`CountingProxy` is a tiny HTTP proxy (CONNECT tunnels and absolute-form
forwarding) that counts the requests passing through it and keeps every byte
it relays, so a test can tell what a proxy could have read.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from syncengine.crm.auth import TokenProvider
from syncengine.crm.client import CrmClient, WriteRequest, make_session
from syncengine.crm.proxy import proxy_for
from syncengine.crm.token_store import MemoryTokenStore
from syncengine.limits import Limiter
from syncengine.model import Operation, Verdict
from syncengine.sim.server import running_simulator
from tests.crm.conftest import DEMO_CLIENT_ID, DEMO_REFRESH, DEMO_SECRET, seed
from tests.integration.conftest import (
    lead_updates,
    run_cli,
    seed_leads,
    sim_leads,
    write_config,
    write_feed,
)

REQUEST_LINE = re.compile(rb"(?:GET|POST|PUT|DELETE) http://[^ ]+ HTTP/1\.1\r\n")


@dataclass
class CountingProxy:
    """What went through the proxy."""

    url: str = ""
    connects: list[str] = field(default_factory=list)
    forwarded: int = 0
    authorizations: list[str] = field(default_factory=list)
    relayed: bytearray = field(default_factory=bytearray)

    @property
    def requests(self) -> int:
        return len(self.connects) + self.forwarded


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, proxy: CountingProxy,
                count: bool) -> None:  # fmt: skip
    try:
        while chunk := await reader.read(65536):
            proxy.relayed += chunk
            if count:
                proxy.forwarded += len(REQUEST_LINE.findall(chunk))
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def counting_proxy() -> AsyncIterator[CountingProxy]:
    proxy = CountingProxy()
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ")
        for line in header_lines:
            if line.lower().startswith("proxy-authorization:"):
                proxy.authorizations.append(line.split(":", 1)[1].strip())
        if method == "CONNECT":
            proxy.connects.append(target)
            host, port = target.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            count = False
        else:
            proxy.relayed += head
            proxy.forwarded += 1
            authority = target.split("/")[2]
            host, port = authority.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            up_writer.write(head)  # absolute-form: HTTP/1.1 servers must accept it
            count = True
        for task in (
            asyncio.create_task(_pipe(reader, up_writer, proxy, count)),
            asyncio.create_task(_pipe(up_reader, writer, proxy, False)),
        ):
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    proxy.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield proxy
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def write_through(
    base_url: str, *, proxy: str | None, environ: Mapping[str, str], ids: list[str]
) -> list[Verdict]:
    """Token plus one update of `ids`, the way a pass wires them; the verdicts."""
    session = make_session(concurrency=2, connect_timeout_s=5.0)
    try:
        tokens = TokenProvider(
            session=session, accounts_url=base_url, client_id=DEMO_CLIENT_ID,
            client_secret=DEMO_SECRET, refresh_token=DEMO_REFRESH, store=MemoryTokenStore(),
            proxy=proxy, environ=environ, transient_tries=1,
        )  # fmt: skip
        client = CrmClient(
            session=session, api_domain=base_url, tokens=tokens, limiter=Limiter(concurrency=2),
            total_timeout_s=10.0, proxy=proxy, environ=environ,
        )  # fmt: skip
        request = WriteRequest("Leads", Operation.UPDATE, [{"id": i, "Company": "P"} for i in ids])
        return [outcome.verdict for outcome in await client.write(request)]
    finally:
        await session.close()


async def test_the_configured_proxy_carries_token_and_records() -> None:
    async with running_simulator(admin=True) as sim, counting_proxy() as proxy:
        ids = await seed(sim.base_url, 3)
        verdicts = await write_through(sim.base_url, proxy=proxy.url, environ={}, ids=ids)
    assert verdicts == [Verdict.SYNCED] * 3
    assert proxy.forwarded == 2  # the token call and the write


async def test_proxy_credentials_go_in_a_header_not_the_url() -> None:
    async with running_simulator(admin=True) as sim, counting_proxy() as proxy:
        ids = await seed(sim.base_url, 1)
        with_user = proxy.url.replace("http://", "http://alice:s%40cret@")
        verdicts = await write_through(sim.base_url, proxy=with_user, environ={}, ids=ids)
    assert verdicts == [Verdict.SYNCED]
    assert proxy.authorizations == ["Basic YWxpY2U6c0BjcmV0"]  # alice:s@cret, first request
    assert proxy.relayed.count(b"Proxy-Authorization: Basic YWxpY2U6c0BjcmV0\r\n") == 2
    assert b"alice:" not in proxy.relayed


async def test_no_proxy_sends_a_host_direct_even_past_the_configured_proxy() -> None:
    async with running_simulator(admin=True) as sim, counting_proxy() as proxy:
        ids = await seed(sim.base_url, 2)
        environ = {"NO_PROXY": "localhost,127.0.0.1"}
        verdicts = await write_through(sim.base_url, proxy=proxy.url, environ=environ, ids=ids)
    assert verdicts == [Verdict.SYNCED] * 2
    assert proxy.requests == 0


async def test_an_environment_proxy_never_captures_loopback() -> None:
    async with running_simulator(admin=True) as sim, counting_proxy() as proxy:
        ids = await seed(sim.base_url, 2)
        environ = {"HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url}
        verdicts = await write_through(sim.base_url, proxy=None, environ=environ, ids=ids)
    assert verdicts == [Verdict.SYNCED] * 2
    assert proxy.requests == 0


def test_environment_proxies_apply_to_other_hosts_by_scheme_and_no_proxy() -> None:
    environ = {"HTTPS_PROXY": "http://corp:3128", "NO_PROXY": ".zohoapis.eu,10.1.2.3:443"}
    assert proxy_for("https://www.zohoapis.com", configured=None, environ=environ) == (
        "http://corp:3128"
    )
    assert proxy_for("https://www.zohoapis.eu", configured=None, environ=environ) is None
    assert proxy_for("https://10.1.2.3", configured=None, environ=environ) is None
    assert proxy_for("https://10.1.2.3:8443", configured=None, environ=environ) is not None
    assert proxy_for("https://www.zohoapis.com", configured=None, environ={}) is None
    lower = {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2"}
    assert proxy_for("https://x.com", configured=None, environ=lower) == "http://lower:1"


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no trust store holds, and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


async def test_https_goes_through_a_connect_tunnel_and_tls_is_still_verified(
    self_signed: tuple[Path, Path],
) -> None:
    """The proxy sees CONNECT and ciphertext only; a certificate nobody trusts is refused."""
    cert, key = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    hits: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"access_token": "1000.x", "expires_in": 3600})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    base_url = f"https://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with counting_proxy() as proxy:
            verdicts = await write_through(base_url, proxy=proxy.url, environ={}, ids=["1"])
    finally:
        await runner.cleanup()
    assert verdicts == [Verdict.RETRY]  # no token: the self-signed certificate was refused
    assert hits == []
    assert proxy.connects
    assert set(proxy.connects) == {base_url.removeprefix("https://")}
    assert DEMO_SECRET.encode() not in proxy.relayed
    assert DEMO_REFRESH.encode() not in proxy.relayed


async def test_a_run_goes_through_the_proxy_its_config_names(tmp_path: Path) -> None:
    """`[crm] proxy` reaches a real `syncengine run`: all its requests pass the proxy."""
    async with running_simulator(admin=True) as sim, counting_proxy() as proxy:
        await seed_leads(sim, 3)
        path = write_config(tmp_path, sim, extra=f'proxy = "{proxy.url}"')
        write_feed(tmp_path / "changes.jsonl", lead_updates(3))
        result = await run_cli("run", "--config", str(path), cwd=tmp_path)
        leads = await sim_leads(sim)
    assert result.returncode == 0, result.stderr
    assert proxy.forwarded >= 2  # token and write
    assert {lead["fields"]["Company"] for lead in leads.values()} >= {"Company 0 v1"}

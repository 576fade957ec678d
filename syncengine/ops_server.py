"""The daemon's operations endpoints: metrics, liveness and readiness on loopback.

Runs beside the pipeline on the daemon's own event loop, so a scrape reads
the engine's counters without locks. It only reads: nothing here changes the
engine, and a failing endpoint never stops a sync.

* `GET /metrics`: Prometheus text format rendered by prometheus_client from
  `metrics.build_registry(view)`.
* `GET /healthz`: 200 `{"status": "ok"}` while the process serves requests
  and `check_live` finds nothing stuck; 503 `{"status": "stalled", "reason":
  ...}` when it does (a group commit the journal has not made for half its
  deadline), so a probe can tell a hung pass from a working one.
* `GET /readyz`: 200 when every readiness check passes, else 503; the body
  names each check and why it failed: `{"ready": false, "checks": {"token":
  "refresh refused", "source": null}}`. A check that raises or exceeds its
  timeout fails with a reason naming only the exception type or the timeout,
  never the exception text (it may hold a DSN or a token). `gather_checks`
  bounds each named check; `serve_ops` bounds the whole call, reported as
  `check_ready` when it fails. `SharedCheck` makes readiness cheap to ask
  for: one check at a time, its answer kept for a few seconds, so a burst of
  probes (or a hostile client) costs the source one connection, not one each.
  A daemon on a PostgreSQL journal (failover) adds `"role": "active"` or
  `"role": "standby"` to the body; a standby answers 503 with the check
  `lease` naming why it waits.

Binds 127.0.0.1 by default: the endpoints have no authentication.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from syncengine.metrics import EngineView, build_registry

__all__ = [
    "DEFAULT_CHECK_TIMEOUT_S",
    "DEFAULT_READY_TIMEOUT_S",
    "READY_CACHE_S",
    "READY_CHECK_NAME",
    "CheckLive",
    "CheckReady",
    "OpsServer",
    "SharedCheck",
    "gather_checks",
    "make_app",
    "serve_ops",
]

log = structlog.get_logger("syncengine.ops")

#: Bound on one named check (`gather_checks`): far above a healthy token or
#: database round trip, so only a stuck dependency reaches it.
DEFAULT_CHECK_TIMEOUT_S = 2.0

#: Bound on the whole `check_ready` call. Above `DEFAULT_CHECK_TIMEOUT_S` so
#: that a slow check is reported under its own name, not this catch-all one;
#: set the probe's own timeout above it (systemd, Kubernetes `timeoutSeconds`).
DEFAULT_READY_TIMEOUT_S = 3.0

#: Check name → None when fine, else a short reason (never a secret).
CheckReady = Callable[[], Awaitable[dict[str, str | None]]]

#: None while nothing is stuck, else a short reason (never a secret); must not block.
CheckLive = Callable[[], str | None]

#: How long a readiness answer is served again before the checks run anew:
#: short beside any probe period worth having, long enough that a burst of
#: requests reaches the source once.
READY_CACHE_S = 5.0

#: Name under which a failure of the whole `check_ready` callable is reported.
READY_CHECK_NAME = "check_ready"

_REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("registry", CollectorRegistry)
_CHECK_READY: web.AppKey[CheckReady] = web.AppKey("check_ready")
_TIMEOUT_S: web.AppKey[float] = web.AppKey("ready_timeout_s", float)
_CHECK_LIVE: web.AppKey[CheckLive] = web.AppKey("check_live")
_ROLE: web.AppKey[str] = web.AppKey("role", str)


@dataclass(frozen=True, slots=True)
class OpsServer:
    """A running ops server: where it listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash (`http://127.0.0.1:9464`, `http://[::1]:9464`)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def failure_reason(error: BaseException, timeout_s: float) -> str:
    """A reason safe to show: the timeout or the exception type, never its text."""
    if isinstance(error, TimeoutError):
        return f"timed out after {timeout_s:g} s"
    return f"raised {type(error).__name__}"


async def run_check(
    name: str, check: Callable[[], Awaitable[str | None]], *, timeout_s: float
) -> str | None:
    """Run one check within `timeout_s`; a raise or a timeout becomes its reason."""
    try:
        async with asyncio.timeout(timeout_s):
            return await check()
    except Exception as error:  # noqa: BLE001 - any failure of a check means "not ready"
        reason = failure_reason(error, timeout_s)
        log.warning("ops.ready_check_failed", check=name, reason=reason)
        return reason


def gather_checks(
    checks: Mapping[str, Callable[[], Awaitable[str | None]]],
    *,
    timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
) -> CheckReady:
    """One `check_ready` from named checks, run concurrently, each within `timeout_s`.

    Each check returns None when fine, else a short reason. A check that
    raises or is slow is reported under its own name, so `/readyz` says which
    dependency is down.
    """
    named = dict(checks)

    async def check_ready() -> dict[str, str | None]:
        reasons = await asyncio.gather(
            *(run_check(name, check, timeout_s=timeout_s) for name, check in named.items())
        )
        return dict(zip(named, reasons, strict=True))

    return check_ready


class SharedCheck:
    """A `check_ready` run at most once at a time, its answer kept for `cache_s`.

    Callers that arrive while a check is in flight await that same check;
    callers within `cache_s` of its end get its answer (or its exception)
    without running it. The check runs in a task of its own, shielded, so a
    caller that times out or disconnects does not cancel it for the others;
    `timeout_s` bounds it, so a stuck dependency cannot hold every later
    caller. `clock` is monotonic seconds, injectable for tests.
    """

    def __init__(
        self,
        check: CheckReady,
        *,
        cache_s: float = READY_CACHE_S,
        timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._cache_s = cache_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._current: asyncio.Task[dict[str, str | None]] | None = None
        self._finished_at = 0.0

    async def __call__(self) -> dict[str, str | None]:
        """The answer of the check in flight or of the last one, if fresh; else a new check."""
        task = self._current
        stale = task is None or (task.done() and self._clock() - self._finished_at >= self._cache_s)
        if stale:
            task = self._current = asyncio.create_task(self._run())
            # Its exception is read here too, so a check every caller gave up on is not
            # reported as "never retrieved".
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
        assert task is not None
        return dict(await asyncio.shield(task))

    async def _run(self) -> dict[str, str | None]:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._check()
        finally:
            self._finished_at = self._clock()


async def _metrics(request: web.Request) -> web.Response:
    """Render the registry now (the collector reads the engine at this moment)."""
    body = generate_latest(request.app[_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(request: web.Request) -> web.Response:
    """Answering is the liveness signal, unless the live check names something stuck."""
    reason = request.app[_CHECK_LIVE]()
    if reason is not None:
        return web.json_response({"status": "stalled", "reason": reason}, status=503)
    return web.json_response({"status": "ok"})


def _always_live() -> str | None:
    return None


async def _readyz(request: web.Request) -> web.Response:
    """200 when every check is None; 503 with the reasons otherwise."""
    timeout_s = request.app[_TIMEOUT_S]
    check_ready = request.app[_CHECK_READY]
    checks = await run_whole_check(check_ready, timeout_s=timeout_s)
    ready = all(reason is None for reason in checks.values())
    status = 200 if ready else 503
    body: dict[str, object] = {"ready": ready, "checks": checks}
    role = request.app.get(_ROLE)
    if role is not None:
        body["role"] = role
    return web.json_response(body, status=status)


async def run_whole_check(check_ready: CheckReady, *, timeout_s: float) -> dict[str, str | None]:
    """The checks' answers, or one failed entry when the callable itself raises or stalls."""
    try:
        async with asyncio.timeout(timeout_s):
            return dict(await check_ready())
    except Exception as error:  # noqa: BLE001 - any failure of a check means "not ready"
        reason = failure_reason(error, timeout_s)
        log.warning("ops.ready_check_failed", check=READY_CHECK_NAME, reason=reason)
        return {READY_CHECK_NAME: reason}


def make_app(
    *,
    view: EngineView,
    check_ready: CheckReady,
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
    check_live: CheckLive = _always_live,
    role: str | None = None,
) -> web.Application:
    """The ops application, unstarted (for embedding or for aiohttp's test tools).

    `role` ("active", "standby"), when given, is part of every `/readyz` answer.
    """
    app = web.Application()
    if role is not None:
        app[_ROLE] = role
    app[_CHECK_LIVE] = check_live
    app[_REGISTRY] = build_registry(view)
    app[_CHECK_READY] = check_ready
    app[_TIMEOUT_S] = ready_timeout_s
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app


@asynccontextmanager
async def serve_ops(
    *,
    port: int,
    view: EngineView,
    check_ready: CheckReady,
    host: str = "127.0.0.1",
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
    check_live: CheckLive = _always_live,
    role: str | None = None,
) -> AsyncIterator[OpsServer]:
    """Serve the ops endpoints on `host:port` while the body runs.

    `port` 0 picks a free port; the handle tells which. Raises OSError when
    the port is taken. On exit the listener closes and open requests are
    given a short moment to finish; safe to cancel.
    """
    app = make_app(
        view=view,
        check_ready=check_ready,
        ready_timeout_s=ready_timeout_s,
        check_live=check_live,
        role=role,
    )
    # Scrapes every few seconds for months: no access log line per request.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = _bound_port(runner)
        log.info("ops.listening", host=host, port=bound_port)
        yield OpsServer(host=host, port=bound_port)
    finally:
        await runner.cleanup()
        log.info("ops.stopped")


def _bound_port(runner: web.AppRunner) -> int:
    """The port the (single) listener got; differs from the request when it was 0."""
    address = runner.addresses[0]
    port = address[1]
    assert isinstance(port, int), "TCP sockets have integer ports"
    return port

"""The one HTTP session per engine, and how it counts aiohttp's hidden resends.

aiohttp's client resends an idempotent request (PUT: our bulk update) once,
silently, when a kept-alive connection drops before an answer arrives
(`ClientSession._retry_connection`, RFC 9112 §9.3.1). We turn that off in the
sessions we build, deliberately:

* a dropped connection may have been dropped *after* the CRM applied the
  update; resending it hides an unknown outcome, costs credits and a
  concurrency slot outside the limiter's view, and re-applies
  `$append_values`, which is not idempotent by intent (crm-api.md §4);
* the engine already resends with backoff and counts the attempt per record,
  which keeps `max_attempts` and the journal truthful.

The price is one record attempt when a stale pooled connection is reused; the
pool's keep-alive (15 s) stays short of usual server idle timeouts to make that
rare. In a session that does resend (built elsewhere, or with
`retry_dropped_puts`), `send_trace_config` lets `SendTrace` count connections
taken per logical request, so a resend is still counted.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import aiohttp

#: Pooled connections are dropped after this many idle seconds.
KEEPALIVE_TIMEOUT_S = 15.0


class SendTrace:
    """Per-request trace context: how many connections the request took (1 = no resend)."""

    __slots__ = ("connections",)

    def __init__(self) -> None:
        self.connections = 0

    @property
    def resends(self) -> int:
        """Times the request was sent again by aiohttp on another connection."""
        return max(0, self.connections - 1)


async def _on_connection(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
) -> None:
    """Trace hook: one more connection was taken for the request."""
    trace = getattr(context, "trace_request_ctx", None)
    if isinstance(trace, SendTrace):
        trace.connections += 1


def send_trace_config() -> aiohttp.TraceConfig:
    """A trace config that feeds `SendTrace` contexts passed as `trace_request_ctx`."""
    config = aiohttp.TraceConfig()
    config.on_connection_create_end.append(_on_connection)
    config.on_connection_reuseconn.append(_on_connection)
    return config


def make_session(
    *, concurrency: int, connect_timeout_s: float, retry_dropped_puts: bool = False
) -> aiohttp.ClientSession:
    """The engine's session: a pool of `concurrency` + 1 connections (one spare for tokens).

    Connect timeout from config; the total timeout is set per request by the
    client. `retry_dropped_puts=False` turns off aiohttp's silent resend (see
    the module docstring). Must be called inside a running event loop; the
    caller closes it.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    connector = aiohttp.TCPConnector(
        limit=concurrency + 1,
        limit_per_host=concurrency + 1,
        keepalive_timeout=KEEPALIVE_TIMEOUT_S,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, connect=connect_timeout_s),
        # Tracing costs every request a round of signals; it is only worth it
        # where aiohttp may resend.
        trace_configs=[send_trace_config()] if retry_dropped_puts else None,
        raise_for_status=False,
    )
    # No public switch exists; `_retry_connection` is a declared session attribute.
    session._retry_connection = retry_dropped_puts
    return session

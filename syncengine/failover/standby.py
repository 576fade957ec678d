"""What a standby daemon shows while it waits for the lease.

A standby has no engine, so its metrics are zeros and its `/readyz` is 503
with `"role": "standby"` and the check `lease` saying why: a monitor tells
the active daemon from the waiting ones, and a load balancer or Kubernetes
Service never counts a standby as ready. `/healthz` is 200: a waiting
standby is healthy.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

import structlog

from syncengine.ops_server import serve_ops

log = structlog.get_logger("syncengine.failover")

#: The `lease` check's reason on a standby.
STANDBY_REASON = "standby: another daemon holds this journal's lease"


class StandbyView:
    """The metrics of a daemon that is not syncing: nothing read, sent or in flight."""

    records_by_outcome: Mapping[str, int] = {
        "synced": 0,
        "failed": 0,
        "retry_scheduled": 0,
        "bad_input": 0,
    }
    requests_by_status_code: Mapping[tuple[str, str], int] = {}
    requests_in_flight = 0
    concurrency_limit = 0
    queue_depth = 0
    token_refreshes = 0
    throttled = 0
    credits_remaining: int | None = None
    sync_lag_s = 0.0
    credits_spent = 0
    credits_saved: Mapping[str, float] = {
        "coalescing": 0.0,
        "skip_unchanged": 0.0,
        "validation": 0.0,
    }


async def standby_checks() -> dict[str, str | None]:
    """A standby's readiness: not ready, because it is not the active daemon."""
    return {"lease": STANDBY_REASON}


@contextlib.asynccontextmanager
async def standby_ops(port: int | None) -> AsyncIterator[None]:
    """The ops endpoints of a standby on `port` (nothing when None) while the body runs."""
    if port is None:
        yield
        return
    async with serve_ops(
        port=port, view=StandbyView(), check_ready=standby_checks, role="standby"
    ) as server:
        log.info("failover.standby_ops_listening", url=server.url)
        yield

"""The daemon's Prometheus metrics, read from the running engine at scrape time.

Sits beside the pipeline, not in it: the engine, client, limiter and token
provider keep the plain counters they already keep, and the daemon hands a
read-only `EngineView` over them to `build_registry`. Each scrape reads the
view once and renders it with prometheus_client, so the hot path pays nothing
per record or request. The view is read on the event loop that serves
`/metrics` (the daemon's own loop), so it needs no locks.

Metric names, types and labels are a user contract (dashboards and alerts
are built on them; the README lists them): rename nothing without a note.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = ["HELP", "OUTCOMES", "EngineCollector", "EngineView", "build_registry"]

#: Record outcomes always exported (at 0 until seen), so `rate()` and
#: `increase()` see every series from the first scrape on.
OUTCOMES = ("synced", "failed", "retry_scheduled", "bad_input")


class EngineView(Protocol):
    """What a running daemon shows its metrics; every member is read at scrape time.

    Counters (`records_by_outcome`, `requests_by_status_code`,
    `token_refreshes`, `throttled`) only grow for the life of the process.
    Plain attributes satisfy the protocol as well as properties do.
    """

    @property
    def records_by_outcome(self) -> Mapping[str, int]:
        """Records settled by outcome: synced, failed, retry_scheduled, bad_input."""
        ...

    @property
    def requests_by_status_code(self) -> Mapping[tuple[str, str], int]:
        """Records-API requests by (HTTP status, code); status "0" when no answer came."""
        ...

    @property
    def requests_in_flight(self) -> int:
        """Records-API requests sent and not yet answered."""
        ...

    @property
    def concurrency_limit(self) -> int:
        """The limiter's current (adaptive) concurrency limit."""
        ...

    @property
    def queue_depth(self) -> int:
        """Changes read from the feed and not yet sent."""
        ...

    @property
    def token_refreshes(self) -> int:
        """Access tokens minted at the accounts server."""
        ...

    @property
    def throttled(self) -> int:
        """429 answers from the CRM."""
        ...

    @property
    def credits_remaining(self) -> int | None:
        """Last `X-API-CREDITS-REMAINING` the CRM sent; None while unknown."""
        ...

    @property
    def sync_lag_s(self) -> float:
        """Age in seconds of the oldest change not yet synced; 0 when nothing waits."""
        ...

    @property
    def credits_spent(self) -> int:
        """API credits the CRM's answers cost, by the config's cost model."""
        ...

    @property
    def credits_saved(self) -> Mapping[str, float]:
        """Credits not spent, by cause: coalescing, skip_unchanged, validation."""
        ...


#: Help text of every metric, by family name (the `_total` suffix is added on output).
HELP = {
    "syncengine_records": "Records settled, by outcome.",
    "syncengine_requests": "Records-API requests by HTTP status and code (status 0: no answer).",
    "syncengine_requests_in_flight": "Records-API requests sent and not yet answered.",
    "syncengine_concurrency_limit": "Current adaptive limit on requests in flight.",
    "syncengine_queue_depth": "Changes read from the feed and not yet sent.",
    "syncengine_token_refreshes": "Access tokens minted at the accounts server.",
    "syncengine_throttled": "429 (too many requests) answers from the CRM.",
    "syncengine_credits_remaining": (
        "Last X-API-CREDITS-REMAINING sent by the CRM (absent while unknown)."
    ),
    "syncengine_sync_lag_seconds": "Age of the oldest unsynced change (0 when nothing waits).",
    "syncengine_credits_spent": "API credits spent, by the config's cost model.",
    "syncengine_credits_saved": "API credits not spent, by cause (records never sent).",
}

#: Causes of saved credits, always exported (at 0 until seen).
SAVINGS = ("coalescing", "skip_unchanged", "validation")

_COUNTERS = {
    "syncengine_credits_spent",
    "syncengine_credits_saved",
    "syncengine_records",
    "syncengine_requests",
    "syncengine_token_refreshes",
    "syncengine_throttled",
}


class EngineCollector:
    """A prometheus_client custom collector over an `EngineView`."""

    def __init__(self, view: EngineView) -> None:
        self._view = view

    def describe(self) -> Iterator[Metric]:
        """Every family this collector may yield (the registry checks names for clashes)."""
        yield _records({})
        yield _requests({})
        for name in ("syncengine_token_refreshes", "syncengine_throttled"):
            yield _counter(name, 0)
        yield _counter("syncengine_credits_spent", 0)
        yield _saved({})
        for name in HELP.keys() - _COUNTERS:
            yield _gauge(name, 0)

    def collect(self) -> Iterator[Metric]:
        """A reading of the view, taken now; credits are left out while unknown."""
        view = self._view
        yield _records(view.records_by_outcome)
        yield _requests(view.requests_by_status_code)
        yield _gauge("syncengine_requests_in_flight", view.requests_in_flight)
        yield _gauge("syncengine_concurrency_limit", view.concurrency_limit)
        yield _gauge("syncengine_queue_depth", view.queue_depth)
        yield _counter("syncengine_token_refreshes", view.token_refreshes)
        yield _counter("syncengine_throttled", view.throttled)
        remaining = view.credits_remaining
        if remaining is not None:
            yield _gauge("syncengine_credits_remaining", remaining)
        yield _gauge("syncengine_sync_lag_seconds", max(0.0, view.sync_lag_s))
        yield _counter("syncengine_credits_spent", view.credits_spent)
        yield _saved(view.credits_saved)


def _saved(by_cause: Mapping[str, float]) -> CounterMetricFamily:
    family = CounterMetricFamily(
        "syncengine_credits_saved", HELP["syncengine_credits_saved"], labels=["by"]
    )
    for cause in SAVINGS:
        family.add_metric([cause], by_cause.get(cause, 0.0))
    return family


def _gauge(name: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, HELP[name], value=value)


def _counter(name: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, HELP[name], value=value)


def _records(by_outcome: Mapping[str, int]) -> CounterMetricFamily:
    """Every known outcome, at 0 until seen, plus any other the view reports."""
    family = CounterMetricFamily(
        "syncengine_records", HELP["syncengine_records"], labels=["outcome"]
    )
    outcomes = dict.fromkeys(OUTCOMES, 0)
    outcomes.update(by_outcome)
    for outcome, count in sorted(outcomes.items()):
        family.add_metric([outcome], count)
    return family


def _requests(by_status_code: Mapping[tuple[str, str], int]) -> CounterMetricFamily:
    family = CounterMetricFamily(
        "syncengine_requests", HELP["syncengine_requests"], labels=["status", "code"]
    )
    for (status, code), count in sorted(by_status_code.items()):
        family.add_metric([status, code], count)
    return family


def build_registry(view: EngineView, *, process_metrics: bool = True) -> CollectorRegistry:
    """A registry holding the engine's metrics, private to this daemon.

    A fresh registry rather than prometheus_client's global one, so tests and
    several engines in one process never clash. `process_metrics` adds the
    library's process and platform collectors (memory, CPU, open files, start
    time, Python version): a months-long daemon is watched for leaks too.
    """
    registry = CollectorRegistry()
    registry.register(EngineCollector(view))
    if process_metrics:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry

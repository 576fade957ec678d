"""The metrics collector: names, labels and values read from an engine view at scrape time."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from syncengine.metrics import HELP, OUTCOMES, EngineView, build_registry


@dataclass
class FakeView:
    """A daemon's view with values the test sets directly."""

    records_by_outcome: dict[str, int] = field(default_factory=dict)
    requests_by_status_code: dict[tuple[str, str], int] = field(default_factory=dict)
    requests_in_flight: int = 0
    concurrency_limit: int = 1
    queue_depth: int = 0
    token_refreshes: int = 0
    throttled: int = 0
    credits_remaining: int | None = None
    sync_lag_s: float = 0.0
    credits_spent: int = 0
    credits_saved: dict[str, float] = field(default_factory=dict)


def scrape(registry: CollectorRegistry) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name → (sorted labels → value), parsed back from the rendered text."""
    text = generate_latest(registry).decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def test_fake_view_satisfies_protocol() -> None:
    """A plain class with attributes is an EngineView (mypy checks this assignment)."""
    view: EngineView = FakeView()
    assert view.credits_remaining is None


def test_every_value_is_exported_under_its_name() -> None:
    """Each view member appears under its documented metric name with its value."""
    view = FakeView(
        records_by_outcome={"synced": 90, "failed": 3, "retry_scheduled": 5, "bad_input": 2},
        requests_by_status_code={("200", "SUCCESS"): 7, ("429", "TOO_MANY_REQUESTS"): 2},
        requests_in_flight=4,
        concurrency_limit=6,
        queue_depth=250,
        token_refreshes=2,
        throttled=2,
        credits_remaining=4321,
        sync_lag_s=12.5,
    )
    samples = scrape(build_registry(view, process_metrics=False))
    assert samples["syncengine_records_total"] == {
        (("outcome", "synced"),): 90,
        (("outcome", "failed"),): 3,
        (("outcome", "retry_scheduled"),): 5,
        (("outcome", "bad_input"),): 2,
    }
    assert samples["syncengine_requests_total"] == {
        (("code", "SUCCESS"), ("status", "200")): 7,
        (("code", "TOO_MANY_REQUESTS"), ("status", "429")): 2,
    }
    assert samples["syncengine_requests_in_flight"] == {(): 4}
    assert samples["syncengine_concurrency_limit"] == {(): 6}
    assert samples["syncengine_queue_depth"] == {(): 250}
    assert samples["syncengine_token_refreshes_total"] == {(): 2}
    assert samples["syncengine_throttled_total"] == {(): 2}
    assert samples["syncengine_credits_remaining"] == {(): 4321}
    assert samples["syncengine_sync_lag_seconds"] == {(): 12.5}


def test_types_and_help_texts() -> None:
    """Counters are typed counter, gauges gauge, and every family has its help text."""
    view = FakeView(credits_remaining=10)
    text = generate_latest(build_registry(view, process_metrics=False)).decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    counters = {"syncengine_records", "syncengine_requests"}
    counters |= {"syncengine_token_refreshes", "syncengine_throttled"}
    counters |= {"syncengine_credits_spent", "syncengine_credits_saved"}
    assert set(families) == set(HELP)
    for name, family in families.items():
        assert family.type == ("counter" if name in counters else "gauge"), name
        assert family.documentation == HELP[name]


def test_outcomes_start_at_zero() -> None:
    """All four outcomes are exported at 0 before any record settles, so rate() sees them."""
    samples = scrape(build_registry(FakeView(), process_metrics=False))
    assert samples["syncengine_records_total"] == {
        (("outcome", outcome),): 0 for outcome in OUTCOMES
    }


def test_no_answer_is_status_zero() -> None:
    """A timeout (status "0") is a series of its own beside answered requests."""
    view = FakeView(requests_by_status_code={("0", "TIMEOUT"): 3, ("200", "SUCCESS"): 1})
    samples = scrape(build_registry(view, process_metrics=False))
    assert samples["syncengine_requests_total"][(("code", "TIMEOUT"), ("status", "0"))] == 3


def test_credits_omitted_while_unknown() -> None:
    """No credits series until the CRM has sent the header, then its value."""
    view = FakeView()
    registry = build_registry(view, process_metrics=False)
    assert "syncengine_credits_remaining" not in scrape(registry)
    view.credits_remaining = 0
    assert scrape(registry)["syncengine_credits_remaining"] == {(): 0}


def test_values_are_read_at_each_scrape() -> None:
    """A change to the view shows up at the next scrape of the same registry."""
    view = FakeView(records_by_outcome={"synced": 1}, queue_depth=5, sync_lag_s=3.0)
    registry = build_registry(view, process_metrics=False)
    assert scrape(registry)["syncengine_records_total"][(("outcome", "synced"),)] == 1
    view.records_by_outcome["synced"] = 40
    view.requests_by_status_code[("500", "INTERNAL_ERROR")] = 1
    view.queue_depth = 0
    view.sync_lag_s = 0.0
    samples = scrape(registry)
    assert samples["syncengine_records_total"][(("outcome", "synced"),)] == 40
    assert samples["syncengine_requests_total"] == {
        (("code", "INTERNAL_ERROR"), ("status", "500")): 1
    }
    assert samples["syncengine_queue_depth"] == {(): 0}
    assert samples["syncengine_sync_lag_seconds"] == {(): 0}


def test_negative_lag_is_clamped() -> None:
    """A lag computed across a clock step backwards is exported as 0, not negative."""
    samples = scrape(build_registry(FakeView(sync_lag_s=-2.0), process_metrics=False))
    assert samples["syncengine_sync_lag_seconds"] == {(): 0}


@pytest.mark.parametrize("process_metrics", [True, False])
def test_process_metrics_optional(process_metrics: bool) -> None:
    """Process memory metrics come with the registry unless turned off."""
    samples = scrape(build_registry(FakeView(), process_metrics=process_metrics))
    assert ("process_resident_memory_bytes" in samples) is process_metrics
    assert "syncengine_queue_depth" in samples


def test_registries_are_private() -> None:
    """Two registries for two views never clash and each shows its own view."""
    first = build_registry(FakeView(queue_depth=1))
    second = build_registry(FakeView(queue_depth=2))
    assert scrape(first)["syncengine_queue_depth"] == {(): 1}
    assert scrape(second)["syncengine_queue_depth"] == {(): 2}


def test_credits_spent_and_saved_by_cause_are_counters() -> None:
    """Spent is one counter; saved has a series per cause, at 0 until seen."""
    view = FakeView(credits_spent=120, credits_saved={"skip_unchanged": 95.5})
    samples = scrape(build_registry(view, process_metrics=False))
    assert samples["syncengine_credits_spent_total"] == {(): 120.0}
    assert samples["syncengine_credits_saved_total"] == {
        (("by", "coalescing"),): 0.0,
        (("by", "skip_unchanged"),): 95.5,
        (("by", "validation"),): 0.0,
    }

"""The report's pure parts: `--since`, advice per code, merging long timelines."""

from __future__ import annotations

import pytest

from syncengine.errors import ConfigError
from syncengine.journal.timeline import TimelineRow
from syncengine.report_data import advice_for, parse_since
from syncengine.report_page import merge_spans


def test_since_takes_spans_and_dates() -> None:
    assert parse_since("90m", now=10_000.0) == 10_000.0 - 5400
    assert parse_since("2d", now=200_000.0) == 200_000.0 - 172_800
    assert parse_since("1970-01-02", now=0.0) == 86_400.0
    with pytest.raises(ConfigError, match="--since 'soon'"):
        parse_since("soon", now=0.0)


def test_advice_names_the_way_out_per_class() -> None:
    assert "feed" in advice_for("BAD_INPUT")
    assert "source" in advice_for("MANDATORY_NOT_FOUND")
    assert "credentials" in advice_for("OAUTH_SCOPE_MISMATCH")
    assert "retry --code TIMEOUT" in advice_for("TIMEOUT")


def test_long_timelines_are_merged_keeping_totals() -> None:
    rows = [
        TimelineRow(float(i), 5.0, 10, 10, 1, 0, 2, 0, 3.0, 8, 0, float(i), None)
        for i in range(10_000)
    ]
    merged = merge_spans(rows, max_points=1000)
    assert len(merged) == 1000
    assert sum(row.synced for row in merged) == 100_000
    assert sum(row.span_s for row in merged) == 50_000.0
    assert merged[-1].sync_lag_s == 9_999.0
    assert merged[0].in_flight == 3.0

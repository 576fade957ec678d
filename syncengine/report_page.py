"""Renders `ReportData` as one self-contained HTML page: tables and inline SVG plots.

Plots are drawn by matplotlib (the optional `report` extra) as SVG written
into the page, text kept as text: the file opens anywhere, offline, with no
JavaScript, fonts or CDN, and stays small. Long timelines are merged into at
most `MAX_POINTS` spans per run before drawing, so a report of months of a
daemon's life stays a few megabytes and renders in seconds.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from syncengine.journal.records import RunRow
from syncengine.journal.timeline import TimelineRow
from syncengine.report_data import ReportData

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Most spans drawn per run and plot.
MAX_POINTS = 1500

#: Each row is drawn held over its span: a one-row run is a segment, not an invisible dot.
_STEP: dict[str, Any] = {"drawstyle": "steps-pre"}

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.n{text-align:right}
.plot svg{max-width:100%;height:auto}.note{color:#666}code{background:#f4f4f4;padding:0 .2em}
"""


def render(data: ReportData) -> str:
    """The whole page."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>syncengine report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>syncengine report</h1>",
        f'<p class="note">Journal {_e(data.journal_path)}, written {_when(data.generated_at)}.</p>',
        "<h2>Runs</h2>",
        _runs_table(data.runs),
        "<h2>Over time</h2>",
        _plots(data),
        "<h2>Failed records</h2>",
        _failures(data),
        "</body></html>",
    ]
    return "\n".join(parts)


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _when(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "-"
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_EXIT_MEANING = {0: "ok", 1: "some failed", 2: "usage", 3: "fatal", 4: "locked", 130: "stopped"}


def _runs_table(runs: Sequence[RunRow]) -> str:
    if not runs:
        return "<p>No runs recorded in this journal yet.</p>"
    head = (
        "<tr><th>Run</th><th>Command</th><th>Start</th><th>End</th><th>Exit status</th>"
        "<th>Read</th><th>Synced</th><th>Failed</th><th>Bad input</th><th>Retries</th>"
        "<th>Records/s</th></tr>"
    )
    rows = []
    for run in runs:
        counts = run.counts or {}
        status = (
            "unfinished (killed?)"
            if run.exit_status is None
            else f"{run.exit_status} ({_EXIT_MEANING.get(run.exit_status, '?')})"
        )
        elapsed = None if run.finished_at is None else run.finished_at - run.started_at
        rate = f"{counts.get('synced', 0) / elapsed:,.1f}" if elapsed and elapsed > 0 else "-"
        cells = [
            f"<td>{run.run_id}</td><td>{_e(run.command)}</td>",
            f"<td>{_when(run.started_at)}</td><td>{_when(run.finished_at)}</td><td>{status}</td>",
            *(
                f'<td class="n">{counts.get(key, 0):,}</td>' if counts else "<td>-</td>"
                for key in ("read", "synced", "failed", "bad_input", "retries_scheduled")
            ),
            f'<td class="n">{rate}</td>',
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "<table>" + head + "".join(rows) + "</table>"


def merge_spans(rows: Sequence[TimelineRow], max_points: int = MAX_POINTS) -> list[TimelineRow]:
    """At most `max_points` rows: neighbours merged as the journal thins them (pure)."""
    if len(rows) <= max_points:
        return list(rows)
    size = -(-len(rows) // max_points)
    merged = []
    for start in range(0, len(rows), size):
        group = rows[start : start + size]
        span = sum(row.span_s for row in group)
        last = group[-1]
        merged.append(
            TimelineRow(
                t=last.t,
                span_s=span,
                read=sum(row.read for row in group),
                synced=sum(row.synced for row in group),
                failed=sum(row.failed for row in group),
                retried=sum(row.retried for row in group),
                requests=sum(row.requests for row in group),
                throttled=sum(row.throttled for row in group),
                in_flight=sum(row.in_flight * row.span_s for row in group) / max(span, 1e-9),
                limit=max(row.limit for row in group),
                queue_depth=last.queue_depth,
                sync_lag_s=max(row.sync_lag_s for row in group),
                credits=last.credits,
            )
        )
    return merged


def _plots(data: ReportData) -> str:
    series = {run_id: merge_spans(rows) for run_id, rows in data.timelines.items() if rows}
    if not series:
        return "<p>No timeline recorded for these runs (runs older than 90 days have none).</p>"
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        return (
            '<p class="note">Plots need matplotlib: '
            "<code>pip install 'syncengine[report]'</code>.</p>"
        )
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable
    matplotlib.rcParams["svg.hashsalt"] = "syncengine"  # the same data draws the same page
    figures = [
        ("Records per second", _rates),
        ("Latency, and requests in flight against the concurrency limit", _latency),
        ("429 answers and retries scheduled, per minute", _throttling),
        ("Sync lag and queue depth", _lag),
    ]
    out = []
    for title, draw in figures:
        figure = Figure(figsize=(10, 3.2), layout="constrained")
        draw(figure, series)
        out.append(f'<h3>{_e(title)}</h3><div class="plot">{_svg(figure)}</div>')
    return "\n".join(out)


def _times(rows: Sequence[TimelineRow]) -> Any:
    """The first span's start, then every span's end, as datetimes (see `_steps`).

    Typed Any: matplotlib's stubs name only numbers, its date axis takes both.
    """
    starts = [rows[0].t - rows[0].span_s] if rows else []
    return [datetime.fromtimestamp(t, UTC) for t in [*starts, *(row.t for row in rows)]]


def _steps(values: Sequence[float | None]) -> list[float]:
    """Values to draw with `_times`: each held over its span (a gap for None)."""
    drawn = [math.nan if value is None else value for value in values]
    return [drawn[0], *drawn] if drawn else []


def _label(run_id: int, what: str, many: bool) -> str:
    return f"{what} (run {run_id})" if many else what


def _rates(figure: Figure, series: dict[int, list[TimelineRow]]) -> None:
    axes = figure.subplots()
    many = len(series) > 1
    for run_id, rows in series.items():
        t = _times(rows)
        axes.plot(
            t,
            _steps([r.synced / r.span_s for r in rows]),
            **_STEP,
            label=_label(run_id, "synced", many),
        )
        axes.plot(
            t,
            _steps([r.read / r.span_s for r in rows]),
            "--",
            **_STEP,
            label=_label(run_id, "read", many),
        )
        axes.plot(
            t,
            _steps([r.failed / r.span_s for r in rows]),
            **_STEP,
            label=_label(run_id, "failed", many),
        )
    _finish(axes, "records/s")


def _latency(figure: Figure, series: dict[int, list[TimelineRow]]) -> None:
    left, right = figure.subplots(1, 2)
    many = len(series) > 1
    for run_id, rows in series.items():
        t = _times(rows)
        left.plot(
            t, _steps([r.in_flight for r in rows]), **_STEP, label=_label(run_id, "in flight", many)
        )
        left.plot(t, _steps([r.limit for r in rows]), **_STEP, label=_label(run_id, "limit", many))
        latency = [None if r.latency_s is None else r.latency_s * 1000 for r in rows]
        right.plot(t, _steps(latency), **_STEP, label=_label(run_id, "mean latency", many))
    _finish(left, "requests")
    _finish(right, "ms (in flight / request rate)")


def _throttling(figure: Figure, series: dict[int, list[TimelineRow]]) -> None:
    axes = figure.subplots()
    many = len(series) > 1
    for run_id, rows in series.items():
        t = _times(rows)
        axes.plot(
            t,
            _steps([60 * r.throttled / r.span_s for r in rows]),
            **_STEP,
            label=_label(run_id, "429s", many),
        )
        axes.plot(
            t,
            _steps([60 * r.retried / r.span_s for r in rows]),
            **_STEP,
            label=_label(run_id, "retries", many),
        )
    _finish(axes, "per minute")


def _lag(figure: Figure, series: dict[int, list[TimelineRow]]) -> None:
    left, right = figure.subplots(1, 2)
    many = len(series) > 1
    for run_id, rows in series.items():
        t = _times(rows)
        left.plot(
            t, _steps([r.sync_lag_s for r in rows]), **_STEP, label=_label(run_id, "sync lag", many)
        )
        right.plot(
            t, _steps([r.queue_depth for r in rows]), **_STEP, label=_label(run_id, "queue", many)
        )
    _finish(left, "seconds")
    _finish(right, "changes")


def _finish(axes: Axes, ylabel: str) -> None:
    from matplotlib import dates as mdates

    axes.set_ylabel(ylabel)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize="small")
    axes.tick_params(axis="x", labelsize="small")
    locator = mdates.AutoDateLocator(maxticks=6)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


_SVG_HEAD = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>", re.DOTALL)


def _svg(figure: Any) -> str:
    """The figure as an inline <svg> element (no XML prolog, DTD or RDF metadata)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return _METADATA.sub("", _SVG_HEAD.sub("", buffer.getvalue(), count=1))


def _failures(data: ReportData) -> str:
    if not data.groups:
        return "<p>No failed records in the journal.</p>"
    parts = [
        '<p class="note">The journal\'s failed records now (all runs): a fixed change or '
        "<code>syncengine retry</code> takes a record off this list.</p>",
        "<table><tr><th>Code</th><th>Field</th><th>Records</th><th>What to do</th></tr>",
    ]
    for group in data.groups:
        parts.append(
            f"<tr><td>{_e(group.code)}</td><td>{_e(group.field or '-')}</td>"
            f'<td class="n">{group.count:,}</td><td>{_e(group.advice)}</td></tr>'
        )
    parts.append("</table>")
    for code, rows in data.examples.items():
        parts.append(f"<h3>Examples of {_e(code)}</h3><table>")
        parts.append(
            "<tr><th>Record</th><th>Feed position</th><th>Field</th><th>Message</th>"
            "<th>Attempts</th></tr>"
        )
        for row in rows:
            field = (row.details or {}).get("api_name") if isinstance(row.details, dict) else None
            positions = ", ".join(str(p) for p in row.positions) or _e(row.position)
            parts.append(
                f"<tr><td>{_e(row.module)} {_e(row.record_id or '(no id)')}</td>"
                f"<td>{_e(positions)}</td><td>{_e(field or '-')}</td>"
                f'<td>{_e(row.message)}</td><td class="n">{row.attempts}</td></tr>'
            )
        parts.append("</table>")
    return "\n".join(parts)

"""The timeline table's rows, and how old ones are thinned (pure; see `syncengine.sampler`).

A row covers `span_s` seconds of one run ending at `t`: counts are what
happened within the span, gauges are read at its end (in-flight is its mean).

Size is bounded for a daemon that runs for months: at each pass start, rows
older than `THIN_AFTER_S` are merged into `THIN_SPAN_S` rows (counts summed,
gauges averaged) and rows older than `KEEP_S` are deleted. A pass writes a
row per second in its first minute and one per 5 s after, so the newest day
holds at most 86,400 rows (a cron job whose passes each last a minute; a
daemon writes about 17,300), plus 89 days at 5 minutes (25,632 rows): at most
about 10 MB, usually far less.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

#: Rows older than this are merged into `THIN_SPAN_S` rows.
THIN_AFTER_S = 86_400.0
#: The span of a thinned row.
THIN_SPAN_S = 300.0
#: Rows older than this are deleted.
KEEP_S = 90 * 86_400.0


@dataclass(frozen=True, slots=True)
class Reading:
    """The live counters at one instant; the counts only grow within a pass."""

    read: int
    synced: int
    failed: int
    retried: int
    requests: int
    throttled: int
    in_flight: int
    limit: int
    queue_depth: int
    sync_lag_s: float
    credits: int | None


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One span of a pass: counts within it, gauges at its end (in-flight: its mean)."""

    t: float
    span_s: float
    read: int
    synced: int
    failed: int
    retried: int
    requests: int
    throttled: int
    in_flight: float
    limit: int
    queue_depth: int
    sync_lag_s: float
    credits: int | None

    def as_tuple(self) -> tuple[float | int | None, ...]:
        """The row's values in the order of `COLUMNS`."""
        return tuple(getattr(self, field.name) for field in fields(self))

    @property
    def latency_s(self) -> float | None:
        """Mean request latency over the span by Little's law; None when nothing was sent."""
        if self.requests <= 0 or self.span_s <= 0:
            return None
        return self.in_flight / (self.requests / self.span_s)


#: Column names of the timeline table, in `TimelineRow` order (`limit` is an SQL keyword).
COLUMNS = tuple("limit_" if f.name == "limit" else f.name for f in fields(TimelineRow))


def row_between(
    before: Reading, after: Reading, *, t: float, span_s: float, mean_in_flight: float
) -> TimelineRow:
    """The row for the span from `before` to `after` (pure)."""
    return TimelineRow(
        t=t,
        span_s=span_s,
        read=after.read - before.read,
        synced=after.synced - before.synced,
        failed=after.failed - before.failed,
        retried=after.retried - before.retried,
        requests=after.requests - before.requests,
        throttled=after.throttled - before.throttled,
        in_flight=mean_in_flight,
        limit=after.limit,
        queue_depth=after.queue_depth,
        sync_lag_s=round(max(0.0, after.sync_lag_s), 3),
        credits=after.credits,
    )


def thin_statements(now: float, *, postgres: bool = False) -> list[tuple[str, tuple[float, ...]]]:
    """SQL that merges old short rows into `THIN_SPAN_S` rows and drops expired ones (pure).

    Merged rows keep each run's spans apart, sum the counts, average the
    gauges (the mean in-flight weighted by span, so latency stays right)
    and take the lowest credits figure (the
    day's credits only fall between resets). `postgres` spells it for
    PostgreSQL, whose casts round where SQLite's truncate.
    """
    thin_before = now - THIN_AFTER_S
    bucket = f"floor(t / {THIN_SPAN_S})" if postgres else f"CAST(t / {THIN_SPAN_S} AS INTEGER)"
    greatest = "greatest" if postgres else "max"
    depth = "floor(avg(queue_depth))" if postgres else "avg(queue_depth)"
    short = f"span_s < {THIN_SPAN_S} AND t < ?"
    return [
        ("DELETE FROM timeline WHERE t < ?", (now - KEEP_S,)),
        (
            "INSERT INTO timeline SELECT run_id, max(t), sum(span_s), sum(read), sum(synced),"
            " sum(failed), sum(retried), sum(requests), sum(throttled),"
            f" sum(in_flight * span_s) / {greatest}(sum(span_s), 1e-9), max(limit_),"
            f" CAST({depth} AS INTEGER), max(sync_lag_s),"
            " min(credits)"
            f" FROM timeline WHERE {short} GROUP BY run_id, {bucket}",
            (thin_before,),
        ),
        (f"DELETE FROM timeline WHERE {short}", (thin_before,)),
    ]

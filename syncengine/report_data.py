"""What `syncengine report` shows, read from the journal: runs, their timelines, failures.

Reading is kept apart from drawing (`report_page`) so the selection and the
advice are tested without a plotting library. Failures are the journal's
current failed records (a later `retry` or a fixed change clears them), not
a history: the page says so.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from syncengine.crm.classification import (
    FATAL_REQUEST_CODES,
    PERMANENT_RECORD_CODES,
    TOKEN_CODES,
)
from syncengine.errors import ConfigError
from syncengine.journal import Journal
from syncengine.journal.records import FailureRow, RunRow
from syncengine.journal.timeline import TimelineRow

#: Failed records shown as examples for each code.
EXAMPLES_PER_CODE = 5
#: Without `--run` or `--since`: the runs of this many last seconds (at least the last run).
DEFAULT_WINDOW_S = 7 * 86_400.0

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """Failed records sharing a code and a field, with what to do about them."""

    code: str
    field: str | None
    count: int
    advice: str


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything one report page holds."""

    journal_path: str
    runs: list[RunRow]
    timelines: dict[int, list[TimelineRow]]
    groups: list[FailureGroup]
    examples: dict[str, list[FailureRow]]
    generated_at: float


def parse_since(text: str, *, now: float) -> float:
    """`--since`: a span back from now ("90m", "24h", "7d") or an ISO date/time (UTC if bare).

    Raises ConfigError naming the option for anything else.
    """
    match = _RELATIVE.match(text.strip().lower())
    if match:
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: give a span such as 24h or 7d, or a date such as 2026-01-31"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def advice_for(code: str) -> str:
    """What a user can do about failed records with `code` (pure)."""
    if code == "BAD_INPUT":
        return "Fix these lines in the feed: they could not be read, so they cannot be re-sent."
    if code in PERMANENT_RECORD_CODES:
        return (
            "The CRM refused the values: fix them in the source (the next change is sent), "
            "or fix the CRM side (field, layout, duplicate) and run `syncengine retry --code "
            f"{code}`."
        )
    if code in TOKEN_CODES or code in FATAL_REQUEST_CODES:
        return (
            "Check the credentials, the OAuth scopes and the module in the config, "
            f"then run `syncengine retry --code {code}`."
        )
    return (
        "Retries ran out while the CRM or the network was failing: once it is healthy, "
        f"run `syncengine retry --code {code}`."
    )


async def gather(
    journal: Journal, *, run_id: int | None = None, since: float | None = None
) -> ReportData:
    """The report's data: the selected runs (default: the last week's, at least the last one)."""
    now = time.time()
    if run_id is not None:
        runs = await journal.runs(run_id=run_id)
        if not runs:
            raise ConfigError(f"--run {run_id}: no such run in journal {journal.where}")
    else:
        runs = await journal.runs(since=now - DEFAULT_WINDOW_S if since is None else since)
        if not runs and since is None:
            last = await journal.last_run()
            runs = [] if last is None else [last]
    timelines = {run.run_id: await journal.timeline(run.run_id) for run in runs}
    groups = [
        FailureGroup(code, field, count, advice_for(code))
        for code, field, count in await journal.failure_groups()
    ]
    examples = {
        code: await journal.failures(code=code, limit=EXAMPLES_PER_CODE)
        for code in dict.fromkeys(group.code for group in groups)
    }
    return ReportData(journal.where, runs, timelines, groups, examples, now)

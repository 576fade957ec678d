"""What `status` and `failures` print: a JSON document or readable lines.

Building the document reads the journal; formatting is pure, so the text
layout is tested without a database. Nothing here can show a secret: the
journal's token table is never read.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from syncengine.journal import FailureRow, Journal


def _iso(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    return dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC).isoformat(timespec="seconds")


async def status_document(journal: Journal, path: Path | str) -> dict[str, Any]:
    """The object `status --json` prints (interface.md: `records` holds the counts)."""
    counts = await journal.counts()
    checkpoints = await journal.checkpoints()
    last = await journal.last_run()
    last_run: dict[str, Any] | None = None
    if last is not None:
        last_run = {
            "command": last.command,
            "started_at": _iso(last.started_at),
            "finished_at": _iso(last.finished_at),
            "exit_status": last.exit_status,
            "counts": dict(last.counts or {}),
        }
    day = await journal.runs(since=time.time() - 86_400)
    return {
        "journal": str(path),
        "records": {
            "synced": counts.get("synced", 0),
            "pending": counts.get("pending", 0),
            "failed": counts.get("failed", 0),
        },
        "credits": {
            "last_run": None if last is None else (last.counts or {}).get("credits"),
            "spent_last_24h": sum(
                int(((run.counts or {}).get("credits") or {}).get("spent") or 0) for run in day
            ),
        },
        "checkpoints": {
            source_id: {"position": cp.display, "resume_after": cp.resume_after}
            for source_id, cp in checkpoints.items()
        },
        "last_run": last_run,
    }


def format_status(document: dict[str, Any]) -> str:
    """Readable lines for `status` without `--json`."""
    records = document["records"]
    lines = [
        f"journal: {document['journal']}",
        f"records: {records['synced']} synced, {records['pending']} pending, "
        f"{records['failed']} failed",
    ]
    for source_id, checkpoint in document["checkpoints"].items():
        lines.append(f"checkpoint: {source_id} at position {checkpoint['position']}")
    if not document["checkpoints"]:
        lines.append("checkpoint: none yet (the next run reads the feed from the top)")
    last = document["last_run"]
    if last is None:
        lines.append("last run: none")
    else:
        ended = (
            f"finished {last['finished_at']}, exit {last['exit_status']}"
            if last["finished_at"]
            else "did not finish (killed or still running)"
        )
        lines.append(f"last run: {last['command']} started {last['started_at']}, {ended}")
    credits = document.get("credits") or {}
    spent_run = (credits.get("last_run") or {}).get("spent")
    if spent_run is not None:
        run = credits["last_run"]
        saved = (
            run.get("saved_by_coalescing", 0)
            + run.get("saved_by_skip_unchanged", 0)
            + run.get("saved_by_validation", 0)
        )
        lines.append(
            f"credits: {spent_run} spent in the last run (about {saved:g} saved), "
            f"{credits.get('spent_last_24h', 0)} in the last 24 h"
        )
    return "\n".join(lines)


def failure_documents(rows: list[FailureRow]) -> list[dict[str, Any]]:
    """The objects `failures --json` prints, one per failed record (interface.md's members)."""
    return [
        {
            "module": row.module,
            "id": row.record_id,
            "position": row.position,
            "code": row.code,
            "message": row.message,
            "attempts": row.attempts,
            "details": row.details,
            "positions": list(row.positions),
            "key": row.source_key,
        }
        for row in rows
    ]


def format_failures(rows: list[dict[str, Any]]) -> str:
    """One line per failed record, for `failures` without `--json`."""
    if not rows:
        return "no failed records"
    lines = [f"{len(rows)} failed record(s):"]
    for row in rows:
        record = row["id"] if row["id"] is not None else "(no id)"
        if row.get("key") is not None:
            record = f"{record} key {row['key']!r}"
        details = row.get("details") or {}
        field = f" [{details['api_name']}]" if details.get("api_name") else ""
        positions = row.get("positions") or []
        owed = (
            f"; owes positions {', '.join(str(p) for p in positions)}" if len(positions) > 1 else ""
        )
        lines.append(
            f"  {row['module']} {record} at position {row['position']}: "
            f"{row['code']}: {row['message']}{field} (attempts: {row['attempts']}{owed})"
        )
    return "\n".join(lines)

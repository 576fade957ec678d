"""The readable forms of `status` and `failures`, and the exit-status policy."""

from __future__ import annotations

from syncengine.engine.recorder import PassCounts
from syncengine.reports import format_failures, format_status
from syncengine.runner import exit_status_for


def test_status_lines_show_counts_checkpoint_and_a_killed_run() -> None:
    """A run without a finish time reads as killed or still running."""
    text = format_status(
        {
            "journal": "/x/j.db",
            "records": {"synced": 5, "pending": 1, "failed": 2},
            "checkpoints": {"jsonl:/x/f.jsonl": {"position": 8, "resume_after": 120}},
            "last_run": {
                "command": "run",
                "started_at": "2026-01-01T00:00:00+00:00",
                "finished_at": None,
                "exit_status": None,
                "counts": {},
            },
        }
    )
    assert "5 synced, 1 pending, 2 failed" in text
    assert "jsonl:/x/f.jsonl at position 8" in text
    assert "did not finish" in text


def test_failure_lines_name_record_position_and_code() -> None:
    """Each failure shows module, id (or its absence), position, code and message."""
    text = format_failures(
        [
            {
                "module": "Leads",
                "id": None,
                "position": 3,
                "code": "BAD_INPUT",
                "message": "bad JSON",
                "attempts": 0,
            },
            {
                "module": "Leads",
                "id": "42",
                "position": 9,
                "code": "INVALID_DATA",
                "message": "invalid data",
                "attempts": 1,
                "details": {"api_name": "Email"},
            },
        ]
    )
    assert "2 failed record(s)" in text
    assert "Leads (no id) at position 3: BAD_INPUT: bad JSON" in text
    assert "Leads 42 at position 9: INVALID_DATA: invalid data [Email] (attempts: 1)" in text
    assert format_failures([]) == "no failed records"


def test_exit_status_policy() -> None:
    """130 when interrupted, 1 when the pass failed records, else 0."""
    assert exit_status_for(PassCounts(synced=3), interrupted=False) == 0
    assert exit_status_for(PassCounts(synced=3, failed=1), interrupted=False) == 1
    assert exit_status_for(PassCounts(failed=1), interrupted=True) == 130

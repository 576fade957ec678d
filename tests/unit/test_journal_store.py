"""The journal's record, checkpoint and run operations, on a real SQLite file and on PostgreSQL.

Every test taking `journal` (or `journal_target`) runs once per backend
(`tests.journal_backends`): the two must behave the same.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from syncengine.config import JournalConfig
from syncengine.errors import FatalError
from syncengine.journal import Journal, RecordUpdate, SyncedRow, encode_payload
from syncengine.journal.writes import SYNCED_STATEMENT_ROWS
from syncengine.model import Change, Checkpoint, Operation, RecordState, SourcePosition
from tests.journal_backends import journal_target  # noqa: F401 - a fixture


@pytest.fixture
async def journal(journal_target: Path | JournalConfig) -> AsyncIterator[Journal]:  # noqa: F811
    """An open journal in a fresh file or schema, taking group commits as a pass's does."""
    async with await Journal.open(journal_target, holder="test", commit_process=True) as opened:
        yield opened


def _change(n: int, *, key: str | None = None) -> Change:
    return Change(
        module="Leads",
        operation=Operation.UPDATE,
        record={"id": str(n), "Last_Name": f"n{n}"},
        key=f"Leads:{n}" if key is None else key,
        positions=[SourcePosition(ordinal=n, resume_after=n * 10, display=n + 1)],
    )


def _update(n: int, state: RecordState = RecordState.PENDING, **overrides: Any) -> RecordUpdate:
    fields: dict[str, Any] = {
        "key": f"Leads:{n}",
        "module": "Leads",
        "record_id": str(n),
        "operation": Operation.UPDATE,
        "state": state,
        "attempts": 1,
        "code": None if state is RecordState.SYNCED else "INVALID_DATA",
        "message": None if state is RecordState.SYNCED else "bad value",
        "details": None,
        "next_attempt_at": 100.0 if state is RecordState.PENDING else None,
        "payload": encode_payload(_change(n)),
        "position": n + 1,
    }
    fields.update(overrides)
    return RecordUpdate(**fields)


async def _row(journal: Journal, key: str) -> tuple[Any, ...]:
    sql = "SELECT state, payload, next_attempt_at, attempts FROM records WHERE key = ?"
    row = await journal._fetch_one(sql, (key,))
    assert row is not None
    return tuple(row)


async def _due_ids(journal: Journal, now: float, *, page: int = 1000) -> list[str | None]:
    return [change.record_id async for change in journal.due(now, page=page)]


async def test_a_group_commit_writes_records_and_checkpoint(journal: Journal) -> None:
    """Records and checkpoints written by one group commit are read back as written."""
    await journal.submit(
        [_update(1, RecordState.SYNCED), _update(2, RecordState.FAILED)],
        {"feed": Checkpoint(resume_after=20, display=2), "table": Checkpoint("0012", "0012")},
    )
    assert await journal.counts() == {"synced": 1, "pending": 0, "failed": 1}
    assert await journal.checkpoint("feed") == Checkpoint(resume_after=20, display=2)
    assert await journal.checkpoint("nowhere") is None
    assert await journal.checkpoints() == {
        "feed": Checkpoint(20, 2),
        "table": Checkpoint("0012", "0012"),  # a cursor string stays a string
    }


async def test_a_group_commit_is_all_or_nothing(journal: Journal) -> None:
    """A batch that fails on one row leaves no row and no checkpoint of it behind."""
    await journal.submit([_update(1)], {"feed": Checkpoint(10, 1)})
    bad = _update(3, cast(RecordState, _BadState()))
    with pytest.raises(FatalError, match=r"(?i)CHECK constraint"):
        await journal.submit([_update(2), bad], {"feed": Checkpoint(30, 3)})
    assert await journal.counts() == {"synced": 0, "pending": 1, "failed": 0}
    assert await journal.checkpoint("feed") == Checkpoint(10, 1)
    # Later commits may already be on their way, counting on the failed
    # rows: the commit process makes none after a failure.
    with pytest.raises(FatalError, match=r"(?i)CHECK constraint"):
        await journal.submit([_update(2)], {"feed": Checkpoint(20, 2)})
    assert await journal.checkpoint("feed") == Checkpoint(10, 1)


class _BadState:
    """A state the schema's CHECK constraint rejects."""

    value = "lost"

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__


async def test_later_update_of_a_key_wins(journal: Journal) -> None:
    """Within a batch and across batches, the last update of a key is what stays."""
    await journal.submit([_update(1), _update(1, RecordState.FAILED)])
    assert await journal.counts() == {"synced": 0, "pending": 0, "failed": 1}
    await journal.submit([_update(1, RecordState.SYNCED)])
    assert await journal.counts() == {"synced": 1, "pending": 0, "failed": 0}


async def test_redriven_outcome_keeps_the_feed_position(journal: Journal) -> None:
    """An update without a position (a re-driven change) keeps the line users were shown."""
    await journal.submit([_update(16, position=17)])
    await journal.submit([_update(16, RecordState.FAILED, position=None)])
    [row] = await journal.failures()
    assert row.position == 17


async def test_synced_rows_keep_no_payload(journal: Journal) -> None:
    """A synced row drops its payload and due time even if the update carried them."""
    await journal.submit([_update(1, RecordState.SYNCED, next_attempt_at=5.0)])
    state, payload, due_at, _ = await _row(journal, "Leads:1")
    assert (state, payload, due_at) == ("synced", None, None)


async def test_failed_rows_keep_payload_but_no_due_time(journal: Journal) -> None:
    """A failed row keeps what `retry` needs to re-send it, and is never due by itself."""
    await journal.submit([_update(1, RecordState.FAILED, next_attempt_at=5.0)])
    state, payload, due_at, _ = await _row(journal, "Leads:1")
    assert (state, due_at) == ("failed", None)
    assert payload == encode_payload(_change(1))
    assert await _due_ids(journal, now=1e12) == []


async def test_pending_without_due_time_is_due_at_once(journal: Journal) -> None:
    """A pending update with no next_attempt_at is due from the moment it is written."""
    await journal.submit([_update(1, next_attempt_at=None)])
    assert await _due_ids(journal, now=time.time() + 1) == ["1"]


async def test_due_yields_oldest_first_and_only_what_is_due(journal: Journal) -> None:
    """due() gives pending rows due at or before now, in the order first journaled."""
    await journal.submit(
        [
            _update(1, next_attempt_at=30.0),
            _update(2, next_attempt_at=10.0),
            _update(3, next_attempt_at=30.0),
            _update(4, next_attempt_at=50.0),
            _update(5, RecordState.SYNCED),
            _update(6, RecordState.FAILED),
            _update(7, next_attempt_at=20.0),
        ]
    )
    await journal.submit([_update(1, next_attempt_at=5.0)])  # an update keeps its place
    assert await _due_ids(journal, now=30.0) == ["1", "2", "3", "7"]
    assert await _due_ids(journal, now=math.inf) == ["1", "2", "3", "4", "7"]
    assert await _due_ids(journal, now=4.0) == []


async def test_due_decodes_payload_with_stored_attempts(journal: Journal) -> None:
    """A due change is the stored change, with its attempts and journal key, without positions."""
    await journal.submit([_update(4, attempts=3, next_attempt_at=1.0)])
    [change] = [change async for change in journal.due(2.0)]
    assert change.record == {"id": "4", "Last_Name": "n4"}
    assert (change.key, change.attempts, change.positions) == ("Leads:4", 3, [])


async def test_due_pages_survive_applies_between_pages(journal: Journal) -> None:
    """Rows resolved or rescheduled during iteration are not repeated and none are skipped."""
    await journal.submit([_update(n, next_attempt_at=float(n % 4)) for n in range(20)])
    seen: list[str | None] = []
    async for change in journal.due(10.0, page=3):
        seen.append(change.record_id)
        n = int(change.record_id or "0")
        # resolve what was yielded, and reschedule it to after `now`
        state = RecordState.SYNCED if n % 2 else RecordState.PENDING
        await journal.submit([_update(n, state, next_attempt_at=99.0)])
    assert sorted(seen, key=lambda s: int(s or "0")) == [str(n) for n in range(20)]
    assert len(seen) == len(set(seen)) == 20


async def test_rows_rescheduled_during_iteration_are_not_met_again(journal: Journal) -> None:
    """Iterating due(math.inf), a retried row rescheduled to any time is yielded only once."""
    await journal.submit([_update(n, next_attempt_at=1.0) for n in range(7)])
    seen: list[str | None] = []
    async for change in journal.due(math.inf, page=2):
        seen.append(change.record_id)
        n = int(change.record_id or "0")
        await journal.submit([_update(n, attempts=change.attempts + 1, next_attempt_at=9.0)])
    assert seen == [str(n) for n in range(7)]


async def test_due_pages_see_rows_added_later_in_order(journal: Journal) -> None:
    """A row that becomes due behind the iteration's position is still yielded once."""
    await journal.submit([_update(n, next_attempt_at=1.0) for n in range(5)])
    seen: list[str | None] = []
    async for change in journal.due(10.0, page=2):
        seen.append(change.record_id)
        if change.record_id == "0":
            await journal.submit([_update(50, next_attempt_at=5.0)])
    assert seen == ["0", "1", "2", "3", "4", "50"]


async def test_counts_always_have_the_three_states(journal: Journal) -> None:
    """counts() names synced, pending and failed even when the journal is empty."""
    assert await journal.counts() == {"synced": 0, "pending": 0, "failed": 0}
    await journal.submit([_update(1), _update(2, RecordState.SYNCED), _update(3)])
    assert await journal.counts() == {"synced": 1, "pending": 2, "failed": 0}


async def test_failures_in_feed_order_with_filters(journal: Journal) -> None:
    """failures() sorts numerically by position, filters by code, honours limit, decodes details."""
    await journal.submit(
        [
            _update(9, RecordState.FAILED, details={"api_name": "Email"}),
            _update(1, RecordState.FAILED, code="BAD_INPUT", record_id=None, payload=None),
            _update(2, RecordState.SYNCED),
            _update(30, RecordState.FAILED, code="DUPLICATE_DATA"),
        ]
    )
    rows = await journal.failures()
    assert [row.position for row in rows] == [2, 10, 31]
    assert rows[0].record_id is None
    assert rows[1].details == {"api_name": "Email"}
    assert [r.position for r in await journal.failures(code="DUPLICATE_DATA")] == [31]
    assert len(await journal.failures(limit=2)) == 2


async def test_requeue_moves_failed_with_payload_to_pending(journal: Journal) -> None:
    """retry puts re-drivable failures back as due, attempts reset; bad lines are counted apart."""
    await journal.submit(
        [
            _update(1, RecordState.FAILED, attempts=8),
            _update(2, RecordState.FAILED, code="BAD_INPUT", payload=None),
            _update(3, RecordState.SYNCED),
        ]
    )
    result = await journal.requeue_failed(now=500.0)
    assert (result.requeued, result.not_redrivable) == (1, 1)
    assert await journal.counts() == {"synced": 1, "pending": 1, "failed": 1}
    [change] = [change async for change in journal.due(500.0)]
    assert (change.record_id, change.attempts) == ("1", 0)


async def test_requeue_selects_by_code_and_ids(journal: Journal) -> None:
    """--code and --id narrow the requeue, together when both are given."""
    await journal.submit(
        [
            _update(1, RecordState.FAILED, code="A"),
            _update(2, RecordState.FAILED, code="A"),
            _update(3, RecordState.FAILED, code="B"),
            _update(4, RecordState.FAILED, code="B"),
        ]
    )
    assert (await journal.requeue_failed(code="A", ids=["2", "3"], now=1.0)).requeued == 1
    assert (await journal.requeue_failed(ids=["3"], now=1.0)).requeued == 1
    assert (await journal.requeue_failed(code="B", now=1.0)).requeued == 1
    assert [row.record_id for row in await journal.failures()] == ["1"]


async def test_requeue_many_ids(journal: Journal) -> None:
    """A long --id list (more than one statement holds) requeues every match once."""
    await journal.submit([_update(n, RecordState.FAILED) for n in range(1200)])
    ids = [str(n) for n in range(0, 1200, 1)] + ["1", "2", "nope"]
    result = await journal.requeue_failed(ids=ids, now=1.0)
    assert (result.requeued, result.not_redrivable) == (1200, 0)


async def test_runs_record_start_and_finish(journal: Journal) -> None:
    """last_run() shows the latest run; one never finished (killed) has no end."""
    assert await journal.last_run() is None
    first = await journal.start_run("run", now=10.0)
    await journal.finish_run(first, now=12.5, exit_status=1, counts={"synced": 3, "failed": 1})
    done = await journal.last_run()
    assert done is not None
    assert (done.command, done.started_at, done.finished_at, done.exit_status) == (
        "run",
        10.0,
        12.5,
        1,
    )
    assert done.counts == {"synced": 3, "failed": 1}
    second = await journal.start_run("migrate", now=20.0)
    killed = await journal.last_run()
    assert killed is not None
    assert (killed.run_id, killed.command, killed.finished_at, killed.counts) == (
        second,
        "migrate",
        None,
        None,
    )


async def test_synced_runs_longer_than_one_statement_keep_order(journal: Journal) -> None:
    """Lean synced rows go in multi-row statements; across them a key's last row still wins."""
    count = 2 * SYNCED_STATEMENT_ROWS[-1] + 7  # two full blocks and a padded tail

    def synced(n: int, attempts: int) -> SyncedRow:
        return (f"Leads:{n}", "Leads", str(n), "update", attempts, n + 1, "feed")

    updates: list[RecordUpdate | SyncedRow] = [synced(n, 1) for n in range(count)]
    updates.insert(5, _update(count, RecordState.FAILED))  # a run of the other kind between
    updates.append(synced(0, 3))  # the first key again, in the last statement
    updates.append(_update(count, RecordState.SYNCED))
    await journal.submit(updates, {"feed": Checkpoint(1, 1)})
    assert await journal.counts() == {"synced": count + 1, "pending": 0, "failed": 0}
    assert (await _row(journal, "Leads:0"))[3] == 3
    assert await _row(journal, f"Leads:{count - 1}") == ("synced", None, None, 1)


async def test_reader_sees_commits_made_after_it_opened(
    journal_target: Path | JournalConfig,  # noqa: F811
) -> None:
    """A reader connection holds no stale snapshot: later commits of the holder show up."""
    path = journal_target
    async with await Journal.open(path) as reader:
        assert (await reader.counts())["pending"] == 0
        async with await Journal.open(path, holder="run", commit_process=True) as writer:
            await writer.submit([_update(1)], {"feed": Checkpoint(1, 1)})
            assert (await reader.counts())["pending"] == 1
            assert await reader.checkpoint("feed") == Checkpoint(1, 1)

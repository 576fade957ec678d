"""The PostgreSQL journal against the SQLite one: the same commits leave the same rows.

`pg_writes.fold` is checked against applying rows one by one (a property),
then random group commits (repeated keys within and across runs of rows,
positions as ints, cursor strings or none, every state) go to both backends,
and every row, the retry queue's order, the failures and the counts must be
equal.
"""

# ruff: noqa: F811 - `pg_journal_config` is a fixture imported from tests.journal_backends

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from syncengine.config import JournalConfig
from syncengine.journal import Journal, RecordUpdate, SyncedRow
from syncengine.journal.pg_writes import fold
from syncengine.model import Checkpoint, Operation, RecordState
from tests.journal_backends import pg_journal_config  # noqa: F401

_ROW = st.lists(
    st.tuples(st.sampled_from("abc"), st.none() | st.integers(0, 3), st.none() | st.integers()),
    max_size=12,
)


@given(_ROW)
def test_fold_equals_applying_rows_in_order(rows: list[tuple[str, int | None, int | None]]) -> None:
    """Column 1 is kept when a later row has none (`coalesce`); column 2 is overwritten."""
    applied: dict[str, list[Any]] = {}
    for key, kept, overwritten in rows:
        old = applied.get(key)
        applied[key] = [key, kept if kept is not None or old is None else old[1], overwritten]
    folded = fold([list(row) for row in rows], kept=(1,))
    assert folded == list(applied.values())
    assert [row[0] for row in folded] == list(dict.fromkeys(key for key, _, _ in rows))


def _random_batches(rng: random.Random) -> list[list[RecordUpdate | SyncedRow]]:
    def position() -> int | str | None:
        return rng.choice([None, rng.randrange(1000), f"cur-{rng.randrange(1000):04d}"])

    batches: list[list[RecordUpdate | SyncedRow]] = []
    for _ in range(25):
        batch: list[RecordUpdate | SyncedRow] = []
        for _ in range(rng.randrange(1, 60)):
            key = f"Leads/{rng.randrange(40)}"
            if rng.random() < 0.5:
                batch.append(
                    (key, "Leads", rng.choice([None, f"crm-{key}"]), "update",
                     rng.randrange(1, 4), position(), rng.choice([None, "feed"]))
                )  # fmt: skip
                continue
            state = rng.choice(list(RecordState))
            batch.append(
                RecordUpdate(
                    key=key,
                    module="Leads",
                    record_id=rng.choice([None, "4876"]),
                    operation=rng.choice([None, Operation.UPDATE, Operation.INSERT]),
                    state=state,
                    attempts=rng.randrange(5),
                    code=rng.choice([None, "INVALID_DATA", "RECORD_LOCKED"]),
                    message=rng.choice([None, "bad value"]),
                    details=rng.choice([None, {"api_name": "Email", "n": rng.randrange(9)}]),
                    next_attempt_at=rng.choice([None, float(rng.randrange(100))]),
                    payload=b'{"module":"Leads","operation":"update","record":{"id":"%d"},'
                    b'"trigger":null,"key":"%s"}' % (rng.randrange(9), key.encode()),
                    position=position(),
                    source_id=rng.choice([None, "feed"]),
                    accepted=rng.choice([None, "digest"]),
                )
            )
        batches.append(batch)
    return batches


_COLUMNS = (
    "key, module, record_id, operation, state, attempts, code, message, details,"
    " next_attempt_at, payload, position, source, accepted"
)


async def _journal_view(journal: Journal) -> dict[str, Any]:
    rows = await journal._database.fetch(f"SELECT {_COLUMNS} FROM records ORDER BY key")
    # A pending row without a due time is due at the commit's own time: "now".
    return {
        "rows": [(*row[:9], "now" if (row[9] or 0) > 1e9 else row[9], *row[10:]) for row in rows],
        "due": [change.key async for change in journal.due(math.inf, page=7)],
        "failures": await journal.failures(),
        "groups": await journal.failure_groups(),
        "counts": await journal.counts(),
        "checkpoints": await journal.checkpoints(),
        "high_water": await journal.high_water("feed"),
        "ids": [entry async for entry in journal.id_map("Leads", page=5)],
    }


async def test_random_commits_leave_the_same_journal_on_both_backends(
    tmp_path: Path, pg_journal_config: JournalConfig
) -> None:
    views = []
    for target in (tmp_path / "j.db", pg_journal_config):
        rng = random.Random(20261202)
        async with await Journal.open(target, holder="t", commit_process=True) as journal:
            for n, batch in enumerate(_random_batches(rng)):
                await journal.submit(
                    batch, {"feed": Checkpoint(n, n + 1)}, {"feed": Checkpoint(n, n)}
                )
            views.append(await _journal_view(journal))
    sqlite, postgres = views
    assert len(sqlite["rows"]) > 30
    for name in sqlite:
        assert postgres[name] == sqlite[name], name

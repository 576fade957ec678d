"""The checkpoint journal: per-record outcomes, retry queue, checkpoints, runs, token cache.

See `store.Journal`; the process lock is in `lock`, the file format in `schema`,
the group commit in `group_commit` (the pass's side) and `commit_worker` (the
commit process's side).

Names are imported on first use (PEP 562) so that the commit worker, a
separate interpreter that needs only `writes`, starts without loading aiosqlite
and the logging stack: it is on the path of a pass's first group commit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncengine.journal.records import (
        FailureRow,
        RecordUpdate,
        RequeueResult,
        RunRow,
        SyncedRow,
        decode_payload,
        encode_payload,
        journal_key,
    )
    from syncengine.journal.store import Journal
    from syncengine.journal.token_cache import JournalTokenStore

_HOMES = {
    "FailureRow": "records",
    "RecordUpdate": "records",
    "RequeueResult": "records",
    "RunRow": "records",
    "SyncedRow": "records",
    "decode_payload": "records",
    "encode_payload": "records",
    "journal_key": "records",
    "Journal": "store",
    "JournalTokenStore": "token_cache",
}

__all__ = [
    "FailureRow",
    "Journal",
    "JournalTokenStore",
    "RecordUpdate",
    "RequeueResult",
    "RunRow",
    "SyncedRow",
    "decode_payload",
    "encode_payload",
    "journal_key",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value

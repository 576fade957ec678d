"""The checkpoint journal: per-record outcomes, retry queue, checkpoints, runs, token cache.

See `store.Journal`; the process lock is in `lock`, the file format in `schema`.
"""

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

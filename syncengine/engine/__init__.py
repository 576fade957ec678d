"""The pipeline of one pass, in the order a change travels through it.

::

    intake ─▶ replay ─▶ admission ─▶ chunker ─▶ senders ─▶ CRM
    (journal pending,  (already    (watermark,  (coalesce,  (one chunk
     then the feed)     settled?)   read counts) ≤100)       each)
                                                               │
    journal ◀── flusher ◀── recorder ◀── outcomes ◀────────────┘
    (group commit)         (rows + checkpoint)

`dispatcher` owns the loop that moves changes between the stages; `settings`
holds its knobs; `retry_queue` the records waiting for a retry; `watermark`
and `read_times` turn finished positions into the checkpoint and the sync lag.
Everything outside this package uses only the names below.
"""

from syncengine.engine.dispatcher import Engine
from syncengine.engine.recorder import PassCounts
from syncengine.engine.settings import EngineSettings

__all__ = ["Engine", "EngineSettings", "PassCounts"]

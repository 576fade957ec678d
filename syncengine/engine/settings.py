"""The knobs of one engine pass, in one frozen value.

`runner` builds them from the config (`engine_settings`, and
`daemon_settings` for follow mode); the engine only reads them. Units are in
the names; each default says why it is what it is where that is not obvious.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """The knobs of one pass, taken from the config by `runner`."""

    module: str
    workers: int = 10
    max_attempts: int = 8
    retry_base_s: float = 1.0
    retry_cap_s: float = 60.0
    grace_s: float = 30.0
    linger_s: float = 0.05
    flush_interval_s: float = 0.1
    duplicate_check_fields: tuple[str, ...] | None = None
    apply_feature_execution: tuple[str, ...] = ()
    #: Changes the chunker may hold; the reader waits beyond this. One round
    #: of full chunks (workers x 100) keeps every sender fed; more only
    #: widens the window in which repeated changes coalesce, at a cost: each
    #: change is touched again at every stage, and the fewer are alive between
    #: reading and journaling, the more of them are still in the CPU's cache.
    #: Measured on the overhead benchmark: 4,000 here and 8 batches in the
    #: intake queue made the engine 10 % slower than 1,000 and 2.
    max_buffered: int = 1000
    #: Feed batches read ahead in the intake queue: one being taken in while
    #: the next is read.
    intake_batches: int = 2
    #: Daemon mode: follow the feed as it grows, checking every this many
    #: seconds; None for a pass that ends at the feed's current end.
    follow_poll_interval_s: float | None = None
    #: On a stop, send what was already read (within `grace_s`) before ending.
    drain_on_stop: bool = False
    #: Daemon mode: how often the journal is asked for records put back in
    #: line by `syncengine retry` while the daemon runs.
    redrive_interval_s: float = 10.0
    #: Daemon mode: how long a change may wait for a record it references
    #: (`$ref`) to get a CRM id before it fails `UNRESOLVED_REFERENCE`. A
    #: `run` waits until nothing else is left to do instead.
    reference_wait_s: float = 300.0
    #: `[crm] skip_unchanged`: keep digests of what the CRM accepted, per record...
    track_unchanged: bool = False
    #: ...and leave unsent a change whose every field the CRM holds already
    #: (False with `run --full`, which sends everything and keeps the digests).
    skip_unchanged: bool = False

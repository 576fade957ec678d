"""The values that flow through the pipeline: changes in, outcomes out.

A `Change` is one record write read from a feed (or re-driven from the
journal); a `Chunk` is what one request carries; a `RecordOutcome` is what the
CRM (or the engine, for bad input) said about one record. They are plain data
so that policy modules (chunker, classification, retry) stay pure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

#: A CRM record body: field API names to JSON values (plus `id` and `$` keys).
Record = dict[str, Any]

#: Where to resume a feed: a byte offset for files, a cursor value for tables.
Cursor = int | str

#: Most records one write request may carry (crm-api.md §1.1).
MAX_CHUNK_RECORDS = 100


class Operation(enum.StrEnum):
    """The write the CRM is asked to perform for a record."""

    UPDATE = "update"
    UPSERT = "upsert"
    INSERT = "insert"
    DELETE = "delete"


class Verdict(enum.StrEnum):
    """What the engine does with one record after a response (design.md, taxonomy)."""

    SYNCED = "synced"  # the CRM said SUCCESS for this very change
    REJECT = "reject"  # permanent: journal as failed with code, message, details
    RETRY = "retry"  # transient: resend later with backoff; counts as an attempt
    WAIT = "wait"  # not sent: a `$ref` names a record with no CRM id yet (engine.references)
    REGROUP = "regroup"  # not sent: goes out with others in a fuller chunk (engine.resolver)


class RecordState(enum.StrEnum):
    """A record's state in the journal."""

    PENDING = "pending"
    SYNCED = "synced"
    FAILED = "failed"


@dataclass(slots=True, unsafe_hash=True)
class SourcePosition:
    """Where a change sits in its feed.

    `ordinal` counts changes in one read of the feed (0, 1, 2, ...) so the
    checkpoint can advance to a low watermark; `resume_after` is what the feed
    seeks to in order to continue *after* this change (byte offset past the
    line, or the row's cursor value); `display` is what users see: the 1-based
    line number for files, the cursor value for tables. `generation` names
    the file a file feed's position lies in (`sources.generation`): offsets
    and line numbers of one file say nothing about a later file at the same
    path. None for table feeds, whose cursor never starts over. Treat it as
    immutable; it is not frozen only because one is made per feed line and a
    frozen dataclass costs three times as much to build.
    """

    ordinal: int
    resume_after: Cursor
    display: int | str
    generation: str | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a feed resumes: just after the position it names.

    `resume_after` is what the source seeks past (a byte offset for files, a
    cursor value for tables); `display` is what users see for that position
    (the 1-based line number for files, the cursor value for tables), and lets
    a file source continue its line numbering without re-reading.
    `generation` is the fingerprint of the file the position lies in (None
    for table feeds, and for checkpoints journaled before files had one): a
    file at the path with another fingerprint is a new file, read from its
    start, and no position of the old one applies to it.
    """

    resume_after: Cursor
    display: int | str
    generation: str | None = None


@dataclass(frozen=True, slots=True)
class BadInput:
    """A feed line or row that cannot be sent; it becomes a `failed` record."""

    position: SourcePosition
    reason: str
    code: str = "BAD_INPUT"
    record_id: str | None = None
    module: str | None = None


@dataclass(slots=True)
class Change:
    """One record write, possibly several feed changes coalesced into one.

    `key` orders and coalesces changes to the same CRM record: module plus
    record id (update) or plus the duplicate-check value (upsert); None when
    the record has no identity yet (a plain insert), which is never merged.
    `positions` lists every feed position folded into this change, so each is
    marked finished when the change is. `attempts` counts sends that started.

    A change can also carry the owed state of an earlier, rejected change to
    the same record (`engine.owed`): `earlier_positions` then holds the
    display positions of the changes folded in whose feed positions a journal
    row already settled, and `field_positions` which change supplied each
    field's value. Both stay None for the common change that folds nothing.

    `source_key` is the source's own name for the record (the envelope's
    `key`, the `[source] key` column): the change's `key` is then built from
    it, and the CRM id it maps to is looked up when the change is sent
    (`engine.references`). `compared` is set once `skip_unchanged` found the
    change differs from what the CRM holds, so it is not compared again.
    """

    module: str
    operation: Operation
    record: Record
    key: str | None
    positions: list[SourcePosition] = field(default_factory=list)
    trigger: tuple[str, ...] | None = None
    attempts: int = 0
    earlier_positions: list[int | str] | None = None
    field_positions: dict[str, int | str] | None = None
    source_key: str | None = None
    compared: bool = False

    @property
    def record_id(self) -> str | None:
        """The CRM id the change targets, as a string, when it has one."""
        value = self.record.get("id")
        return None if value is None else str(value)

    @property
    def owed_positions(self) -> list[int | str]:
        """Every position this change still owes the CRM (display form), oldest first.

        Positions a journal row already settled (a rejected change folded in)
        come first, then the feed positions the change carries.
        """
        earlier = self.earlier_positions or []
        return [*earlier, *(position.display for position in self.positions)]

    @property
    def has_special_keys(self) -> bool:
        """True when the record carries `$` keys (such as `$append_values`).

        Such changes are not idempotent by intent, so they are never merged
        blindly with a neighbour (design.md invariant 3).
        """
        return any(name.startswith("$") for name in self.record)


@dataclass(frozen=True, slots=True)
class ChunkGroup:
    """Records of one request must share module, operation and trigger."""

    module: str
    operation: Operation
    trigger: tuple[str, ...] | None


@dataclass(slots=True)
class Chunk:
    """Up to `MAX_CHUNK_RECORDS` changes sent in one request."""

    group: ChunkGroup
    changes: list[Change]
    #: Set when the chunk went out through the id map (`engine.resolver`): only
    #: then can its answers teach the map anything.
    resolved: bool = False


@dataclass(slots=True)
class RecordOutcome:
    """What became of one record in one request.

    `code` is the CRM's code (`SUCCESS`, `INVALID_DATA`, ...) or the engine's
    own for failures no CRM reported (`TIMEOUT`, `CONNECTION_ERROR`,
    `BAD_RESPONSE`, `BAD_INPUT`). `crm_id` is the id from a success's details,
    which is how an insert learns its new record's id. Treat it as
    immutable (not frozen for speed: one is made per record answered).
    """

    verdict: Verdict
    code: str
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    crm_id: str | None = None

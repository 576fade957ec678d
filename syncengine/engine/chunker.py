"""Coalescing changes into chunks while keeping per-record order.

Sits between the source reader and the senders. It enforces design.md
invariant 3: for one record (one `Change.key`), changes reach the CRM in feed
order and at most one request carrying that record is in flight. A change to
a record that is still waiting merges into it (later field values win); one
that arrives while its record is in flight waits behind it in a per-key FIFO.
It cuts chunks of at most `max_records` changes of one `ChunkGroup`, because a
request carries one module, one operation and one trigger list.

A change the CRM rejected leaves its owed state behind (`fail`): the next
change to its record absorbs it (`engine.owed`), whether it is already
waiting or arrives later, so a later success never hides the rejection. The
owed states of records rejected in earlier passes live in the journal: a
change to one of them is parked until `owed_loaded` hands its owed state in.

Pure and synchronous: the pipeline drives it (`add`, `pop_ready`, `complete`,
`retry`) and owns every await; per-change cost is a few dict operations.
"""

from __future__ import annotations

from collections import deque

from syncengine.engine.owed import absorb_owed, note_merge
from syncengine.model import MAX_CHUNK_RECORDS, Change, Chunk, ChunkGroup, Operation

_GroupKey = tuple[str, Operation, tuple[str, ...] | None]


def can_merge(held: Change, newer: Change) -> bool:
    """True when `newer` may be folded into `held` without changing what is sent.

    Both must belong to the same request group, and neither may carry `$`
    keys: those are not plain "last value wins" fields (design.md invariant 3).
    """
    return (
        held.module == newer.module
        and held.operation is newer.operation
        and held.trigger == newer.trigger
        and not held.has_special_keys
        and not newer.has_special_keys
    )


def merge_into(held: Change, newer: Change) -> None:
    """Fold `newer` into `held`: later field values win, positions concatenate."""
    note_merge(held, newer)
    held.record.update(newer.record)
    held.positions.extend(newer.positions)


class Chunker:
    """Holds changes until they can be sent, and knows which records are in flight.

    `add` takes ownership of the change: it may be merged into (its record
    and positions mutated) until it is handed out by `pop_ready`. Every
    change handed out must come back once, through `complete` (done, for
    good or bad) or `retry` (send it again).
    """

    __slots__ = (
        "_buffered",
        "_groups",
        "_held",
        "_in_flight",
        "_max",
        "_max_owed",
        "_mergeable",
        "_open",
        "_out",
        "_owed",
        "_owed_elsewhere",
        "_parked",
        "_ready",
        "_waiting",
        "merged",
        "to_load",
    )

    def __init__(
        self,
        *,
        max_records: int = MAX_CHUNK_RECORDS,
        owed_elsewhere: set[str] | None = None,
        max_owed_in_memory: int = 10_000,
    ) -> None:
        if not 1 <= max_records <= MAX_CHUNK_RECORDS:
            raise ValueError(f"max_records must be 1..{MAX_CHUNK_RECORDS}, got {max_records}")
        self._max = max_records
        self._groups: dict[_GroupKey, ChunkGroup] = {}
        self._open: dict[_GroupKey, list[Change]] = {}
        self._ready: deque[Chunk] = deque()
        # key -> the change holding it while buffered and not yet handed out
        self._mergeable: dict[str, Change] = {}
        # keys handed out and not completed (a retried change keeps its key here)
        self._in_flight: set[str] = set()
        # key -> changes waiting, in feed order, behind the change holding the key
        self._waiting: dict[str, deque[Change]] = {}
        # id(change) -> change, for every change handed out and not yet returned
        self._out: dict[int, Change] = {}
        # id(change) -> change, for handed-out changes held back (`hold`)
        self._held: dict[int, Change] = {}
        self._buffered = 0
        # key -> the owed state of a record rejected in this pass, oldest first
        self._owed: dict[str, Change] = {}
        self._max_owed = max_owed_in_memory
        # keys of rejected records whose owed state is only in the journal
        self._owed_elsewhere: set[str] = owed_elsewhere if owed_elsewhere is not None else set()
        # keys whose changes wait for their owed state to be loaded
        self._parked: set[str] = set()
        #: Keys whose owed state the engine must load from the journal (`owed_loaded`).
        self.to_load: list[str] = []
        #: Changes folded into a waiting change to their record (each saved a record's send).
        self.merged = 0

    @property
    def buffered(self) -> int:
        """Changes held (in chunks not yet handed out, or waiting): for backpressure."""
        return self._buffered

    @property
    def in_flight(self) -> int:
        """Changes handed out and not yet completed or retried."""
        return len(self._out)

    @property
    def in_flight_keys(self) -> int:
        """Record keys in flight, counting retried changes not yet re-sent."""
        return len(self._in_flight)

    @property
    def idle(self) -> bool:
        """True when nothing is buffered, in flight or held."""
        return self._buffered == 0 and not self._out and not self._held

    def holds(self, key: str) -> bool:
        """True when a change to `key` is buffered, waiting or in flight here."""
        return key in self._in_flight or key in self._mergeable or key in self._waiting

    def owes(self, key: str) -> bool:
        """True when the record `key` was rejected and its owed state is kept here."""
        return key in self._owed

    def add(self, change: Change) -> None:
        """Take a change read from the feed (feed order matters, see the module docstring)."""
        key = change.key
        if key is not None:
            if key in self._owed_elsewhere:
                self._park(key, change)
                return
            owed = self._owed.pop(key, None)
            if owed is not None:
                absorb_owed(owed, change)
            queue = self._waiting.get(key)
            if queue is not None:
                self._add_behind(queue, change)
                return
            held = self._mergeable.get(key)
            if held is not None and can_merge(held, change):
                merge_into(held, change)
                self.merged += 1
                return
            if held is not None or key in self._in_flight:
                self._waiting[key] = deque((change,))
                self._buffered += 1
                return
            self._mergeable[key] = change
        self._place(change)

    def add_many(self, changes: list[Change]) -> None:
        """`add` for each of `changes`, in order; a change to a record not held here goes short.

        The bulk of a migration is changes to records nothing else touches:
        for those this is one membership test per map and an append.
        """
        waiting, mergeable, in_flight = self._waiting, self._mergeable, self._in_flight
        open_chunks = self._open
        owed, elsewhere = self._owed, self._owed_elsewhere
        for change in changes:
            key = change.key
            if (
                key is None
                or key in waiting
                or key in mergeable
                or key in in_flight
                or key in owed
                or key in elsewhere
            ):
                self.add(change)
                continue
            mergeable[key] = change
            changes_open = open_chunks.get((change.module, change.operation, change.trigger))
            if changes_open is None or len(changes_open) + 1 >= self._max:
                self._place(change)  # opens or closes a chunk
            else:
                changes_open.append(change)
                self._buffered += 1

    def pop_ready(self, *, flush: bool = False) -> list[Chunk]:
        """Hand out every full chunk, and with `flush` the partial ones too.

        Their keys become in flight until `complete` (or stay so through
        `retry`). Flush at the end of the feed or after the daemon's linger.
        """
        if flush:
            for group_key, changes in self._open.items():
                if changes:
                    self._ready.append(Chunk(self._groups[group_key], changes))
            self._open.clear()
        chunks = list(self._ready)
        self._ready.clear()
        for chunk in chunks:
            self._hand_out(chunk.changes)
        return chunks

    def complete(self, change: Change) -> None:
        """A handed-out change is finished: free its key for the oldest waiting change.

        Raises ValueError if the change is not currently handed out.
        """
        self._take_back(change)
        key = change.key
        if key is None:
            return
        self._in_flight.discard(key)
        self._release_next(key, owed=None)

    def fail(self, change: Change) -> None:
        """A handed-out change was rejected for good: the record keeps its owed state.

        The next change to the record, waiting now or arriving later, absorbs
        it and carries everything the record owes. Raises ValueError if the
        change is not currently handed out.
        """
        self._take_back(change)
        key = change.key
        if key is None:
            return  # a record without identity (a plain insert) has no later changes
        self._in_flight.discard(key)
        if not self._release_next(key, owed=change):
            self._remember_owed(key, change)

    def forget_owed(self, key: str) -> None:
        """The record's owed state came back from the journal (`syncengine retry`): drop ours."""
        self._owed.pop(key, None)
        self._owed_elsewhere.discard(key)

    def owed_loaded(self, key: str, owed: Change | None) -> None:
        """The owed state of a parked record, read from the journal (None: it owes nothing)."""
        self._parked.discard(key)
        self._release_next(key, owed=owed)

    def _park(self, key: str, change: Change) -> None:
        """Holds `change` until its record's owed state is loaded; later changes queue behind."""
        self._owed_elsewhere.discard(key)
        self._parked.add(key)
        self._waiting[key] = deque((change,))
        self._buffered += 1
        self.to_load.append(key)

    def _remember_owed(self, key: str, change: Change) -> None:
        owed = self._owed
        owed[key] = change
        if len(owed) > self._max_owed:
            # Memory stays bounded: the oldest owed state is in the journal (the
            # engine made it durable before it could be absorbed) and is read
            # back if its record changes again.
            oldest = next(iter(owed))
            del owed[oldest]
            self._owed_elsewhere.add(oldest)

    def _release_next(self, key: str, *, owed: Change | None) -> bool:
        """The oldest change waiting for `key` (absorbing `owed`) may go; False if none waits."""
        queue = self._waiting.get(key)
        if queue is None:
            return False
        successor = queue.popleft()
        if not queue:
            del self._waiting[key]
        self._buffered -= 1
        if owed is not None:
            absorb_owed(owed, successor)
        self._mergeable[key] = successor
        self._place(successor)
        return True

    def complete_many(self, changes: list[Change]) -> None:
        """`complete` for each of `changes` (a chunk's worth): the same, with less overhead.

        Raises ValueError at the first change not currently handed out.
        """
        out, waiting, in_flight = self._out, self._waiting, self._in_flight
        for change in changes:
            key = change.key
            if key is None or key in waiting:
                self.complete(change)
            elif out.pop(id(change), None) is None:
                raise ValueError(f"change for key {key!r} is not handed out")
            else:
                in_flight.discard(key)

    @property
    def placeable(self) -> int:
        """Changes in chunks (open or ready): what a flush would hand out now."""
        return sum(len(changes) for changes in self._open.values()) + sum(
            len(chunk.changes) for chunk in self._ready
        )

    @property
    def loading(self) -> bool:
        """True while changes wait for owed states being read from the journal."""
        return bool(self._parked) or bool(self.to_load)

    def hold(self, change: Change) -> None:
        """A handed-out change could not be sent yet (it waits for a reference).

        Its key stays in flight, so later changes to its record queue behind
        it, until `resume` puts it back into a chunk or `fail` ends it.
        Raises ValueError if the change is not currently handed out.
        """
        self._take_back(change)
        self._held[id(change)] = change

    def resume(self, change: Change) -> None:
        """A held change may be sent: it rejoins an open chunk (its key stays in flight)."""
        if self._held.pop(id(change), None) is None:
            raise ValueError(f"change for key {change.key!r} is not held")
        self._place(change)

    def fail_held(self, change: Change) -> None:
        """A held change fails for good (as `fail`)."""
        if self._held.pop(id(change), None) is None:
            raise ValueError(f"change for key {change.key!r} is not held")
        self._out[id(change)] = change
        self.fail(change)

    def retry(self, change: Change) -> None:
        """A handed-out change must be sent again: it rejoins an open chunk.

        Its key stays in flight, so newer changes keep waiting behind it and
        never merge into it (part of it may already be applied). Raises
        ValueError if the change is not currently handed out.
        """
        self._take_back(change)
        self._place(change)

    def _add_behind(self, queue: deque[Change], change: Change) -> None:
        tail = queue[-1]
        if can_merge(tail, change):
            merge_into(tail, change)
            self.merged += 1
        else:
            queue.append(change)
            self._buffered += 1

    def _place(self, change: Change) -> None:
        group_key = (change.module, change.operation, change.trigger)
        changes = self._open.get(group_key)
        if changes is None:
            if group_key not in self._groups:
                self._groups[group_key] = ChunkGroup(*group_key)
            changes = self._open[group_key] = []
        changes.append(change)
        self._buffered += 1
        if len(changes) >= self._max:
            self._ready.append(Chunk(self._groups[group_key], changes))
            del self._open[group_key]

    def _hand_out(self, changes: list[Change]) -> None:
        mergeable = self._mergeable
        in_flight = self._in_flight
        out = self._out
        for change in changes:
            key = change.key
            if key is not None:
                mergeable.pop(key, None)
                in_flight.add(key)
            out[id(change)] = change
        self._buffered -= len(changes)

    def _take_back(self, change: Change) -> None:
        if self._out.pop(id(change), None) is None:
            raise ValueError(f"change for key {change.key!r} is not handed out")

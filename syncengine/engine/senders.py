"""The senders: tasks that each take one chunk, ask the CRM, and hand the outcomes back.

They only call the writer (the CRM client); a chunk naming records by source
key is resolved against the id map first (`engine.references`). The dispatcher hands them chunks
(`hand`) and collects the answers (`take_answered`) on its own turns, so the
chunker, the watermark and the journal stay with one task and need no locks.
A chunk handed out counts as in flight until its answer is taken back, which
is what bounds the records sent but not yet journaled (design.md invariant 6).
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

from syncengine.crm.client import WriteRequest
from syncengine.engine.resolver import Resolver
from syncengine.model import Chunk, Operation, Record, RecordOutcome


class Writer(Protocol):
    """What the senders need of the CRM client."""

    async def write(self, request: WriteRequest) -> list[RecordOutcome]:
        """One outcome per record of `request`, in order."""
        ...


class Senders:
    """`workers` sender tasks sharing one hand-over queue; owned by the engine."""

    def __init__(
        self,
        writer: Writer,
        *,
        workers: int,
        apply_feature_execution: tuple[str, ...] = (),
        duplicate_check_fields: tuple[str, ...] | None = None,
        on_answer: Callable[[], None],
        on_fatal: Callable[[BaseException], None],
        resolver: Resolver | None = None,
    ) -> None:
        self._writer = writer
        self._resolver = resolver
        self.workers = workers
        self._apply_feature_execution = apply_feature_execution
        self._duplicate_check_fields = duplicate_check_fields
        self._on_answer = on_answer
        self._on_fatal = on_fatal
        self._queue: asyncio.Queue[Chunk | None] = asyncio.Queue()
        self._answered: deque[tuple[Chunk, list[RecordOutcome]]] = deque()
        #: Chunks handed out and not yet taken back, answered or not.
        self.handed_out = 0
        #: Records in those chunks.
        self.records = 0

    def start(self, group: asyncio.TaskGroup | None = None) -> list[asyncio.Task[None]]:
        """The sender tasks (in `group` when given); they end after `stop`, or when the
        writer raises: a `FatalError`, or anything unexpected, goes to `on_fatal`."""
        spawn = asyncio.create_task if group is None else group.create_task
        return [spawn(self._loop(), name=f"engine.send.{index}") for index in range(self.workers)]

    @property
    def has_room(self) -> bool:
        """True while a sender would take a chunk at once (one chunk per sender)."""
        return self.handed_out < self.workers

    @property
    def unanswered(self) -> int:
        """Chunks handed out whose answer has not come back."""
        return self.handed_out - len(self._answered)

    def hand(self, chunk: Chunk) -> None:
        """Gives `chunk` to the next free sender; each of its changes starts an attempt."""
        for change in chunk.changes:
            change.attempts += 1  # an attempt counts when it starts
        self.handed_out += 1
        self.records += len(chunk.changes)
        self._queue.put_nowait(chunk)

    def take_answered(self) -> Iterator[tuple[Chunk, list[RecordOutcome]]]:
        """The chunks answered since the last call, each with one outcome per change."""
        answered = self._answered
        while answered:
            chunk, outcomes = answered.popleft()
            self.handed_out -= 1
            self.records -= len(chunk.changes)
            yield chunk, outcomes

    def stop(self) -> None:
        """Each sender ends after its current chunk (one stop sentinel per sender)."""
        for _ in range(self.workers):
            self._queue.put_nowait(None)

    async def _loop(self) -> None:
        while (chunk := await self._queue.get()) is not None:
            try:
                if self._resolver is not None and self._resolver.wants(chunk):
                    chunk.resolved = True
                    outcomes = await self._resolver.send(
                        chunk, functools.partial(self._request_of, chunk), self._writer.write
                    )
                else:
                    outcomes = await self._writer.write(self._request(chunk))
            except Exception as exc:  # noqa: BLE001 - FatalError or a bug: the pass must end on it
                self._on_fatal(exc)
                return
            self._answered.append((chunk, outcomes))
            self._on_answer()

    def _request(self, chunk: Chunk) -> WriteRequest:
        return self._request_of(
            chunk, chunk.group.operation, [change.record for change in chunk.changes]
        )

    def _request_of(
        self, chunk: Chunk, operation: Operation, records: list[Record]
    ) -> WriteRequest:
        return WriteRequest(
            module=chunk.group.module,
            operation=operation,
            records=records,
            trigger=chunk.group.trigger,
            apply_feature_execution=self._apply_feature_execution,
            duplicate_check_fields=self._duplicate_check_fields,
        )

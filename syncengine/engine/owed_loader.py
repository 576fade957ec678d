"""Reads back the owed state of records rejected earlier, when they change again.

The owed state of a record rejected in an earlier pass (or one whose owed
state the chunker let go of, to keep memory bounded) lives only in the
journal. A change to such a record is parked in the chunker until this task
has read the owed state; the dispatcher then lets the change absorb it
(`Chunker.owed_loaded`). Reads are batched: every key asked for while a read
is under way goes in the next one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Protocol

from syncengine.model import Change


class OwedStore(Protocol):
    """What the loader needs of the journal."""

    async def owed_changes(self, keys: Sequence[str]) -> dict[str, Change]:
        """For each key still failed or pending, the change it owes."""
        ...


class OwedLoader:
    """One task per pass; the dispatcher asks (`request`) and collects (`take_loaded`)."""

    def __init__(
        self,
        store: OwedStore,
        *,
        settle: Callable[[], Awaitable[None]],
        on_loaded: Callable[[], None],
    ) -> None:
        self._store = store
        self._settle = settle
        self._on_loaded = on_loaded
        self._wanted: list[str] = []
        self._asked = asyncio.Event()
        self._loaded: deque[tuple[str, Change | None]] = deque()
        #: Keys asked for and not yet taken back.
        self.outstanding = 0

    def request(self, keys: list[str]) -> None:
        """Reads the owed state of `keys` soon."""
        if keys:
            self._wanted.extend(keys)
            self.outstanding += len(keys)
            self._asked.set()

    def take_loaded(self) -> Iterator[tuple[str, Change | None]]:
        """Each key read since the last call, with its owed change (None: owes nothing)."""
        loaded = self._loaded
        while loaded:
            self.outstanding -= 1
            yield loaded.popleft()

    async def run(self) -> None:
        """The loader task: ends only by cancellation."""
        while True:
            await self._asked.wait()
            self._asked.clear()
            keys, self._wanted = self._wanted, []
            # Rows rejected in this pass must be durable before they are read.
            await self._settle()
            found = await self._store.owed_changes(keys)
            for key in keys:
                self._loaded.append((key, found.get(key)))
            self._on_loaded()

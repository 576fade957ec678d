"""A per-record value the pass learns from the CRM's answers, over what the journal holds.

The id map (`engine.references`) and the accepted-value digests
(`engine.unchanged`) are both read when a chunk is sent, and both change
when an answer comes back. The journal holds them only once the answer's
group commit is made, so what the pass learned is kept here, most recent
last, and wins over the journal; older entries are read from the journal.
`capacity` is far above the records a pass may have answered but not yet
journaled (the dispatcher's bound), so an entry the journal does not hold
yet is always still here. `None` means "known to be absent", so a deletion
learned in this pass is never undone by a journal read that began before it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

V = TypeVar("V")

#: Reads the values of some keys from the journal (keys it lacks are left out).
Loader = Callable[[list[str]], Awaitable[dict[str, V]]]


class KnownValues(Generic[V]):
    """Values by record key: learned in this pass, else read through `load`."""

    def __init__(self, load: Loader[V], *, capacity: int = 50_000) -> None:
        self._load = load
        self._capacity = capacity
        self._known: OrderedDict[str, V | None] = OrderedDict()

    def learn(self, key: str, value: V | None) -> None:
        """What an answer just taught: `key` now has `value` (None: none)."""
        known = self._known
        known[key] = value
        known.move_to_end(key)
        if len(known) > self._capacity:
            known.popitem(last=False)

    def get(self, key: str) -> tuple[bool, V | None]:
        """(whether `key` was learned in this pass, its value)."""
        if key in self._known:
            return True, self._known[key]
        return False, None

    async def lookup(self, keys: Iterable[str]) -> dict[str, V | None]:
        """The value of each of `keys` (None when it has none)."""
        found: dict[str, V | None] = {}
        missing: list[str] = []
        for key in keys:
            known, value = self.get(key)
            if known:
                found[key] = value
            else:
                missing.append(key)
        if missing:
            read = await self._load(missing)
            for key in missing:
                # Learned while the journal was read: newer than what it holds.
                known, value = self.get(key)
                found[key] = value if known else read.get(key)
        return found

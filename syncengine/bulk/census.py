"""The first read of the feed: how often each record occurs, and each group's bulk rows.

A record may go by bulk write only when the part of the feed the phase reads
holds one change for it (`eligibility`): the census notes, per journal key,
the group its one change could join, or that it cannot. Memory is one small
entry per distinct key of the part read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Final

from syncengine.model import Change, Operation

#: The key's change cannot go by bulk, or the key occurs more than once.
_NOT_BULK: Final = -1

Group = tuple[str, Operation]


class Census:
    """Counts the feed's keys; `group_of` tells which group a change of the second read joins."""

    def __init__(self, group_for: Callable[[Change], Group | None]) -> None:
        """`group_for` gives the group a change could join, or None when it cannot go."""
        self._group_for = group_for
        self._keys: dict[str, int] = {}
        self._groups: list[Group] = []
        self._index: dict[Group, int] = {}

    def note(self, change: Change) -> None:
        """Count one change of the feed (its key is set)."""
        assert change.key is not None
        if change.key in self._keys:
            self._keys[change.key] = _NOT_BULK
            return
        group = self._group_for(change)
        if group is None:
            self._keys[change.key] = _NOT_BULK
            return
        index = self._index.get(group)
        if index is None:
            index = self._index[group] = len(self._groups)
            self._groups.append(group)
        self._keys[change.key] = index

    def rows_by_group(self) -> dict[Group, int]:
        """Rows each group could send by bulk: its keys that occur once and can go."""
        counts = Counter(index for index in self._keys.values() if index != _NOT_BULK)
        return {self._groups[index]: count for index, count in sorted(counts.items())}

    def group_of(self, change: Change) -> Group | None:
        """The group of a change whose key the census saw once and found fit, else None."""
        index = self._keys.get(change.key or "", _NOT_BULK)
        return None if index == _NOT_BULK else self._groups[index]

"""The first read of the feed: how often each record occurs, and each group's bulk rows.

A record may go by bulk write only when the part of the feed the phase reads
holds one change for it (`eligibility`): the census notes, per journal key,
the group its one change could join, or that it cannot.

Memory is fixed, whatever the feed's size (design.md invariant 4): keys are
counted in a table of `SLOTS` one-byte counters indexed by the key's hash,
with the slot's group beside it (anonymous memory maps: untouched pages cost
nothing, so a small feed uses little of it). Two keys that share a slot both count as
occurring twice, so a collision only ever sends a record by the records API
(a few more credits), never a record that occurs twice by bulk write. With
2^25 slots (64 MiB), a million keys lose about 3 % of them to collisions.
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Callable
from typing import Final

from syncengine.model import Change, Operation

#: Counter slots: a power of two, so a hash's low bits index them.
SLOTS: Final = 1 << 25
#: A slot's counter saturates here: "more than one key or change".
_MANY: Final = 2

Group = tuple[str, Operation]


class Census:
    """Counts the feed's keys; `group_of` tells which group a change of the second read joins."""

    def __init__(self, group_for: Callable[[Change], Group | None], *, slots: int = SLOTS) -> None:
        """`group_for` gives the group a change could join, or None when it cannot go."""
        if slots & (slots - 1):
            raise ValueError("slots must be a power of two")
        self._group_for = group_for
        self._mask = slots - 1
        # Anonymous mappings: zero pages cost no memory until a key lands in them,
        # so a small migration does not pay for the table a large one needs.
        self._counts = mmap.mmap(-1, slots)
        #: The slot's group as its index + 1; 0 for none (the change cannot go).
        self._slot_groups = mmap.mmap(-1, slots)
        self._groups: list[Group] = []
        self._index: dict[Group, int] = {}
        self._rows: list[int] = []

    def note(self, change: Change) -> None:
        """Count one change of the feed (its key is set)."""
        assert change.key is not None
        slot = _slot(change.key, self._mask)
        count = self._counts[slot]
        if count >= _MANY:
            return
        if count == 1:  # a second change, or a second key in this slot: neither goes
            self._counts[slot] = _MANY
            held = self._slot_groups[slot]
            if held:
                self._rows[held - 1] -= 1
            return
        self._counts[slot] = 1
        group = self._group_for(change)
        if group is None:
            return
        index = self._index.get(group)
        if index is None:
            if len(self._groups) >= 255:
                return  # more groups than a byte names: the records API sends the rest
            index = self._index[group] = len(self._groups)
            self._groups.append(group)
            self._rows.append(0)
        self._slot_groups[slot] = index + 1
        self._rows[index] += 1

    def rows_by_group(self) -> dict[Group, int]:
        """Rows each group could send by bulk: its keys that occur once and can go."""
        return {group: rows for group, rows in zip(self._groups, self._rows, strict=True) if rows}

    def close(self) -> None:
        """Give the tables' memory back; the census answers nothing after this."""
        self._counts.close()
        self._slot_groups.close()

    def group_of(self, change: Change) -> Group | None:
        """The group of a change whose key the census saw once and found fit, else None."""
        slot = _slot(change.key or "", self._mask)
        held = self._slot_groups[slot]
        if self._counts[slot] != 1 or not held:
            return None
        return self._groups[held - 1]


def _slot(key: str, mask: int) -> int:
    """The key's slot: a stable hash (not Python's, which changes with each process), so
    a pass that resumes after a kill finds the same collisions as the pass it resumes."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & mask

"""The first read of the feed: how often each record occurs, and each group's bulk rows.

A record may go by bulk write only when the part of the feed the phase reads
holds one change for it (`eligibility`): the census notes, per journal key,
the group its one change could join, or that it cannot.

Memory is fixed, whatever the feed's size (design.md invariant 4): keys are
counted in one table of `SLOTS` bytes indexed by the key's hash, each byte
holding the slot's count (0, 1 or "more") in its low two bits and the group
its one change could join in the other six (an anonymous memory map:
untouched pages cost nothing, so a small feed uses little of it). Two keys
that share a slot both count as occurring twice, so a collision only ever
sends a record by the records API (a few more credits), never a record that
occurs twice by bulk write. With 2^25 slots (32 MiB), a million keys lose
about 3 % of them to collisions. Six bits name 63 groups (module, operation);
the changes of any further group go by the records API.
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Callable
from typing import Final

from syncengine.model import Change, Operation

#: Counter slots: a power of two, so a hash's low bits index them.
SLOTS: Final = 1 << 25
#: A slot's count saturates here: "more than one key or change".
_MANY: Final = 2
#: The low bits of a slot's byte hold its count, the rest its group's index + 1.
_COUNT_BITS: Final = 2
_COUNT_MASK: Final = (1 << _COUNT_BITS) - 1
#: Groups a slot's byte can name.
MAX_GROUPS: Final = 0xFF >> _COUNT_BITS

Group = tuple[str, Operation]


class Census:
    """Counts the feed's keys; `group_of` tells which group a change of the second read joins."""

    def __init__(self, group_for: Callable[[Change], Group | None], *, slots: int = SLOTS) -> None:
        """`group_for` gives the group a change could join, or None when it cannot go."""
        if slots & (slots - 1):
            raise ValueError("slots must be a power of two")
        self._group_for = group_for
        self._mask = slots - 1
        # An anonymous mapping: zero pages cost no memory until a key lands in them,
        # so a small migration does not pay for the table a large one needs.
        self._slots = mmap.mmap(-1, slots)
        self._groups: list[Group] = []
        self._index: dict[Group, int] = {}
        self._rows: list[int] = []

    def note(self, change: Change) -> None:
        """Count one change of the feed (its key is set)."""
        assert change.key is not None
        slot = _slot(change.key, self._mask)
        value = self._slots[slot]
        count = value & _COUNT_MASK
        if count >= _MANY:
            return
        if count == 1:  # a second change, or a second key in this slot: neither goes
            self._slots[slot] = _MANY
            held = value >> _COUNT_BITS
            if held:
                self._rows[held - 1] -= 1
            return
        self._slots[slot] = 1
        group = self._group_for(change)
        if group is None:
            return
        index = self._index.get(group)
        if index is None:
            if len(self._groups) >= MAX_GROUPS:
                return  # more groups than a slot names: the records API sends the rest
            index = self._index[group] = len(self._groups)
            self._groups.append(group)
            self._rows.append(0)
        self._slots[slot] = (index + 1) << _COUNT_BITS | 1
        self._rows[index] += 1

    def rows_by_group(self) -> dict[Group, int]:
        """Rows each group could send by bulk: its keys that occur once and can go."""
        return {group: rows for group, rows in zip(self._groups, self._rows, strict=True) if rows}

    def close(self) -> None:
        """Give the table's memory back; the census answers nothing after this."""
        self._slots.close()

    @property
    def closed(self) -> bool:
        """True once `close` gave the table back."""
        return self._slots.closed

    def group_of(self, change: Change) -> Group | None:
        """The group of a change whose key the census saw once and found fit, else None."""
        value = self._slots[_slot(change.key or "", self._mask)]
        held = value >> _COUNT_BITS
        if value & _COUNT_MASK != 1 or not held:
            return None
        return self._groups[held - 1]


def _slot(key: str, mask: int) -> int:
    """The key's slot: a stable hash (not Python's, which changes with each process), so
    a pass that resumes after a kill finds the same collisions as the pass it resumes."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & mask

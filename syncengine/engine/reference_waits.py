"""Changes waiting for a record they reference to get a CRM id.

A change whose `$ref` names a record the id map does not know yet is held
back (`Chunker.hold`), not failed: in a migration of Accounts and Contacts in
any order, the Account a Contact names may simply come later in the feed. It
goes out again (`Chunker.resume`) as soon as the referenced record is
journaled with an id. A `run` gives up on what still waits once nothing else
can happen (the feed is read and every other change settled); the daemon,
whose feed never ends, gives up after `max_wait_s`. Giving up fails the
change with `UNRESOLVED_REFERENCE`, naming the field and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from syncengine.model import Change, RecordOutcome, Verdict


@dataclass(slots=True)
class _Waiting:
    change: Change
    outcome: RecordOutcome
    since: float


class ReferenceWaits:
    """Held changes by the key of the record they wait for; owned by the dispatcher."""

    def __init__(self) -> None:
        self._by_key: dict[str, list[_Waiting]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, key: str, change: Change, outcome: RecordOutcome, *, now: float) -> None:
        """`change` waits for the record `key` (`outcome` says which field and key)."""
        self._by_key.setdefault(key, []).append(_Waiting(change, outcome, now))
        self._count += 1

    def release(self, key: str) -> list[Change]:
        """The changes that waited for `key`, which now has an id."""
        waiting = self._by_key.pop(key, None)
        if not waiting:
            return []
        self._count -= len(waiting)
        return [entry.change for entry in waiting]

    def give_up(self, *, older_than: float | None = None) -> list[tuple[Change, RecordOutcome]]:
        """Every waiting change (or those waiting since before `older_than`), with the
        failure it ends with, oldest first per key."""
        out: list[tuple[Change, RecordOutcome]] = []
        for key in list(self._by_key):
            entries = self._by_key[key]
            expired = [e for e in entries if older_than is None or e.since <= older_than]
            if not expired:
                continue
            kept = [e for e in entries if older_than is not None and e.since > older_than]
            if kept:
                self._by_key[key] = kept
            else:
                del self._by_key[key]
            self._count -= len(expired)
            out.extend((e.change, replace(e.outcome, verdict=Verdict.REJECT)) for e in expired)
        return out

    def oldest_since(self) -> float | None:
        """When the longest-waiting change began to wait (None when none waits)."""
        return min(
            (entry.since for entries in self._by_key.values() for entry in entries), default=None
        )

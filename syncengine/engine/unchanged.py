"""Skipping what the CRM already has (`[crm] skip_unchanged`).

The most common cron set-up dumps a whole table and syncs it; every
unchanged row would cost credits again and fire the org's workflows again.
So, per record, the journal keeps a digest of each field value the CRM last
accepted from syncengine, and a change whose every field matches is
journaled as synced with code `UNCHANGED` and never sent. A change with any
field that differs is sent whole, as usual.

The digests are 4 bytes of the field name and 8 of the value's canonical
JSON (BLAKE2b), kept as hex in the record's journal row. They are written
only with the row of a send the CRM accepted, and every other write of the
row clears them (a failure, a retry, a synced row while the setting is off),
so they never describe anything but the CRM's state after syncengine's last
accepted send. What they cannot know: a person editing the record in the
CRM. That value stays until the source changes the field (README); `run
--full` sends everything regardless.

Pure functions over plain data, so the rule is tested without I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from syncengine.model import Change, Operation, Record

#: Fields never compared: the record's own id, and `$` keys such as `$append_values`.
_NOT_FIELDS = frozenset({"id"})

Digests = dict[str, str]  # name digest (hex) -> value digest (hex)


def field_digests(record: Record) -> Digests:
    """The digest of each field of `record` (its id and `$` keys left out)."""
    digests: Digests = {}
    for name, value in record.items():
        if name in _NOT_FIELDS or name.startswith("$"):
            continue
        name_digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
        try:
            encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
        except TypeError:  # a value the CRM could not take either: compared by its text
            encoded = repr(value).encode()
        digests[name_digest] = hashlib.blake2b(encoded, digest_size=8).hexdigest()
    return digests


def encode(digests: Digests) -> str:
    """The journal's text for `digests`: name and value digests, sorted, concatenated."""
    return "".join(name + value for name, value in sorted(digests.items()))


def decode(text: str) -> Digests:
    """`encode`'s inverse; an entry that is not 24 hex digits long is dropped."""
    return {text[i : i + 8]: text[i + 8 : i + 24] for i in range(0, len(text) - 23, 24)}


def may_skip(change: Change) -> bool:
    """True when `change` may be found unchanged: it writes fields of a known record.

    Never a delete, never a plain insert (each creates a record), never a
    change with `$` keys (an append is not a value to compare), never a
    change without fields.
    """
    if change.operation is Operation.DELETE or change.key is None or change.key[0] == "@":
        return False
    if change.has_special_keys:
        return False
    return any(name not in _NOT_FIELDS for name in change.record)


def is_unchanged(wire: Record, accepted: Digests | None) -> bool:
    """True when the CRM already holds every field value `wire` would send."""
    if not accepted:
        return False
    sent = field_digests(wire)
    return bool(sent) and all(accepted.get(name) == value for name, value in sent.items())


#: The code a change the CRM already holds is journaled with (state `synced`).
UNCHANGED = "UNCHANGED"


@dataclass(frozen=True, slots=True)
class Sent:
    """What one send of a change, if accepted, tells about the CRM's values."""

    key: str
    accepted: Digests | None  # what the CRM held before, as far as the journal knows
    sent: Digests | None  # the sent fields' digests; None when nothing was sent
    operation: Operation  # as sent (a keyed insert of a mapped key is an update)

    def after(self, details: dict[str, object]) -> str | None:
        """The journal's digests once the CRM said SUCCESS with `details` (None: unknown)."""
        if self.sent is None:
            return None if self.accepted is None else encode(self.accepted)
        created = self.operation is Operation.INSERT or details.get("action") == "insert"
        merged = self.sent if created or not self.accepted else {**self.accepted, **self.sent}
        return encode(merged)

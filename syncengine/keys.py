"""The key of a change: what orders and coalesces its writes, and names its journal row.

One place builds it, because journals keep it: an update is known by its
record id (`Leads:123`), an upsert without id by its first duplicate-check
value (`Leads:Email=a@b.c`), a record the source names by a key of its own
by that key (`Accounts/acme-42`), and a record with no identity yet (a plain
insert, a bad line) by where it sits in its feed (`@jsonl:/feeds/x.jsonl#12`,
and for a file feed which file: `@jsonl:/feeds/x.jsonl@3f2a9c0b1d4e#12`).
"""

from __future__ import annotations

import hashlib


def record_key(module: str, record_id: str) -> str:
    """The key of a change to the record `record_id` of `module`."""
    return f"{module}:{record_id}"


def source_record_key(module: str, source_key: str) -> str:
    """The key of a change to the record the source calls `source_key` in `module`.

    Module API names hold no `/`, so the first `/` splits it back
    (`split_source_record_key`) and no record or duplicate key looks alike.
    """
    return f"{module}/{source_key}"


def split_source_record_key(key: str) -> tuple[str, str] | None:
    """(module, source key) of a `source_record_key`; None for any other key."""
    slash = key.find("/")
    if slash <= 0 or key[0] == "@":
        return None
    colon = key.find(":")
    if 0 <= colon < slash:
        return None
    return key[:slash], key[slash + 1 :]


def duplicate_key(module: str, field: str, value: object) -> str:
    """The key of an upsert that the CRM matches on `field` = `value`."""
    return f"{module}:{field}={value}"


def position_key(
    source_id: str | None, display: int | str, *, generation: str | None = None
) -> str:
    """The key of a change with no identity: its feed, the file it was read in, its position.

    A file replaced at its path (`sources.generation`) numbers its lines from
    1 again: without the file in the key, line 12 of a new export would take
    over the journal row of line 12 of the old one (hiding that line's
    failure, or merging two unrelated inserts). A pass always names the feed;
    without one (a change built outside a pass) the key is the position alone,
    as journals have long stored it.
    """
    if source_id is None:
        return f"@{display}"
    if generation is None:
        return f"@{source_id}#{display}"
    file_id = hashlib.blake2b(generation.encode(), digest_size=6).hexdigest()
    return f"@{source_id}@{file_id}#{display}"

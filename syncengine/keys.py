"""The key of a change: what orders and coalesces its writes, and names its journal row.

One place builds it, because journals keep it: an update is known by its
record id (`Leads:123`), an upsert without id by its first duplicate-check
value (`Leads:Email=a@b.c`), and a record with no identity yet (a plain
insert, a bad line) by where it sits in its feed (`@jsonl:/feeds/x.jsonl#12`).
"""

from __future__ import annotations


def record_key(module: str, record_id: str) -> str:
    """The key of a change to the record `record_id` of `module`."""
    return f"{module}:{record_id}"


def duplicate_key(module: str, field: str, value: object) -> str:
    """The key of an upsert that the CRM matches on `field` = `value`."""
    return f"{module}:{field}={value}"


def position_key(source_id: str | None, display: int | str) -> str:
    """The key of a change with no identity: its feed and position.

    A pass always names the feed. Without one (a change built outside a
    pass) the key is the position alone, as journals have long stored it.
    """
    return f"@{display}" if source_id is None else f"@{source_id}#{display}"

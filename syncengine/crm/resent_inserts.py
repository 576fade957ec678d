"""Inserts sent without an answer, and how a resend's `DUPLICATE_DATA` is read.

An insert whose request got no answer (timeout, dropped connection, 5xx, an
unreadable body) may have been applied. Sent again, it meets its own first
copy: `DUPLICATE_DATA` on the unique field. That is this change's success,
not a failure, when the existing record holds every value sent; otherwise it
is a real duplicate and fails as before. `UnansweredInserts` is the client's
memory of which records were sent without an answer (by module and content,
so the engine's resend of the same change is recognised); the rest are pure
functions.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any

import orjson

from syncengine.model import Record

#: Records remembered at most; the oldest are forgotten first.
MAX_REMEMBERED = 100_000

#: How far the CRM's clock may differ from ours when its `Created_Time` is
#: compared with the time a killed run was alive (`created_within`).
CLOCK_SKEW_S = 300.0


def record_key(module: str, record: Record) -> bytes | None:
    """A key for `record` of `module` that equal contents share, or None if not encodable."""
    try:
        return module.encode() + b"\0" + orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None


class UnansweredInserts:
    """Insert records sent in requests that got no answer, until their next answer."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._keys: OrderedDict[bytes, None] = OrderedDict()
        self._limit = limit

    def __len__(self) -> int:
        return len(self._keys)

    def remember(self, module: str, record: Record) -> None:
        """`record` was sent and no answer came back: it may exist in the CRM now."""
        key = record_key(module, record)
        if key is None:
            return
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._limit:
            self._keys.popitem(last=False)

    def take(self, module: str, record: Record) -> bool:
        """True when `record` was sent before without an answer; forgets it either way."""
        key = record_key(module, record)
        return key is not None and self._keys.pop(key, False) is None


def existing_id(details: dict[str, Any]) -> str | None:
    """The id of the record already holding the value, from `DUPLICATE_DATA` details.

    v2 answers carry it as `details.id`; later versions as
    `details.duplicate_record.id` (crm-api.md §4). None when neither is there.
    """
    value = details.get("id")
    if value is None:
        nested = details.get("duplicate_record")
        value = nested.get("id") if isinstance(nested, dict) else None
    return None if value is None or isinstance(value, bool) else str(value)


def holds_values(sent: Record, stored: dict[str, Any]) -> bool:
    """True when the stored record holds every value `sent` carries.

    `$` keys are instructions, not values, and are skipped. A lookup sent as
    `{"id": ...}` matches a stored lookup with that id. Anything not plainly
    equal counts as different: a record taken for ours wrongly would be a
    misreported success, one refused wrongly only a visible failure.
    """
    for name, value in sent.items():
        if name.startswith("$") or name == "id":
            continue
        if not _same_value(value, stored.get(name)):
            return False
    return True


def _same_value(sent: Any, stored: Any) -> bool:
    if isinstance(sent, bool) or isinstance(stored, bool):
        return type(sent) is type(stored) and sent == stored  # True is not 1 here
    if sent == stored:
        return True
    if isinstance(sent, dict) and isinstance(stored, dict) and sent.keys() == {"id"}:
        return str(sent["id"]) == str(stored.get("id"))
    if isinstance(sent, int | float) and isinstance(stored, int | float | str):
        try:
            return float(stored) == float(sent)
        except ValueError:
            return False
    return False


def created_within(stored: dict[str, Any], window: tuple[float, float]) -> bool:
    """True when the stored record's `Created_Time` lies in `window` (widened by the skew).

    After a killed run, an insert it sent may have been applied with its
    answer lost with the process: only a record created while that run was
    alive (from its start to this run's) can be such a first copy, never one
    the org held before nor one this run made. A missing or unreadable
    `Created_Time` says nothing, so it is taken as outside.
    """
    value = stored.get("Created_Time")
    if not isinstance(value, str):
        return False
    try:
        created = datetime.fromisoformat(value)
    except ValueError:
        return False
    if created.tzinfo is None:
        return False  # the API always gives an offset; without one the moment is unknown
    began, ended = window
    return began - CLOCK_SKEW_S <= created.timestamp() <= ended + CLOCK_SKEW_S

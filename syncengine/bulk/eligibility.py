"""Which changes of a feed may go by bulk write; pure.

A bulk-write row is one CSV line applied once, in no order the engine
controls, with no answer until the whole job ends. So only changes that need
nothing else may go: an insert, update or upsert whose values a CSV cell can
carry (the rules of `crm.bulk_csv`), in a module bulk write supports, whose
record has no other change in the part of the feed read (order and
coalescing stay the records path's), owes nothing from an earlier pass (its
owed state must be merged, design.md invariant 3), and names no record by a
source key or `$ref` (those are resolved through the id map just before
sending, `engine.references`). Deletes never go: bulk write has no delete.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Final

from syncengine.crm.bulk_csv import row_refusal
from syncengine.engine.references import has_references
from syncengine.model import Change, Operation

#: Modules bulk write does not import (crm-bulk-write.md §5).
UNSUPPORTED_MODULES: Final = frozenset({"Attachments", "Notes", "Events", "Calls"})

_BULK_OPERATIONS: Final = frozenset({Operation.INSERT, Operation.UPDATE, Operation.UPSERT})


def csv_refusal(record: dict[str, object], find_by: str | None) -> str | None:
    """Why one CSV row cannot carry `record` (as `bulk_csv.plan_files` judges), or None."""
    return row_refusal(record, find_by)


def change_refusal(
    change: Change,
    *,
    find_by: str | None,
    owed_keys: Container[str],
    triggers_allowed: bool,
) -> str | None:
    """Why `change` stays on the records path whatever its key's count, or None."""
    if change.operation not in _BULK_OPERATIONS:
        return "not an insert, update or upsert"
    if change.key is None:
        return "no journal key"
    if change.module in UNSUPPORTED_MODULES:
        return f"bulk write does not import {change.module}"
    if change.source_key is not None:
        return "named by a source key"
    if change.trigger and not triggers_allowed:
        return "asks for triggers"
    if change.key in owed_keys:
        return "owes an earlier change"
    if has_references(change.record):
        return "holds a $ref"
    return csv_refusal(change.record, find_by)

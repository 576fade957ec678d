"""Deletes in the records API: the query they carry and what their answers mean.

`DELETE /crm/v2/{module}?ids=ID1,...&wf_trigger=true|false` (crm-api.md
§1.1) has no body; its answer is a `data` array like a write's, one element
per id, a success holding only `{"id": ...}` in its details (§1.3).

A delete of an id the CRM does not have is answered `INVALID_DATA` ("the id
given seems to be invalid", §1.5-1.6: an unknown record id is INVALID_DATA;
a delete carries no field that could be invalid). The delete wanted the
record gone and it is gone, so such an answer settles the change as synced,
journaled with its own code `ALREADY_DELETED` rather than SUCCESS: the
user can tell "deleted now" from "was not there" (`status`, the journal).
Any other code keeps its usual class (a locked record is retried, a
permission refusal fails the record).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from syncengine.crm.write_request import WriteRequest
from syncengine.model import RecordOutcome, Verdict

#: A delete whose record the CRM did not have (or whose source key maps to no id).
ALREADY_DELETED = "ALREADY_DELETED"

#: The CRM's code for an id it does not know (crm-api.md §1.6).
_UNKNOWN_ID = "INVALID_DATA"


def wf_trigger(trigger: tuple[str, ...] | None) -> bool:
    """Whether a delete fires workflows: `[crm] trigger` absent (None) or naming `workflow`."""
    return trigger is None or "workflow" in trigger


def delete_query(request: WriteRequest, indices: Sequence[int]) -> dict[str, str]:
    """The query of a delete of the records of `request` at `indices`."""
    ids = ",".join(str(request.records[index]["id"]) for index in indices)
    return {"ids": ids, "wf_trigger": "true" if wf_trigger(request.trigger) else "false"}


def settle_delete(outcome: RecordOutcome) -> RecordOutcome:
    """A delete's outcome: an unknown id means the record is already gone (synced)."""
    if outcome.code != _UNKNOWN_ID:
        return outcome
    return replace(
        outcome,
        verdict=Verdict.SYNCED,
        code=ALREADY_DELETED,
        message=f"the CRM has no such record ({outcome.message or _UNKNOWN_ID})",
    )

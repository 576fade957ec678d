"""How a chunk naming records by source key goes out (engine/references.py `plan_chunk`)."""

from __future__ import annotations

from typing import Any

from syncengine.crm.deletes import ALREADY_DELETED, settle_delete, wf_trigger
from syncengine.engine.references import (
    UNKNOWN_KEY,
    UNRESOLVED_REFERENCE,
    keys_to_look_up,
    plan_chunk,
)
from syncengine.model import Change, Operation, RecordOutcome, Verdict


def keyed(
    operation: Operation, key: str, record: dict[str, Any], module: str = "Contacts"
) -> Change:
    return Change(module, operation, record, f"{module}/{key}", [], source_key=key)


REF = {"$ref": {"module": "Accounts", "key": "a1"}}


def test_a_mapped_key_turns_any_write_into_an_update_of_its_id() -> None:
    changes = [
        keyed(Operation.INSERT, "c1", {"Last_Name": "Kim"}),
        keyed(Operation.UPSERT, "c2", {"Last_Name": "Lee"}),
        keyed(Operation.INSERT, "c3", {"Last_Name": "New"}),
    ]
    plan = plan_chunk(changes, {"Contacts/c1": "11", "Contacts/c2": "12", "Contacts/c3": None})
    assert plan.outcomes == [None, None, None]
    assert plan.ids == ["11", "12", None]
    assert plan.requests == [
        (
            Operation.UPDATE,
            [0, 1],
            [{"Last_Name": "Kim", "id": "11"}, {"Last_Name": "Lee", "id": "12"}],
        ),
        (Operation.INSERT, [2], [{"Last_Name": "New"}]),
    ]
    assert changes[0].record == {"Last_Name": "Kim"}  # the change itself is left as read


def test_an_update_of_an_unmapped_key_fails_without_a_request() -> None:
    plan = plan_chunk([keyed(Operation.UPDATE, "c1", {"Last_Name": "Kim"})], {"Contacts/c1": None})
    assert plan.requests == []
    outcome = plan.outcomes[0]
    assert outcome is not None
    assert (outcome.verdict, outcome.code) == (Verdict.REJECT, UNKNOWN_KEY)


def test_a_delete_of_an_unmapped_key_is_done_without_a_request() -> None:
    plan = plan_chunk([keyed(Operation.DELETE, "c1", {})], {"Contacts/c1": None})
    assert plan.requests == []
    outcome = plan.outcomes[0]
    assert outcome is not None
    assert (outcome.verdict, outcome.code) == (Verdict.SYNCED, ALREADY_DELETED)


def test_a_delete_of_a_mapped_key_deletes_its_id() -> None:
    plan = plan_chunk([keyed(Operation.DELETE, "c1", {})], {"Contacts/c1": "11"})
    assert plan.requests == [(Operation.DELETE, [0], [{"id": "11"}])]


def test_references_become_lookups_or_make_the_change_wait() -> None:
    waiting = keyed(Operation.INSERT, "c2", {"Last_Name": "Lee", "Account_Name": REF})
    resolved = Change(
        "Contacts", Operation.UPDATE, {"id": "9", "Account_Name": REF}, "Contacts:9", []
    )
    plan = plan_chunk([waiting, resolved], {"Contacts/c2": None, "Accounts/a1": None})
    outcome = plan.outcomes[0]
    assert outcome is not None
    assert (outcome.verdict, outcome.code) == (Verdict.WAIT, UNRESOLVED_REFERENCE)
    assert outcome.details == {"api_name": "Account_Name", "module": "Accounts", "key": "a1"}
    assert plan.outcomes[1] is not None  # the same reference: the same wait
    plan = plan_chunk([resolved], {"Accounts/a1": "77"})
    assert plan.requests == [(Operation.UPDATE, [0], [{"id": "9", "Account_Name": {"id": "77"}}])]


def test_only_keys_without_an_id_and_references_are_looked_up() -> None:
    changes = [
        keyed(Operation.INSERT, "c1", {"Account_Name": REF}),
        keyed(Operation.UPDATE, "c2", {"id": "5", "Last_Name": "x"}),
        Change("Leads", Operation.UPDATE, {"id": "6"}, "Leads:6", []),
    ]
    assert keys_to_look_up(changes) == {"Contacts/c1", "Accounts/a1"}


def test_an_unknown_id_answered_to_a_delete_means_already_gone() -> None:
    unknown = RecordOutcome(Verdict.REJECT, "INVALID_DATA", "the id given seems to be invalid")
    assert (settle_delete(unknown).verdict, settle_delete(unknown).code) == (
        Verdict.SYNCED,
        ALREADY_DELETED,
    )
    locked = RecordOutcome(Verdict.RETRY, "RECORD_LOCKED", "locked")
    assert settle_delete(locked) is locked


def test_delete_workflows_follow_the_trigger_setting() -> None:
    assert wf_trigger(None) is True
    assert wf_trigger(("workflow",)) is True
    assert wf_trigger(()) is False
    assert wf_trigger(("approval",)) is False

"""Tests for turning parsed feed items into changes (sources/records.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncengine.model import BadInput, Change, Operation, SourcePosition
from syncengine.sources.records import RecordDefaults, build_change, from_json, from_row

POS = SourcePosition(ordinal=0, resume_after=10, display=1)
UPDATE = RecordDefaults("Leads", Operation.UPDATE, ())
UPSERT = RecordDefaults("Leads", Operation.UPSERT, ("workflow",))
INSERT = RecordDefaults("Leads", Operation.INSERT, ())


def change(obj: Any, defaults: RecordDefaults = UPDATE) -> Change:
    """The Change from `obj`, failing the test on a BadInput."""
    result = from_json(obj, POS, defaults)
    assert isinstance(result, Change), result
    return result


def bad(obj: Any, defaults: RecordDefaults = UPDATE) -> BadInput:
    """The BadInput from `obj`, failing the test on a Change."""
    result = from_json(obj, POS, defaults)
    assert isinstance(result, BadInput), result
    return result


def test_bare_update_keeps_record_and_keys_by_module_and_id() -> None:
    """A bare object is sent as is, with `$` keys, under the defaults; key is module:id."""
    record = {"id": "4876876000000411001", "Tags": ["a"], "$append_values": {"Tags": True}}
    result = change(dict(record))
    assert result.record == record
    assert (result.module, result.operation, result.trigger) == ("Leads", Operation.UPDATE, ())
    assert result.key == "Leads:4876876000000411001"
    assert result.positions == [POS]


def test_numeric_id_becomes_string() -> None:
    """A JSON number id is sent as a string, as the API expects."""
    result = change({"id": 4876876000000411001, "Company": "Acme"})
    assert result.record["id"] == "4876876000000411001"
    assert result.key == "Leads:4876876000000411001"


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([1, 2], "not a JSON object but an array"),
        ("x", "not a JSON object but a string"),
        (None, "not a JSON object but null"),
        ({"Company": "Acme"}, "no id for an update"),
        ({}, "empty record"),
        ({"id": "1"}, "empty record"),
        ({"id": 1.5, "Company": "A"}, "id must be a non-empty string or an integer"),
        ({"id": True, "Company": "A"}, "id must be a non-empty string or an integer"),
        ({"id": None, "Company": "A"}, "no id for an update"),
        ({"id": "", "Company": "A"}, "id must be a non-empty string or an integer"),
        ({"record": {"id": "1", "A": 1}, "operation": "merge"}, "unknown operation 'merge'"),
        ({"record": {"id": "1", "A": 1}, "operation": 5}, "unknown operation 'a number'"),
        ({"record": {"id": "1", "A": 1}, "module": "Le ads"}, "module must be a module API name"),
        ({"record": {"id": "1", "A": 1}, "trigger": ["email"]}, "trigger must be a list"),
        ({"record": {"id": "1", "A": 1}, "trigger": [{}]}, "trigger must be a list"),
    ],
)
def test_unusable_objects_are_bad_input_with_reason(obj: Any, reason: str) -> None:
    """Each kind of unusable object becomes a BadInput with a one-line reason."""
    result = bad(obj)
    assert result.reason.startswith(reason)
    assert result.position == POS
    assert result.code == "BAD_INPUT"


def test_bad_input_names_record_id_and_module_when_known() -> None:
    """A BadInput for an envelope carries the record id and module it names."""
    result = bad({"record": {"id": "77", "A": 1}, "module": "Contacts", "operation": "x"})
    assert (result.record_id, result.module) == ("77", "Contacts")


def test_envelope_overrides_module_operation_and_trigger() -> None:
    """An envelope's module, operation and trigger override the defaults for its record."""
    obj = {
        "record": {"Email": "a@b.co", "Last_Name": "B"},
        "module": "Contacts",
        "operation": "upsert",
        "trigger": ["workflow"],
    }
    result = change(obj)
    assert (result.module, result.operation, result.trigger) == (
        "Contacts",
        Operation.UPSERT,
        ("workflow",),
    )
    assert result.record == {"Email": "a@b.co", "Last_Name": "B"}
    assert result.key == "Contacts:Email=a@b.co"


def test_object_with_other_keys_is_a_bare_record_not_an_envelope() -> None:
    """`record` next to a field that is not an envelope key is just a field."""
    result = change({"id": "1", "record": {"x": 1}, "Company": "Acme"})
    assert result.record == {"id": "1", "record": {"x": 1}, "Company": "Acme"}


@pytest.mark.parametrize(
    ("defaults", "record", "key"),
    [
        (UPSERT, {"id": "9", "Email": "a@b.co"}, "Leads:9"),
        (UPSERT, {"Email": "a@b.co", "Last_Name": "B"}, "Leads:Email=a@b.co"),
        (UPSERT, {"Last_Name": "B"}, None),
        (
            RecordDefaults("Leads", Operation.UPSERT, (), ("Phone", "Email")),
            {"Email": "a@b.co", "Phone": "+1 555"},
            "Leads:Phone=+1 555",
        ),
        (
            RecordDefaults("Accounts", Operation.UPSERT),
            {"Account_Name": "Acme"},
            "Accounts:Account_Name=Acme",
        ),
        (RecordDefaults("Custom_Mod", Operation.UPSERT), {"Name": "x"}, None),
        (INSERT, {"Last_Name": "B"}, None),
        (INSERT, {"id": "5", "Last_Name": "B"}, "Leads:5"),
        (INSERT, {"id": None, "Last_Name": "B"}, None),
    ],
)
def test_keys_for_upsert_and_insert(
    defaults: RecordDefaults, record: dict[str, Any], key: str | None
) -> None:
    """Upsert keys by id, else the first duplicate-check field; insert only by id."""
    result = change(record, defaults)
    assert result.key == key
    assert result.trigger == defaults.trigger


def test_row_override_columns_are_not_fields() -> None:
    """`_module` and `_operation` columns steer the row and are not sent as fields."""
    result = from_row({"_module": "Deals", "_operation": "upsert", "Deal_Name": "Big"}, POS, UPDATE)
    assert isinstance(result, Change)
    assert (result.module, result.operation) == ("Deals", Operation.UPSERT)
    assert result.record == {"Deal_Name": "Big"}
    assert result.key == "Deals:Deal_Name=Big"


def test_row_with_bad_operation_is_bad_input() -> None:
    """An unknown `_operation` value makes the row a BadInput naming it."""
    result = from_row({"_operation": "merge", "id": "1", "A": "x"}, POS, UPDATE)
    assert isinstance(result, BadInput)
    assert result.reason == "unknown operation 'merge'"
    assert result.record_id == "1"


def test_null_id_is_dropped_not_sent() -> None:
    """A null id (such as a NULL column) is removed from the record instead of being sent."""
    result = change({"id": None, "Last_Name": "B"}, INSERT)
    assert result.record == {"Last_Name": "B"}


_JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    # A few strings rather than st.text(): its first use builds Unicode tables,
    # which a fresh checkout's health check counts as slow input generation.
    st.sampled_from(["", "1", "4876876000000123", "a b", "é"]),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300)
@given(
    obj=st.dictionaries(
        st.sampled_from(["id", "Email", "Last_Name", "record", "module", "$append_values"]),
        _JSON_VALUES | st.dictionaries(st.sampled_from(["id", "A"]), _JSON_VALUES, max_size=2),
        max_size=4,
    ),
    defaults=st.sampled_from([UPDATE, UPSERT, INSERT]),
)
def test_short_path_for_bare_records_agrees_with_build_change(
    obj: dict[str, Any], defaults: RecordDefaults
) -> None:
    """Any JSON object reads as it would through `build_change` with the defaults or an envelope."""
    position = SourcePosition(0, 1, 1)
    got = from_json(copy.deepcopy(obj), position, defaults)
    record = obj.get("record")
    if isinstance(record, dict) and obj.keys() <= {"record", "module", "operation", "trigger"}:
        return  # an envelope: its own tests cover it
    expected = build_change(
        copy.deepcopy(obj),
        position,
        defaults.module,
        defaults.operation,
        defaults.trigger,
        defaults,
    )
    assert got == expected


def test_insert_of_a_named_feed_is_keyed_by_its_position() -> None:
    """A record with no identity leaves the source keyed as its journal row is: feed and line.

    The replay window looks re-read changes up by key after a crash; a
    keyless insert would never be found and would be created again.
    """
    result = change({"Last_Name": "Ng"}, INSERT.of_feed("jsonl:/feeds/x.jsonl"))
    assert result.key == "@jsonl:/feeds/x.jsonl#1"


def test_upsert_without_match_value_of_a_named_feed_is_keyed_by_its_position() -> None:
    """An upsert carrying no duplicate-check value has no identity either."""
    result = change({"Last_Name": "Ng"}, UPSERT.of_feed("csv:/feeds/x.csv"))
    assert result.key == "@csv:/feeds/x.csv#1"


def test_insert_outside_a_feed_is_left_for_the_engine_to_key() -> None:
    """Without a feed named the key stays unset (the engine keys it at admission)."""
    assert change({"Last_Name": "Ng"}, INSERT).key is None

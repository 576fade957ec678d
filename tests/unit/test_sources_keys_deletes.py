"""Deletes, source keys and `$ref` references as the feed readers take them (sources/records.py)."""

from __future__ import annotations

from typing import Any

import pytest

from syncengine.model import BadInput, Change, Operation, SourcePosition
from syncengine.sources.records import RecordDefaults, from_json, from_row

POS = SourcePosition(ordinal=0, resume_after=10, display=7)
UPDATE = RecordDefaults("Leads", Operation.UPDATE, ())
INSERT = RecordDefaults("Accounts", Operation.INSERT, ())
KEYED = RecordDefaults("Accounts", Operation.INSERT, (), key_field="customer_id")
DELETE = RecordDefaults("Leads", Operation.DELETE, ())


def change(obj: Any, defaults: RecordDefaults = UPDATE) -> Change:
    result = from_json(obj, POS, defaults)
    assert isinstance(result, Change), result
    return result


def bad(obj: Any, defaults: RecordDefaults = UPDATE) -> BadInput:
    result = from_json(obj, POS, defaults)
    assert isinstance(result, BadInput), result
    return result


def test_a_delete_by_id_keeps_only_the_id_and_the_record_key() -> None:
    got = change({"record": {"id": "42", "Company": "ignored"}, "operation": "delete"})
    assert (got.operation, got.record, got.key, got.source_key) == (
        Operation.DELETE,
        {"id": "42"},
        "Leads:42",
        None,
    )


def test_a_delete_by_source_key_needs_no_record() -> None:
    got = change({"key": "acme-42", "module": "Accounts", "operation": "delete"})
    assert (got.operation, got.record, got.key, got.source_key) == (
        Operation.DELETE,
        {},
        "Accounts/acme-42",
        "acme-42",
    )


def test_deletes_by_default_take_bare_records_with_an_id() -> None:
    got = change({"id": 42}, DELETE)
    assert (got.operation, got.record, got.key) == (Operation.DELETE, {"id": "42"}, "Leads:42")


@pytest.mark.parametrize(
    "obj",
    [
        {"record": {"Company": "x"}, "operation": "delete"},
        {"record": {}, "operation": "delete"},
    ],
)
def test_a_delete_without_id_or_key_is_bad_input(obj: dict[str, Any]) -> None:
    assert "no id for a delete" in bad(obj).reason


def test_an_envelope_key_names_the_record_and_is_never_a_field() -> None:
    got = change({"key": 1042, "record": {"Account_Name": "Acme"}}, INSERT)
    assert got.key == "Accounts/1042"
    assert got.source_key == "1042"
    assert got.record == {"Account_Name": "Acme"}


def test_the_configured_key_member_is_taken_out_of_bare_records() -> None:
    got = change({"customer_id": "c-7", "Account_Name": "Acme"}, KEYED)
    assert (got.key, got.source_key, got.record) == (
        "Accounts/c-7",
        "c-7",
        {"Account_Name": "Acme"},
    )


def test_an_update_by_source_key_needs_no_id() -> None:
    got = change({"key": "k", "operation": "update", "record": {"Company": "x"}})
    assert (got.key, got.record_id) == ("Leads/k", None)


@pytest.mark.parametrize("key", ["", "   ", True, 1.5, ["a"], "x" * 256])
def test_a_bad_source_key_is_one_line_bad_input(key: object) -> None:
    reason = bad({"key": key, "record": {"Company": "x"}}, INSERT).reason
    assert reason.startswith("key ")
    assert "\n" not in reason


def test_a_reference_is_checked_when_read() -> None:
    ref = {"$ref": {"module": "Accounts", "key": 7}}
    got = change({"record": {"Last_Name": "Kim", "Account_Name": ref}}, INSERT)
    assert got.record["Account_Name"] == {"$ref": {"module": "Accounts", "key": "7"}}


@pytest.mark.parametrize(
    "value",
    [
        {"$ref": "Accounts/7"},
        {"$ref": {"module": "Accounts"}},
        {"$ref": {"module": "no such", "key": "7"}},
        {"$ref": {"module": "Accounts", "key": ""}},
        {"$ref": {"module": "Accounts", "key": "7"}, "name": "x"},
    ],
)
def test_a_malformed_reference_is_bad_input_naming_the_field(value: object) -> None:
    reason = bad({"record": {"Last_Name": "Kim", "Account_Name": value}}, INSERT).reason
    assert "Account_Name" in reason


def test_table_rows_name_references_by_column() -> None:
    row: dict[str, Any] = {"Last_Name": "Kim", "Account_Name@Accounts": "acme-42", "customer_id": 9}
    got = from_row(
        row, POS, RecordDefaults("Contacts", Operation.INSERT, (), key_field="customer_id")
    )
    assert isinstance(got, Change), got
    assert got.record == {
        "Last_Name": "Kim",
        "Account_Name": {"$ref": {"module": "Accounts", "key": "acme-42"}},
    }
    assert got.key == "Contacts/9"


def test_an_empty_reference_column_clears_the_lookup() -> None:
    got = from_row({"id": "5", "Account_Name@Accounts": None}, POS, UPDATE)
    assert isinstance(got, Change), got
    assert got.record == {"id": "5", "Account_Name": None}


def test_a_badly_named_reference_column_is_bad_input() -> None:
    got = from_row({"id": "5", "Account_Name@": "x"}, POS, UPDATE)
    assert isinstance(got, BadInput)
    assert "<Field>@<Module>" in got.reason


def test_a_table_row_deletes_through_its_operation_column() -> None:
    got = from_row({"id": "5", "_operation": "delete", "Company": "x"}, POS, UPDATE)
    assert isinstance(got, Change), got
    assert (got.operation, got.record) == (Operation.DELETE, {"id": "5"})

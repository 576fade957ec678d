"""The field rules: never refuse what the CRM takes, and answer in the CRM's own words.

The simulator's validation (`syncengine.sim.validation`) is our model of the
CRM; it is stricter than Zoho's published rules in places (e-mail local
parts, phone letters and extensions, numbers in text fields), never more
lenient. So, for any record: what the simulator accepts the field rules
accept, and what the field rules refuse the simulator refuses, with the
same code and details when only one value is at fault.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncengine.crm.field_checks import is_email, is_phone
from syncengine.crm.field_rules import (
    ModuleRules,
    check_record,
    compile_rules,
    inspect_record,
    is_plain_record,
    unique_value,
    unknown_fields,
)
from syncengine.model import Operation
from syncengine.sim.schema import ModuleSchema, field_metadata, load_schema
from syncengine.sim.validation import CompiledModule, check_mandatory, check_values, compile_module

SCHEMA = load_schema()


def _pair(module: str) -> tuple[ModuleRules, CompiledModule, ModuleSchema]:
    schema = SCHEMA.modules[module]
    return (
        compile_rules(module, field_metadata(schema)),
        compile_module(schema, SCHEMA.user_ids),
        schema,
    )


MODULES = {name: _pair(name) for name in SCHEMA.modules}


def _sim_answer(compiled: CompiledModule, record: dict[str, Any]) -> dict[str, Any] | None:
    """The simulator's verdict on an insert of `record` (lookups exist; layout rules off)."""
    problem = check_values(compiled, record, lambda _module, _id: True)
    if problem is None:
        merged = {k: v for k, v in record.items() if k != "id" and not k.startswith("$")}
        problem = check_mandatory(compiled, merged, layout_rules=False)
    return problem


# A mix of values of every JSON type, valid and invalid for each field type.
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.text(max_size=300),
    st.sampled_from(
        [
            "",
            "ann@example.org",
            "ann+news@example.org",
            "o'neil@mail.example.co",
            "bad@",
            "a@b",
            "a b@example.org",
            "+1 (555) 010-0100",
            "555-0100 ext. 12",
            "555-0100;ext=3#",
            "555@0100",
            "2024-02-29",
            "2023-02-29",
            "2024-01-31T09:30:00+05:30",
            "2024-01-31T09:30:00Z",
            "2024-01-31 09:30",
            "Active",
            "Bogus",
            "123",
            "12.5",
            "true",
            "4876876000000233001",
        ]
    ),
    st.lists(st.sampled_from(["English", "French", "Klingon"]), max_size=3),
    st.fixed_dictionaries({"id": st.sampled_from(["4876876000000233001", "abc", "1"])}),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def records(draw: st.DrawFn, module: str) -> dict[str, Any]:
    """A record of up to four of the module's fields (and sometimes a stray one)."""
    _rules, _compiled, schema = MODULES[module]
    names = draw(st.lists(st.sampled_from(sorted(schema.fields)), max_size=4, unique=True))
    record = {name: draw(VALUES) for name in names}
    if draw(st.booleans()):
        record["Not_A_Field"] = draw(VALUES)
    return record


@settings(max_examples=250, deadline=None)
@given(st.sampled_from(sorted(MODULES)).flatmap(lambda m: st.tuples(st.just(m), records(m))))
def test_never_refuses_what_the_simulator_takes(case: tuple[str, dict[str, Any]]) -> None:
    """An insert the simulator accepts is never refused by the field rules."""
    module, record = case
    rules, compiled, _schema = MODULES[module]
    if _sim_answer(compiled, record) is None:
        assert check_record(rules, Operation.INSERT, record) is None


@settings(max_examples=250, deadline=None)
@given(st.sampled_from(sorted(MODULES)).flatmap(lambda m: st.tuples(st.just(m), records(m))))
def test_a_refusal_is_the_simulators_own_answer(case: tuple[str, dict[str, Any]]) -> None:
    """What the rules refuse, the simulator refuses; alone at fault, in the same words."""
    module, record = case
    rules, compiled, _schema = MODULES[module]
    refusal = check_record(rules, Operation.INSERT, record)
    if refusal is None:
        return
    answer = _sim_answer(compiled, record)
    assert answer is not None
    # Where the simulator and the rules agree on every value, the first fault is the same.
    agreed = all(
        (check_values(compiled, {name: value}, lambda _m, _i: True) is None)
        == (value is None or name not in rules.checkers or rules.checkers[name](value) is None)
        for name, value in record.items()
    )
    if agreed:
        assert (answer["code"], answer["details"]) == (refusal.code, refusal.details)


@pytest.mark.parametrize(
    "address",
    [
        "ann+news@example.org",
        "o'neil@example.org",
        "a&b@example.co.uk",
        "first.last@sub.example.museum",
        "x!#$%*/=?^_`{|}~-y@example.org",
        "user@xn--80ak6aa92e.com",
    ],
)
def test_email_takes_rfc_local_parts(address: str) -> None:
    """Zoho's e-mail pattern takes `+tag` and other RFC local-part characters: sent."""
    assert is_email(address)


@pytest.mark.parametrize(
    "address",
    [
        "plain",
        "a@b",
        "@example.org",
        "a b@example.org",
        "a@@example.org",
        "a@exa..mple.org",
        "a@x.1",
    ],
)
def test_email_refuses_what_is_no_address(address: str) -> None:
    """No `@`, no dotted domain, spaces, empty labels: no address at all."""
    assert not is_email(address)


@pytest.mark.parametrize(
    "phone",
    [
        "+1 (555) 010-0100",
        "1-800-FLOWERS",
        "555 0100 ext 12",
        "555-0100;ext=3",
        "5550100#22",
        "555.0100,,12",
    ],
)
def test_phone_takes_letters_and_extensions(phone: str) -> None:
    """Zoho's phones take letters and `, ; #` extension parts."""
    assert is_phone(phone)


@pytest.mark.parametrize("phone", ["555@0100", "call me!", "---", "<555>", "555\n0100"])
def test_phone_refuses_what_no_dial_string_holds(phone: str) -> None:
    """Characters no dial string holds, or no digit or letter at all."""
    assert not is_phone(phone)


def test_phone_length_is_the_fields() -> None:
    """A phone of 31 characters is over the default 30: `maximum_length`, as the CRM says."""
    rules, _compiled, _schema = MODULES["Leads"]
    refusal = check_record(rules, Operation.INSERT, {"Phone": "5" * 31})
    assert refusal is not None
    assert (refusal.code, refusal.details) == (
        "INVALID_DATA",
        {"api_name": "Phone", "maximum_length": "30"},
    )
    assert check_record(rules, Operation.UPDATE, {"id": "1", "Phone": "5" * 30}) is None


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        ("2024-01-31T09:30:00+05:30", False),
        ("2024-01-31T09:30:00Z", False),
        ("2024-01-31T09:30:00.250-03:00", False),
        ("2024-01-31T25:30:00+05:30", True),
        ("2024-01-31", True),
        ("31/01/2024 09:30", True),
        (1706693400, True),
    ],
)
def test_datetime_forms(value: object, refused: bool) -> None:
    """ISO 8601 with an offset (or `Z`) is sent; anything else is `expected_data_type: datetime`."""
    rules, _compiled, _schema = MODULES["Leads"]
    refusal = check_record(rules, Operation.UPDATE, {"id": "1", "Last_Contacted": value})
    assert (refusal is not None) is refused
    if refusal is not None:
        assert refusal.details == {"api_name": "Last_Contacted", "expected_data_type": "datetime"}


def test_mandatory_on_insert_and_blanking_on_update() -> None:
    """An insert needs every system-mandatory field; an update may omit one but not blank it."""
    rules, _compiled, _schema = MODULES["Leads"]
    missing = check_record(rules, Operation.INSERT, {"Company": "Acme"})
    assert missing is not None
    assert (missing.code, missing.details) == ("MANDATORY_NOT_FOUND", {"api_name": "Last_Name"})
    assert check_record(rules, Operation.INSERT, {"Last_Name": "Kim"}) is None
    assert check_record(rules, Operation.UPDATE, {"id": "7", "Email": "kim@example.org"}) is None
    blanked = check_record(rules, Operation.UPDATE, {"id": "7", "Last_Name": ""})
    assert blanked is not None
    assert blanked.details == {"api_name": "Last_Name"}
    assert check_record(rules, Operation.UPSERT, {"Email": "kim@example.org"}) is None


def test_update_needs_an_id_of_digits() -> None:
    """An update without `id` lacks a mandatory key; a non-numeric one is an invalid id."""
    rules, _compiled, _schema = MODULES["Leads"]
    absent = check_record(rules, Operation.UPDATE, {"First_Name": "Kim"})
    assert absent is not None
    assert (absent.code, absent.details) == ("MANDATORY_NOT_FOUND", {"api_name": "id"})
    bad = check_record(rules, Operation.UPDATE, {"id": "12ab"})
    assert bad is not None
    assert (bad.code, bad.message, bad.details) == (
        "INVALID_DATA",
        "the id given seems to be invalid",
        {"api_name": "id"},
    )


def test_restricted_picklist_only_when_the_metadata_says_so() -> None:
    """A picklist takes new values unless its metadata marks it `restricted`."""
    fields = [
        {
            "api_name": "Rating",
            "data_type": "picklist",
            "length": 120,
            "pick_list_values": [{"actual_value": "Active", "display_value": "Active"}],
        },
    ]
    open_list = compile_rules("Leads", fields)
    assert check_record(open_list, Operation.UPDATE, {"id": "1", "Rating": "Hot"}) is None
    restricted = compile_rules("Leads", [{**fields[0], "restricted": True}])
    refusal = check_record(restricted, Operation.UPDATE, {"id": "1", "Rating": "Hot"})
    assert refusal is not None
    assert refusal.details == {"api_name": "Rating", "expected_data_type": "picklist"}
    assert check_record(restricted, Operation.UPDATE, {"id": "1", "Rating": "Active"}) is None


def test_unknown_fields_are_reported_apart() -> None:
    """Names the module lacks are listed, never refused; `id` and `$` keys are not fields."""
    rules, _compiled, _schema = MODULES["Leads"]
    record = {"id": "1", "Nope": 1, "$append_values": {"Languages": True}, "Languages": ["French"]}
    assert unknown_fields(rules, record) == ["Nope"]
    assert check_record(rules, Operation.UPDATE, record) is None


def test_read_only_fields_are_never_refused() -> None:
    """The CRM ignores what is sent to a read-only field, so it cannot be a refusal."""
    rules, _compiled, _schema = MODULES["Leads"]
    assert check_record(rules, Operation.UPDATE, {"id": "1", "Created_Time": "yesterday"}) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=12), VALUES, max_size=8), max_size=6))
def test_any_metadata_compiles(metadata: list[dict[str, Any]]) -> None:
    """Whatever a fields list holds, compiling it never raises, nor does checking against it."""
    rules = compile_rules("M", metadata)
    check_record(rules, Operation.INSERT, {"a": 1, "api_name": "x"})


def test_unique_values_compare_as_the_field_says() -> None:
    """Strings compare without case unless `unique.casesensitive`; blanks never clash."""
    rules = compile_rules(
        "Leads",
        [
            {"api_name": "Email", "data_type": "email", "unique": {"casesensitive": False}},
            {"api_name": "Code", "data_type": "text", "unique": {"casesensitive": True}},
        ],
    )
    email, code = rules.unique
    assert unique_value(email, "Ann@X.org") == unique_value(email, "ann@x.org")
    assert unique_value(code, "AB") != unique_value(code, "ab")
    assert unique_value(email, "") is None
    assert unique_value(email, None) is None


SIM_EMAIL = r"\w[\w.+\-'&]*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,22}"
SIM_PHONE = r"\+?[0-9 ()\-.]*[0-9][0-9 ()\-.]*"


@settings(max_examples=150, deadline=None)
@given(st.from_regex(SIM_EMAIL, fullmatch=True))
def test_every_address_the_simulator_takes_is_taken(address: str) -> None:
    """The simulator's e-mail grammar (narrower than Zoho's) is inside ours."""
    assert is_email(address)


@settings(max_examples=150, deadline=None)
@given(st.from_regex(SIM_PHONE, fullmatch=True))
def test_every_phone_the_simulator_takes_is_taken(phone: str) -> None:
    """The simulator's phone grammar (narrower than Zoho's) is inside ours."""
    assert is_phone(phone)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(MODULES)).flatmap(lambda m: st.tuples(st.just(m), records(m))),
    st.sampled_from(list(Operation)),
    st.sampled_from([None, "4876876000000100001", "x1"]),
)
def test_the_fast_path_passes_only_what_the_full_check_passes(
    case: tuple[str, dict[str, Any]], operation: Operation, record_id: str | None
) -> None:
    """A record the fast path calls plain has no problem and no unknown field."""
    module, record = case
    if record_id is not None:
        record = {"id": record_id, **record}
    rules, _compiled, _schema = MODULES[module]
    if is_plain_record(rules, operation, record):
        assert inspect_record(rules, operation, record) == (None, ())

"""Pure parts of the simulator: knobs, editions, scopes, validation, schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from syncengine.sim.access import scope_allows
from syncengine.sim.config import (
    KnobError,
    SimConfig,
    apply_knobs,
    effective_concurrency,
    effective_credits,
    write_cost,
)
from syncengine.sim.schema import SchemaError, load_schema, sample_record
from syncengine.sim.store import merge_fields
from syncengine.sim.validation import check_values, compile_module, parse_id


@pytest.mark.parametrize(
    ("edition", "concurrency", "credits"),
    [
        ("free", 5, 5_000),
        ("standard", 10, 100_000),
        ("professional", 15, 3_000_000),
        ("enterprise", 20, 5_000_000),
        ("ultimate", 25, None),
    ],
)
def test_edition_presets(edition: str, concurrency: int, credits: int | None) -> None:
    """Each edition presets concurrency and credits (crm-api.md §3.1 caps, §3.2)."""
    config = SimConfig(edition=edition)
    assert effective_concurrency(config) == concurrency
    assert effective_credits(config) == credits


def test_overrides_and_user_formula() -> None:
    """Explicit knobs beat the edition; users apply the formula under the cap."""
    assert effective_concurrency(SimConfig(concurrency=3)) == 3
    assert effective_credits(SimConfig(credits=7)) == 7
    assert effective_credits(SimConfig(edition="standard", users=10)) == 52_500
    assert effective_credits(SimConfig(edition="standard", users=1_000)) == 100_000


def test_write_cost_is_one_credit_per_ten_records() -> None:
    """A write costs ceil(records / 10) credits, at least 1."""
    config = SimConfig()
    assert [write_cost(config, n) for n in (1, 10, 11, 100)] == [1, 1, 2, 10]


def test_apply_knobs_converts_and_rejects() -> None:
    """Knobs are converted from JSON; unknown knobs and bad values raise, naming the knob."""
    base = SimConfig()
    new = apply_knobs(base, {"latency_ms": 5, "schema": None, "concurrency": None})
    assert new.latency_ms == 5.0
    assert base.latency_ms == 0.0
    cases: list[tuple[dict[str, Any], str]] = [
        ({"nope": 1}, "nope"),
        ({"admin": "yes"}, "admin"),
        ({"partial_status": 200}, "partial_status"),
        ({"edition": "gold"}, "edition"),
        ({"seed": 1.5}, "seed"),
    ]
    for knobs, name in cases:
        with pytest.raises(KnobError, match=f"^{name}"):
            apply_knobs(base, knobs)


@pytest.mark.parametrize(
    ("scopes", "module", "operation", "allowed"),
    [
        (("ZohoCRM.modules.ALL",), "Leads", "update", True),
        (("ZohoCRM.modules.leads.UPDATE",), "Leads", "update", True),
        (("ZohoCRM.modules.leads.UPDATE",), "Leads", "insert", False),
        (("ZohoCRM.modules.leads.CREATE",), "Leads", "upsert", True),
        (("ZohoCRM.modules.contacts.ALL",), "Leads", "update", False),
        (("ZohoCRM.modules.ALL",), "", "settings", False),
        (("ZohoCRM.settings.fields.READ",), "", "settings", True),
    ],
)
def test_scope_rules(scopes: tuple[str, ...], module: str, operation: str, allowed: bool) -> None:
    """Scopes grant per module and operation, case-insensitively."""
    assert scope_allows(scopes, module, operation) is allowed


def test_parse_id_accepts_numbers_and_digit_strings() -> None:
    """Ids may be JSON numbers or digit strings of up to 19 digits."""
    assert parse_id(4876876000000000001) == "4876876000000000001"
    assert parse_id("12") == "12"
    assert parse_id("12a") is None
    assert parse_id(True) is None
    assert parse_id(10**20) is None


def test_valid_values_pass() -> None:
    """Well-formed values of every type pass validation."""
    schema = load_schema()
    leads = compile_module(schema.modules["Leads"], schema.user_ids)
    record = {
        "Email": "o'neil+crm@mail.example.co.uk",
        "Phone": "+44 (20) 7946-0958",
        "Website": "www.example.org/path?q=1",
        "Languages": ["French"],
        "Date_of_Birth": "1990-02-28",
        "Last_Contacted": "2024-03-05T10:12:44+05:30",
        "No_of_Employees": 999_999_999,
        "External_Ref": "123456789012345678",
        "Annual_Revenue": 1234.5,
        "Email_Opt_Out": True,
        "Owner": {"id": "4876876000000233001"},
        "Unknown_Field": object(),
        "Created_Time": "ignored, read-only",
    }
    assert check_values(leads, record, lambda module, rid: False) is None


def test_invalid_calendar_date_fails() -> None:
    """A date of the right shape but not on the calendar is invalid."""
    schema = load_schema()
    leads = compile_module(schema.modules["Leads"], schema.user_ids)
    problem = check_values(leads, {"Date_of_Birth": "2023-02-30"}, lambda m, r: False)
    assert problem is not None
    assert problem["details"]["api_name"] == "Date_of_Birth"


def test_merge_appends_only_new_options() -> None:
    """An append adds options not yet present and drops `$` keys and the id."""
    merged = merge_fields(
        {"Languages": ["English"]},
        {"id": "1", "Languages": ["English", "French"], "$append_values": {"Languages": True}},
        frozenset({"Languages"}),
    )
    assert merged == {"Languages": ["English", "French"]}


def test_sample_records_differ_in_unique_fields() -> None:
    """Generated records never share a unique value."""
    module = load_schema().modules["Deals"]
    assert sample_record(module, 1)["Deal_Name"] != sample_record(module, 2)["Deal_Name"]


def test_user_schema_file_loads_and_errors_name_the_field(tmp_path: Path) -> None:
    """A user's schema file replaces the built-in one; a bad one names module and field."""
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"modules": {"Tickets": {"fields": [
        {"api_name": "Subject", "data_type": "text", "system_mandatory": True},
    ]}}}))  # fmt: skip
    assert list(load_schema(good).modules) == ["Tickets"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"modules": {"Tickets": {"fields": [
        {"api_name": "Subject", "data_type": "hologram"},
    ]}}}))  # fmt: skip
    with pytest.raises(SchemaError, match=r"Tickets\.Subject"):
        load_schema(bad)

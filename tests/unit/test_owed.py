"""The owed state's fold: sending the fold is the same as sending each change in turn."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from syncengine.engine.owed import (
    absorb_owed,
    blamed_position,
    fold_records,
    note_merge,
    owed_positions,
)
from syncengine.model import Change, Operation, SourcePosition
from syncengine.sim.store import merge_fields

MULTI = frozenset({"Tags", "Langs"})

values = st.sampled_from(["a", "b", "c"])
fields = st.fixed_dictionaries(
    {},
    optional={
        "Company": st.sampled_from(["Acme", "Globex", ""]),
        "Phone": st.sampled_from(["1", "2"]),
        "Tags": st.lists(values, max_size=3),
        "Langs": st.lists(values, max_size=3),
    },
)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record = draw(fields)
    multis = [name for name in ("Tags", "Langs") if name in record]
    if multis:
        flags = draw(st.dictionaries(st.sampled_from(multis), st.booleans(), max_size=2))
        if flags:
            record["$append_values"] = flags
    return record


@given(
    st.dictionaries(st.sampled_from(["Company", "Tags", "Langs"]), st.just(["a"])),
    st.lists(records(), min_size=1, max_size=5),
)
def test_sending_the_fold_equals_sending_each_change_in_turn(
    existing: dict[str, Any], history: list[dict[str, Any]]
) -> None:
    existing = {name: (value if name in MULTI else "x") for name, value in existing.items()}
    one_by_one = existing
    for record in history:
        one_by_one = merge_fields(one_by_one, record, MULTI)
    folded = history[0]
    for record in history[1:]:
        folded = fold_records(folded, record)
    assert merge_fields(existing, folded, MULTI) == one_by_one


def test_a_value_after_an_append_replaces_it() -> None:
    older = {"Tags": ["a"], "$append_values": {"Tags": True}}
    assert fold_records(older, {"Tags": ["b"]}) == {"Tags": ["b"]}


def test_an_append_after_a_value_sends_the_union_as_a_value() -> None:
    newer = {"Tags": ["a", "b"], "$append_values": {"Tags": True}}
    assert fold_records({"Tags": ["a"]}, newer) == {"Tags": ["a", "b"]}


def _change(line: int, record: dict[str, Any]) -> Change:
    return Change(
        "Leads",
        Operation.UPDATE,
        {"id": "1", **record},
        "Leads:1",
        [SourcePosition(line, line * 10, line)],
    )


def test_absorbing_keeps_every_position_and_blames_the_line_that_set_the_rejected_field() -> None:
    rejected = _change(1449, {"Email": "taken@example.org"})
    rejected.earlier_positions, rejected.positions = owed_positions(rejected), []
    later = _change(3842, {"Company": "Acme"})
    absorb_owed(rejected, later)
    assert later.record == {"id": "1", "Email": "taken@example.org", "Company": "Acme"}
    assert owed_positions(later) == [1449, 3842]
    assert blamed_position(later, "Email") == 1449
    assert blamed_position(later, "Company") == 3842
    assert blamed_position(later, None) == 3842


def test_a_merged_change_blames_the_line_that_supplied_the_value() -> None:
    held = _change(2220, {"Zip_Code": "1234567890123"})
    newer = _change(2341, {"Phone": "555"})
    note_merge(held, newer)
    held.record.update(newer.record)
    held.positions.extend(newer.positions)
    assert blamed_position(held, "Zip_Code") == 2220
    assert blamed_position(held, "Phone") == 2341
    assert owed_positions(held) == [2220, 2341]


def test_a_fix_in_a_later_change_wins() -> None:
    rejected = _change(1, {"Email": "bad", "Company": "Acme"})
    rejected.earlier_positions, rejected.positions = owed_positions(rejected), []
    fix = _change(2, {"Email": "good@example.org"})
    absorb_owed(rejected, fix)
    assert fix.record == {"id": "1", "Email": "good@example.org", "Company": "Acme"}
    assert blamed_position(fix, "Email") == 2

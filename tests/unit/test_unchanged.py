"""The rule of `skip_unchanged` (engine/unchanged.py): pure, no I/O."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syncengine.engine.unchanged import (
    Sent,
    decode,
    encode,
    field_digests,
    is_unchanged,
    may_skip,
)
from syncengine.model import Change, Operation

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
records = st.dictionaries(
    st.from_regex(r"[A-Z][a-z_]{0,8}", fullmatch=True), json_values, max_size=6
)


@settings(max_examples=50)
@given(records)
def test_digests_survive_the_journal(record: dict[str, Any]) -> None:
    digests = field_digests(record)
    assert decode(encode(digests)) == digests


@settings(max_examples=50)
@given(records, records)
def test_unchanged_exactly_when_every_sent_value_is_held(
    held: dict[str, Any], wire: dict[str, Any]
) -> None:
    accepted = field_digests(held)
    expected = bool(wire) and all(name in held and held[name] == wire[name] for name in wire)
    # Equal JSON values digest alike (1 and True and 1.0 are not equal JSON).
    same = all(type(held.get(n)) is type(v) for n, v in wire.items())
    if same:
        assert is_unchanged(wire, accepted) == expected


def test_the_id_and_dollar_keys_are_not_compared() -> None:
    held = field_digests({"id": "1", "Company": "Acme"})
    assert is_unchanged({"id": "2", "Company": "Acme"}, held)
    assert not is_unchanged({"id": "1"}, held)  # nothing to compare: send it
    assert not is_unchanged({"Company": "Acme"}, None)
    assert not is_unchanged({"Company": "Acme", "Phone": "1"}, held)


def test_key_order_inside_values_does_not_matter() -> None:
    held = field_digests({"Address": {"City": "Oslo", "Zip": "0150"}})
    assert is_unchanged({"Address": {"Zip": "0150", "City": "Oslo"}}, held)


def change(operation: Operation, record: dict[str, Any], key: str = "Leads:1") -> Change:
    return Change("Leads", operation, record, key, [])


def test_only_writes_of_fields_to_a_known_record_may_be_skipped() -> None:
    assert may_skip(change(Operation.UPDATE, {"id": "1", "Company": "x"}))
    assert may_skip(change(Operation.UPSERT, {"Email": "a@b.c"}, "Leads:Email=a@b.c"))
    assert not may_skip(change(Operation.DELETE, {"id": "1"}))
    assert not may_skip(change(Operation.INSERT, {"Company": "x"}, "@jsonl:f#3"))
    assert not may_skip(
        change(Operation.UPDATE, {"id": "1", "Tags": ["a"], "$append_values": {"Tags": True}})
    )
    assert not may_skip(change(Operation.UPDATE, {"id": "1"}))


def test_what_an_accepted_send_leaves() -> None:
    before = field_digests({"Company": "Acme", "Phone": "1"})
    sent = field_digests({"Phone": "2"})
    update = Sent("Leads:1", before, sent, Operation.UPDATE)
    assert decode(update.after({}) or "") == field_digests({"Company": "Acme", "Phone": "2"})
    created = Sent("Leads/k", before, sent, Operation.UPSERT)
    assert decode(created.after({"action": "insert"}) or "") == sent  # a new record
    assert decode(created.after({"action": "update"}) or "") == {**before, **sent}
    unchanged = Sent("Leads:1", before, None, Operation.UPDATE)
    assert decode(unchanged.after({}) or "") == before
    assert Sent("Leads:1", None, None, Operation.UPDATE).after({}) is None

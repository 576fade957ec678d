"""The retry payload: what the journal keeps to re-send a change."""

from __future__ import annotations

import pytest

from syncengine.journal import decode_payload, encode_payload, journal_key
from syncengine.model import Change, Operation, SourcePosition


def _position(display: int) -> SourcePosition:
    return SourcePosition(ordinal=display - 1, resume_after=display * 40, display=display)


def test_payload_round_trip_keeps_what_a_resend_needs() -> None:
    """Module, operation, record (with $ keys), trigger and key survive; feed positions
    survive only in display form, as the positions the record still owes."""
    change = Change(
        module="Deals",
        operation=Operation.UPSERT,
        record={"Deal_Name": "Ü-Bahn", "Amount": 12.5, "$append_values": {"Tags": True}},
        key="Deals:Ü-Bahn",
        positions=[_position(7)],
        trigger=("workflow",),
        attempts=2,
    )
    back = decode_payload(encode_payload(change), attempts=5)
    assert back == Change(
        module="Deals",
        operation=Operation.UPSERT,
        record=change.record,
        key="Deals:Ü-Bahn",
        positions=[],
        trigger=("workflow",),
        attempts=5,
        earlier_positions=[7],
    )


def test_no_trigger_stays_none() -> None:
    """A change without a trigger list is re-sent without one (not with an empty list)."""
    change = Change("Leads", Operation.UPDATE, {"id": "1"}, "Leads:1", [_position(1)])
    assert decode_payload(encode_payload(change), attempts=0).trigger is None


def test_keyless_insert_is_known_by_its_position() -> None:
    """An insert without identity gets the journal key "@" + display position, kept on re-send."""
    change = Change("Leads", Operation.INSERT, {"Last_Name": "X"}, None, [_position(12)])
    assert journal_key(change) == "@12"
    assert decode_payload(encode_payload(change), attempts=1).key == "@12"


def test_keyless_change_without_position_has_no_row() -> None:
    """A change with neither key nor position cannot be journaled: ValueError."""
    change = Change("Leads", Operation.INSERT, {"Last_Name": "X"}, None, [])
    with pytest.raises(ValueError, match="journal row"):
        journal_key(change)

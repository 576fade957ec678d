"""The chunker keeps a rejected record's owed state for the record's next change."""

from __future__ import annotations

from typing import Any

from syncengine.engine.chunker import Chunker
from syncengine.model import Change, Operation, SourcePosition


def _change(line: int, record: dict[str, Any], *, record_id: str = "1") -> Change:
    return Change(
        "Leads",
        Operation.UPDATE,
        {"id": record_id, **record},
        f"Leads:{record_id}",
        [SourcePosition(line - 1, line * 10, line)],
    )


def _send_one(chunker: Chunker) -> Change:
    chunks = chunker.pop_ready(flush=True)
    assert len(chunks) == 1
    assert len(chunks[0].changes) == 1
    return chunks[0].changes[0]


def _settle_positions(change: Change) -> None:
    """What the recorder does when it journals a failure: positions kept as displays."""
    change.earlier_positions, change.positions = change.owed_positions, []


def test_a_change_waiting_behind_a_rejected_one_absorbs_its_owed_state() -> None:
    chunker = Chunker()
    chunker.add(_change(1, {"Email": "taken@example.org"}))
    first = _send_one(chunker)
    chunker.add(_change(2, {"Company": "Acme"}))
    _settle_positions(first)
    chunker.fail(first)
    second = _send_one(chunker)
    assert second.record == {"id": "1", "Email": "taken@example.org", "Company": "Acme"}
    assert second.owed_positions == [1, 2]


def test_a_change_arriving_after_a_rejection_absorbs_its_owed_state() -> None:
    chunker = Chunker()
    chunker.add(_change(1, {"Email": "taken@example.org"}))
    first = _send_one(chunker)
    _settle_positions(first)
    chunker.fail(first)
    assert chunker.owes("Leads:1")
    assert chunker.idle
    chunker.add_many([_change(5, {"Company": "Acme"}), _change(6, {"Phone": "1"}, record_id="2")])
    chunks = chunker.pop_ready(flush=True)
    sent = {change.key: change for chunk in chunks for change in chunk.changes}
    assert sent["Leads:1"].record == {"id": "1", "Email": "taken@example.org", "Company": "Acme"}
    assert sent["Leads:2"].record == {"id": "2", "Phone": "1"}
    assert not chunker.owes("Leads:1")


def test_a_completed_change_leaves_nothing_owed() -> None:
    chunker = Chunker()
    chunker.add(_change(1, {"Company": "Acme"}))
    first = _send_one(chunker)
    chunker.complete(first)
    chunker.add(_change(2, {"Phone": "1"}))
    assert _send_one(chunker).record == {"id": "1", "Phone": "1"}


def test_owed_states_beyond_the_memory_bound_are_read_back_from_the_journal() -> None:
    chunker = Chunker(max_owed_in_memory=1)
    for record_id in ("1", "2"):
        chunker.add(_change(int(record_id), {"Email": "bad"}, record_id=record_id))
        change = _send_one(chunker)
        _settle_positions(change)
        chunker.fail(change)
    assert not chunker.owes("Leads:1")  # let go of: its row is in the journal
    assert chunker.owes("Leads:2")
    chunker.add(_change(7, {"Company": "Acme"}, record_id="1"))
    assert chunker.to_load == ["Leads:1"]
    assert chunker.pop_ready(flush=True) == []  # parked until its owed state is read
    chunker.add(_change(8, {"Phone": "2"}, record_id="1"))  # queues behind, merges
    owed = _change(1, {"Email": "bad"}, record_id="1")
    _settle_positions(owed)
    chunker.owed_loaded("Leads:1", owed)
    sent = _send_one(chunker)
    assert sent.record == {"id": "1", "Email": "bad", "Company": "Acme", "Phone": "2"}
    assert sent.owed_positions == [1, 7, 8]


def test_a_record_failed_in_an_earlier_pass_is_parked_then_released() -> None:
    chunker = Chunker(owed_elsewhere={"Leads:1"})
    chunker.add_many([_change(3, {"Company": "Acme"})])
    assert not chunker.idle
    assert chunker.to_load == ["Leads:1"]
    chunker.owed_loaded("Leads:1", None)  # nothing owed after all (retried meanwhile)
    assert _send_one(chunker).record == {"id": "1", "Company": "Acme"}


def test_a_redriven_owed_state_replaces_the_one_in_memory() -> None:
    chunker = Chunker()
    chunker.add(_change(1, {"Email": "bad"}))
    first = _send_one(chunker)
    _settle_positions(first)
    chunker.fail(first)
    chunker.forget_owed("Leads:1")
    redriven = Change("Leads", Operation.UPDATE, {"id": "1", "Email": "bad"}, "Leads:1")
    redriven.earlier_positions = [1]
    chunker.add(redriven)
    sent = _send_one(chunker)
    assert sent.owed_positions == [1]

"""Tests for the coalescing chunker (design.md invariant 3)."""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncengine.engine.chunker import Chunker
from syncengine.model import Change, Chunk, Operation, SourcePosition

_ordinal = 0


def make(
    key: str | None,
    fields: dict[str, Any] | None = None,
    *,
    operation: Operation = Operation.UPDATE,
    module: str = "Leads",
    trigger: tuple[str, ...] | None = (),
    ordinal: int | None = None,
) -> Change:
    """Build a change with one position (a fresh ordinal unless given)."""
    global _ordinal
    if ordinal is None:
        _ordinal += 1
        ordinal = _ordinal
    record = dict(fields or {"Company": "Acme"})
    position = SourcePosition(ordinal=ordinal, resume_after=ordinal, display=ordinal)
    return Change(module, operation, record, key, [position], trigger)


def only(chunks: list[Chunk]) -> Chunk:
    """The single chunk of a pop, failing when there is not exactly one."""
    assert len(chunks) == 1
    return chunks[0]


def test_full_chunks_are_ready_without_flush() -> None:
    """A chunk is handed out as soon as it holds max_records changes; partial ones wait."""
    chunker = Chunker(max_records=100)
    for i in range(250):
        chunker.add(make(f"Leads:{i}"))
    chunks = chunker.pop_ready()
    assert [len(c.changes) for c in chunks] == [100, 100]
    assert chunker.buffered == 50
    assert [len(c.changes) for c in chunker.pop_ready(flush=True)] == [50]
    assert chunker.buffered == 0
    assert chunker.in_flight_keys == 250


def test_max_records_above_api_limit_is_rejected() -> None:
    """A chunk size above the API's 100 records per call is refused at construction."""
    with pytest.raises(ValueError, match="max_records"):
        Chunker(max_records=101)


def test_change_to_buffered_record_merges_later_values_win() -> None:
    """A second change to a record not yet sent merges into it: later values win."""
    chunker = Chunker()
    first = make("Leads:1", {"id": "1", "A": 1, "B": 1})
    second = make("Leads:1", {"id": "1", "B": 2, "C": 2})
    chunker.add(first)
    chunker.add(second)
    chunk = only(chunker.pop_ready(flush=True))
    assert len(chunk.changes) == 1
    assert chunk.changes[0].record == {"id": "1", "A": 1, "B": 2, "C": 2}
    assert chunk.changes[0].positions == first.positions[:1] + second.positions


def test_change_to_record_in_flight_waits_until_complete() -> None:
    """A change arriving while its record is in flight is held until that send completes."""
    chunker = Chunker()
    first = make("Leads:1", {"A": 1})
    chunker.add(first)
    only(chunker.pop_ready(flush=True))
    chunker.add(make("Leads:1", {"A": 2}))
    chunker.add(make("Leads:1", {"B": 3}))
    assert chunker.pop_ready(flush=True) == []
    assert chunker.buffered == 1
    chunker.complete(first)
    chunk = only(chunker.pop_ready(flush=True))
    assert chunk.changes[0].record == {"A": 2, "B": 3}


def test_special_keys_are_never_merged() -> None:
    """Changes carrying `$` keys wait behind their neighbour instead of merging."""
    chunker = Chunker()
    first = make("Leads:1", {"Tags": ["a"], "$append_values": {"Tags": True}})
    second = make("Leads:1", {"Tags": ["b"], "$append_values": {"Tags": True}})
    chunker.add(first)
    chunker.add(second)
    assert [c.record for c in only(chunker.pop_ready(flush=True)).changes] == [first.record]
    chunker.complete(first)
    assert only(chunker.pop_ready(flush=True)).changes == [second]


def test_different_operation_for_same_key_waits() -> None:
    """A change with another operation for the same key waits rather than changing group."""
    chunker = Chunker()
    upsert = make("Leads:1", operation=Operation.UPSERT)
    update = make("Leads:1", operation=Operation.UPDATE)
    chunker.add(upsert)
    chunker.add(update)
    chunk = only(chunker.pop_ready(flush=True))
    assert chunk.group.operation is Operation.UPSERT
    assert chunk.changes == [upsert]
    chunker.complete(upsert)
    assert only(chunker.pop_ready(flush=True)).changes == [update]


def test_keyless_changes_never_merge_or_wait() -> None:
    """Inserts without identity each get their own slot, even with equal fields."""
    chunker = Chunker()
    for _ in range(3):
        chunker.add(make(None, {"Last_Name": "X"}, operation=Operation.INSERT))
    assert len(only(chunker.pop_ready(flush=True)).changes) == 3


def test_groups_are_cut_into_separate_chunks() -> None:
    """Records of different modules or triggers never share a chunk."""
    chunker = Chunker()
    chunker.add(make("Leads:1"))
    chunker.add(make("Contacts:1", module="Contacts"))
    chunker.add(make("Leads:2", trigger=("workflow",)))
    chunks = chunker.pop_ready(flush=True)
    assert sorted((c.group.module, c.group.trigger) for c in chunks) == [
        ("Contacts", ()),
        ("Leads", ()),
        ("Leads", ("workflow",)),
    ]


def test_retry_keeps_key_in_flight_and_does_not_absorb_newer_changes() -> None:
    """A retried change is re-sent alone; a newer change to its record waits behind it."""
    chunker = Chunker()
    first = make("Leads:1", {"A": 1})
    chunker.add(first)
    only(chunker.pop_ready(flush=True))
    chunker.retry(first)
    newer = make("Leads:1", {"A": 2})
    chunker.add(newer)
    assert chunker.in_flight_keys == 1
    assert only(chunker.pop_ready(flush=True)).changes == [first]
    assert first.record == {"A": 1}
    chunker.complete(first)
    assert only(chunker.pop_ready(flush=True)).changes == [newer]


def test_complete_of_change_not_handed_out_raises() -> None:
    """Completing a change twice (or one never handed out) is a pipeline bug and raises."""
    chunker = Chunker()
    change = make("Leads:1")
    chunker.add(change)
    with pytest.raises(ValueError, match="not handed out"):
        chunker.complete(change)
    chunker.pop_ready(flush=True)
    chunker.complete(change)
    with pytest.raises(ValueError, match="not handed out"):
        chunker.complete(change)


def test_complete_many_of_change_not_handed_out_raises() -> None:
    """The bulk completion checks each change as `complete` does."""
    chunker = Chunker()
    first, second = make("Leads:1"), make("Leads:2")
    chunker.add_many([first, second])
    chunker.pop_ready(flush=True)
    chunker.complete_many([first, second])
    with pytest.raises(ValueError, match="not handed out"):
        chunker.complete_many([second])


def test_complete_many_stops_at_the_first_change_not_handed_out() -> None:
    """Changes before the bad one are completed; those after it stay handed out."""
    chunker = Chunker()
    changes = [make(f"Leads:{n}") for n in range(5)]
    chunker.add_many(changes)
    chunker.pop_ready(flush=True)
    chunker.complete(changes[2])
    with pytest.raises(ValueError, match="'Leads:2' is not handed out"):
        chunker.complete_many(changes)
    assert chunker.in_flight == 2
    assert chunker.in_flight_keys == 2
    assert not chunker.holds("Leads:0")
    assert chunker.holds("Leads:3")
    chunker.complete_many([changes[3], changes[4]])
    assert chunker.idle


def test_idle_only_when_nothing_buffered_or_in_flight() -> None:
    """`idle` is false while a change is buffered or handed out, true after completion."""
    chunker = Chunker()
    assert chunker.idle
    change = make(None, operation=Operation.INSERT)
    chunker.add(change)
    assert not chunker.idle
    chunker.pop_ready(flush=True)
    assert not chunker.idle
    assert chunker.in_flight == 1
    chunker.complete(change)
    assert chunker.idle


_KEYS = ["Leads:1", "Leads:2", "Leads:3", None]
_FIELDS = st.dictionaries(st.sampled_from(["A", "B", "C"]), st.integers(0, 9), max_size=3)


def _draw_change(data: st.DataObject, ordinal: int) -> Change:
    key = data.draw(st.sampled_from(_KEYS))
    fields: dict[str, Any] = dict(data.draw(_FIELDS))
    if data.draw(st.integers(0, 9)) == 0:
        fields["$append_values"] = {"A": True}
    operation = data.draw(st.sampled_from([Operation.UPDATE, Operation.UPDATE, Operation.UPSERT]))
    return make(key, fields, operation=operation, ordinal=ordinal)


class _Harness:
    """Drives a chunker and checks every hand-out against the invariants."""

    def __init__(self, *, bulk: bool = False) -> None:
        self.bulk = bulk  # drive the chunker through add_many / complete_many
        self.pending: list[Change] = []
        self.chunker = Chunker(max_records=3)
        self.feed: list[Change] = []
        self.sent: list[tuple[str | None, dict[str, Any]]] = []
        self.first_sends: dict[str, list[int]] = defaultdict(list)
        self.out: list[Change] = []
        self.sent_once: set[int] = set()
        self.finished: Counter[SourcePosition] = Counter()

    def add(self, change: Change) -> None:
        self.feed.append(
            Change(
                change.module,
                change.operation,
                copy.deepcopy(change.record),
                change.key,
                list(change.positions),
                change.trigger,
            )
        )
        if self.bulk:
            self.pending.append(change)
        else:
            self.chunker.add(change)

    def take_pending(self) -> None:
        if self.pending:
            self.chunker.add_many(self.pending)
            self.pending = []

    def pop(self, flush: bool) -> None:
        self.take_pending()
        for chunk in self.chunker.pop_ready(flush=flush):
            assert 1 <= len(chunk.changes) <= 3
            for change in chunk.changes:
                group = (change.module, change.operation, change.trigger)
                assert group == (chunk.group.module, chunk.group.operation, chunk.group.trigger)
                assert change.key is None or change.key not in {c.key for c in self.out}
                self.out.append(change)
                self.sent.append((change.key, copy.deepcopy(change.record)))
                if change.key is not None and id(change) not in self.sent_once:
                    self.first_sends[change.key].extend(p.ordinal for p in change.positions)
                self.sent_once.add(id(change))

    def finish_all(self) -> None:
        """Complete every change handed out, at once when driving in bulk."""
        self.take_pending()
        if not self.bulk:
            while self.out:
                self.finish(0, retry=False)
            return
        changes, self.out = self.out, []
        self.chunker.complete_many(changes)
        for change in changes:
            self.finished.update(change.positions)

    def finish(self, index: int, *, retry: bool) -> None:
        self.take_pending()
        change = self.out.pop(index)
        if retry:
            self.chunker.retry(change)
        else:
            self.chunker.complete(change)
            self.finished.update(change.positions)

    def check_final_state(self) -> None:
        """Hand-outs applied in order equal the feed applied in order; positions once each."""
        expected: dict[str, dict[str, Any]] = defaultdict(dict)
        for change in self.feed:
            if change.key is not None:
                expected[change.key].update(change.record)
        applied: dict[str, dict[str, Any]] = defaultdict(dict)
        for key, record in self.sent:
            if key is not None:
                applied[key].update(record)
        assert applied == expected
        for ordinals in self.first_sends.values():
            assert ordinals == sorted(ordinals)
        all_positions = [p for change in self.feed for p in change.positions]
        assert self.finished == Counter(all_positions)
        assert max(self.finished.values()) == 1


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_interleavings_keep_order_and_lose_nothing(data: st.DataObject) -> None:
    """Any interleaving of adds, hand-outs, completions and retries keeps invariant 3.

    Half the examples drive the bulk entry points (`add_many`, `complete_many`),
    which must behave exactly as their one-change counterparts.
    """
    harness = _Harness(bulk=data.draw(st.booleans()))
    for ordinal in range(data.draw(st.integers(1, 40))):
        harness.add(_draw_change(data, ordinal))
        action = data.draw(
            st.sampled_from(["none", "pop", "flush", "complete", "retry", "complete_all"])
        )
        if action in ("pop", "flush"):
            harness.pop(action == "flush")
        elif action == "complete_all":
            harness.finish_all()
        elif action in ("complete", "retry") and harness.out:
            index = data.draw(st.integers(0, len(harness.out) - 1))
            harness.finish(index, retry=action == "retry")
    harness.take_pending()
    while not harness.chunker.idle:
        harness.pop(True)
        harness.finish_all()

    harness.check_final_state()

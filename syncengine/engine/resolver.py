"""The last step before a chunk goes on the wire: resolve it, skip what is unchanged.

Runs in the sender task, because both steps read the journal: the id map
(`engine.references`: keyed changes and `$ref` values become ids) and, with
`[crm] skip_unchanged`, the digests of what the CRM already holds
(`engine.unchanged`). A chunk may then go out as one request per operation
(a keyed insert of a mapped key is an update), or not at all. What each
accepted send teaches is left in `sent` for the dispatcher, which owns the
record's journal row and the in-memory maps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from syncengine.crm.write_request import WriteRequest
from syncengine.engine.known_values import KnownValues
from syncengine.engine.references import IdMap, Plan, keys_to_look_up, needs_resolution, plan_chunk
from syncengine.engine.unchanged import (
    UNCHANGED,
    Sent,
    decode,
    field_digests,
    is_unchanged,
    may_skip,
)
from syncengine.model import Change, Chunk, Operation, Record, RecordOutcome, Verdict

Write = Callable[[WriteRequest], Awaitable[list[RecordOutcome]]]

_UNCHANGED_OUTCOME = RecordOutcome(
    Verdict.SYNCED, UNCHANGED, "the CRM holds these values already (skip_unchanged)"
)
_REGROUP_OUTCOME = RecordOutcome(Verdict.REGROUP, "REGROUP", "changed: sent in a fuller chunk")


class Resolver:
    """Resolves chunks against the id map and, when asked, skips unchanged records."""

    def __init__(
        self,
        id_map: IdMap,
        *,
        accepted: KnownValues[str] | None = None,
        skip: bool = False,
    ) -> None:
        """`accepted` tracks what the CRM holds (`skip_unchanged`); `skip` uses it to
        leave unchanged records unsent (False for `run --full`, which only records)."""
        self.id_map = id_map
        self.accepted = accepted
        self._skip = skip
        #: id(change) -> what its send teaches, until the dispatcher takes it.
        self.sent: dict[int, Sent] = {}

    def wants(self, chunk: Chunk) -> bool:
        """True when `chunk` cannot go out as read: it must pass through `send`."""
        return self.accepted is not None or needs_resolution(chunk)

    async def send(
        self,
        chunk: Chunk,
        request_for: Callable[[Operation, list[Record]], WriteRequest],
        write: Write,
    ) -> list[RecordOutcome]:
        """One outcome per change of `chunk`, in order."""
        ids = await self.id_map.lookup(keys_to_look_up(chunk.changes))
        plan = plan_chunk(chunk.changes, ids)
        if self.accepted is not None:
            await self._compare(chunk.changes, plan, self.accepted)
        outcomes = plan.outcomes
        for operation, indices, records in plan.requests:
            if not indices:
                continue
            answers = await write(request_for(operation, records))
            for index, answer in zip(indices, answers, strict=True):
                record_id = plan.ids[index]
                if answer.crm_id is None and record_id is not None:
                    answer = replace(answer, crm_id=record_id)
                outcomes[index] = answer
        answered = [outcome for outcome in outcomes if outcome is not None]
        assert len(answered) == len(outcomes), "every change of the chunk has an outcome"
        return answered

    async def _compare(self, changes: list[Change], plan: Plan, accepted: KnownValues[str]) -> None:
        """Takes unchanged records out of the plan's requests; notes what the rest teach."""
        candidates = [
            (operation, index, wire)
            for operation, indices, records in plan.requests
            for index, wire in zip(indices, records, strict=True)
            if changes[index].key is not None
            and not changes[index].compared
            and may_skip(changes[index])
        ]
        if not candidates:
            return
        keys = [changes[index].key for _, index, _ in candidates]
        known = await accepted.lookup({key for key in keys if key is not None})
        skipped: set[int] = set()
        for operation, index, wire in candidates:
            key = changes[index].key
            assert key is not None
            text = known.get(key) if operation is not Operation.INSERT else None
            held = None if text is None else decode(text)
            if self._skip and operation is not Operation.INSERT and is_unchanged(wire, held):
                plan.outcomes[index] = _UNCHANGED_OUTCOME
                self.sent[id(changes[index])] = Sent(key, held, None, operation)
                skipped.add(index)
            else:
                self.sent[id(changes[index])] = Sent(key, held, field_digests(wire), operation)
                changes[index].compared = True
        if skipped:
            self._regroup(plan, skipped)

    @staticmethod
    def _regroup(plan: Plan, skipped: set[int]) -> None:
        """What is left of a chunk once unchanged records are out goes back to be chunked
        again: a nightly export with 5 % changed would otherwise send 5-record calls,
        each costing a credit where a full chunk of changed records costs 10 for 100."""
        for _, indices, _ in plan.requests:
            for index in indices:
                if index not in skipped:
                    plan.outcomes[index] = _REGROUP_OUTCOME
        plan.requests = []

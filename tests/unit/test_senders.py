"""The sender tasks: one chunk each, attempts counted at the start, answers handed back."""

from __future__ import annotations

import asyncio

from syncengine.crm.client import WriteRequest
from syncengine.engine.senders import Senders
from syncengine.errors import FatalError
from syncengine.model import (
    Change,
    Chunk,
    ChunkGroup,
    Operation,
    RecordOutcome,
    SourcePosition,
    Verdict,
)

GROUP = ChunkGroup("Leads", Operation.UPDATE, ("workflow",))


def chunk_of(*ids: int) -> Chunk:
    changes = [
        Change("Leads", Operation.UPDATE, {"id": str(n)}, f"Leads:{n}", [SourcePosition(n, n, n)])
        for n in ids
    ]
    return Chunk(GROUP, changes)


class GatedWriter:
    """Answers SUCCESS for each record once `release` is set; records what it was asked."""

    def __init__(self, *, fatal_on: str | None = None) -> None:
        self.requests: list[WriteRequest] = []
        self.release = asyncio.Event()
        self.fatal_on = fatal_on

    async def write(self, request: WriteRequest) -> list[RecordOutcome]:
        self.requests.append(request)
        await self.release.wait()
        if self.fatal_on is not None and any(r["id"] == self.fatal_on for r in request.records):
            raise FatalError("the CRM refused update on Leads: HTTP 403 OAUTH_SCOPE_MISMATCH")
        return [RecordOutcome(Verdict.SYNCED, "SUCCESS") for _ in request.records]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_chunk_counts_as_handed_out_until_its_answer_is_taken_back() -> None:
    writer = GatedWriter()
    answers = 0

    def on_answer() -> None:
        nonlocal answers
        answers += 1

    senders = Senders(
        writer,
        workers=2,
        apply_feature_execution=("layout_rules",),
        on_answer=on_answer,
        on_fatal=lambda error: None,
    )
    tasks = senders.start()
    first, second = chunk_of(1, 2, 3), chunk_of(4)
    senders.hand(first)
    assert senders.has_room
    senders.hand(second)
    assert not senders.has_room
    assert (senders.handed_out, senders.records, senders.unanswered) == (2, 4, 2)
    assert [change.attempts for change in first.changes] == [1, 1, 1]  # counted at the start
    await settle()
    assert [request.records for request in writer.requests] == [
        [{"id": "1"}, {"id": "2"}, {"id": "3"}],
        [{"id": "4"}],
    ]
    assert writer.requests[0].trigger == ("workflow",)
    assert writer.requests[0].apply_feature_execution == ("layout_rules",)

    writer.release.set()
    await settle()
    assert answers == 2
    assert senders.unanswered == 0
    assert senders.handed_out == 2  # answered, not yet taken back
    taken = list(senders.take_answered())
    assert [chunk for chunk, _ in taken] == [first, second]
    assert [len(outcomes) for _, outcomes in taken] == [3, 1]
    assert (senders.handed_out, senders.records) == (0, 0)
    assert list(senders.take_answered()) == []

    senders.stop()
    await asyncio.wait_for(asyncio.gather(*tasks), 1)


async def test_a_fatal_answer_is_reported_and_ends_that_sender() -> None:
    writer = GatedWriter(fatal_on="7")
    errors: list[BaseException] = []
    senders = Senders(writer, workers=1, on_answer=lambda: None, on_fatal=errors.append)
    (task,) = senders.start()
    senders.hand(chunk_of(7))
    writer.release.set()
    await asyncio.wait_for(task, 1)
    assert len(errors) == 1
    assert isinstance(errors[0], FatalError)
    assert "OAUTH_SCOPE_MISMATCH" in str(errors[0])
    assert senders.unanswered == 1  # never answered: the engine ends the pass

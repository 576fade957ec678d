"""The engine's key filter: a partition's pass sends only its own pending records.

A real engine over a real journal holding pending rows (a killed pass's
payloads) of records in every partition; each partition's pass, with its
key filter, sends exactly the rows of its partition, so across partitions
every row is sent once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from syncengine.engine import Engine, EngineSettings
from syncengine.journal import Journal
from syncengine.journal.records import RecordUpdate, encode_payload
from syncengine.model import Change, Operation, RecordState, SourcePosition
from syncengine.workers.partition import key_filter, partition_of
from tests.unit.test_dispatcher_clock import ScriptedWriter

PARTITIONS = 3
RECORDS = 60


def pending(n: int) -> RecordUpdate:
    change = Change(
        "Leads",
        Operation.UPDATE,
        {"id": str(n), "Company": f"c{n}"},
        f"Leads:{n}",
        [SourcePosition(0, n + 1, n + 1)],
    )
    return RecordUpdate(
        f"Leads:{n}",
        "Leads",
        str(n),
        Operation.UPDATE,
        RecordState.PENDING,
        1,
        "TIMEOUT",
        "no answer",
        None,
        None,
        encode_payload(change),
        n + 1,
    )


async def test_each_partition_sends_only_its_pending_records(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db", commit_process=True)
    try:
        await journal.submit([pending(n) for n in range(RECORDS)])
        sent: list[set[str]] = []
        for number in range(PARTITIONS):
            writer = ScriptedWriter()
            engine = Engine(
                journal=journal,
                writer=writer,
                settings=EngineSettings(module="Leads", workers=2),
                source=None,
                keys=key_filter(number, PARTITIONS),
            )
            await engine.run(asyncio.Event())
            ids = {str(record["id"]) for request in writer.requests for record in request.records}
            assert ids == {
                str(n) for n in range(RECORDS) if partition_of(f"Leads:{n}", PARTITIONS) == number
            }
            sent.append(ids)
        assert set().union(*sent) == {str(n) for n in range(RECORDS)}
        assert sum(len(ids) for ids in sent) == RECORDS
    finally:
        await journal.close()

"""Partitions of the record key: stable, complete, and each a feed of its own."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncengine.engine.watermark import Watermark
from syncengine.model import BadInput, Change, Checkpoint, Operation
from syncengine.sources.base import Item
from syncengine.sources.jsonl import JsonlSource
from syncengine.sources.records import RecordDefaults
from syncengine.workers.launcher import at_once_for, launch_status
from syncengine.workers.partition import (
    PartitionSource,
    item_key,
    key_filter,
    partition_of,
    partition_source_id,
)

DEFAULTS = RecordDefaults("Leads", Operation.UPDATE, ())


@given(st.text(max_size=40), st.integers(min_value=1, max_value=1024))
def test_partition_is_in_range_and_stable(key: str, partitions: int) -> None:
    number = partition_of(key, partitions)
    assert 0 <= number < partitions
    assert partition_of(key, partitions) == number


def test_partition_is_the_same_in_another_process() -> None:
    # Python's own str hash is salted per process; the partition function must not be.
    keys = [f"Leads:{n}" for n in range(20)] + ["@jsonl:/feed#12", "Leads/é"]
    script = (
        "import sys, json; from syncengine.workers.partition import partition_of;"
        "print(json.dumps([partition_of(k, 16) for k in json.loads(sys.argv[1])]))"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, json.dumps(keys)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert json.loads(other.stdout) == [partition_of(key, 16) for key in keys]
    assert partition_of("Leads:1", 16) == zlib.crc32(b"Leads:1") % 16


def test_partitions_spread_keys_evenly() -> None:
    counts = [0] * 8
    for number in range(8000):
        counts[partition_of(f"Leads:{number}", 8)] += 1
    assert min(counts) > 800
    assert max(counts) < 1200


def test_key_filter_accepts_its_partition_only() -> None:
    keys = [f"Leads:{n}" for n in range(200)]
    filters = [key_filter(p, 4) for p in range(4)]
    for key in keys:
        assert sum(accepts(key) for accepts in filters) == 1


def test_partition_source_ids_differ_per_partition_and_count() -> None:
    names = {partition_source_id("jsonl:/f", p, n) for n in (2, 4) for p in range(n)}
    assert len(names) == 6


def test_partition_out_of_range_is_refused(tmp_path: Path) -> None:
    source = JsonlSource(tmp_path / "f.jsonl", DEFAULTS)
    with pytest.raises(ValueError, match="out of range"):
        PartitionSource(source, 4, 4)


def _write_feed(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))


def _read(source: PartitionSource, start: Checkpoint | None) -> list[Item]:
    async def collect() -> list[Item]:
        return [item async for batch in source.read(start) for item in batch]

    return asyncio.run(collect())


FEED = [{"id": str(n % 37), "First_Name": f"v{n}"} for n in range(300)] + [
    "not an object"  # type: ignore[list-item]
]


def test_partitions_together_are_the_feed_once_in_feed_order(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    _write_feed(path, FEED)
    seen: list[tuple[int | str, str]] = []
    for number in range(5):
        source = PartitionSource(JsonlSource(path, DEFAULTS), number, 5)
        items = _read(source, None)
        # Consecutive ordinals from 0: the watermark of the partition's own read accepts them.
        watermark = Watermark(None)
        for item in items:
            positions = [item.position] if isinstance(item, BadInput) else item.positions
            watermark.note_read_many(positions)
        displays = [
            (item.position if isinstance(item, BadInput) else item.positions[0]).display
            for item in items
        ]
        assert displays == sorted(displays, key=int)  # feed order within a partition
        for item in items:
            key = item_key(item, JsonlSource(path, DEFAULTS).source_id)
            assert partition_of(key, 5) == number
            display = (item.position if isinstance(item, BadInput) else item.positions[0]).display
            seen.append((display, key))
    assert sorted(display for display, _ in seen) == list(range(1, len(FEED) + 1))
    # Every change to one record is in one partition.
    partitions_of_key: dict[str, set[int]] = {}
    for _, key in seen:
        partitions_of_key.setdefault(key, set()).add(partition_of(key, 5))
    assert all(len(found) == 1 for found in partitions_of_key.values())


def test_a_partition_resumes_after_its_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    _write_feed(path, FEED)
    source = PartitionSource(JsonlSource(path, DEFAULTS), 2, 5)
    everything = _read(source, None)
    middle = everything[len(everything) // 2]
    assert isinstance(middle, Change)
    position = middle.positions[0]
    resumed = _read(
        PartitionSource(JsonlSource(path, DEFAULTS), 2, 5),
        Checkpoint(position.resume_after, position.display, position.generation),
    )
    expected = everything[len(everything) // 2 + 1 :]
    assert [i.positions[0].display for i in resumed if isinstance(i, Change)] == [
        i.positions[0].display for i in expected if isinstance(i, Change)
    ]
    assert [i.positions[0].ordinal for i in resumed if isinstance(i, Change)][:3] == [0, 1, 2]


@pytest.mark.parametrize(
    ("statuses", "unfinished", "interrupted", "expected"),
    [
        ((0, 0, 0), 0, False, 0),
        ((0, -9, 0), 0, False, 0),  # a killed worker whose partition another finished
        ((0, 1, 0), 0, False, 1),
        ((-9, -9), 3, False, 3),
        ((0, 0), 0, True, 130),
    ],
)
def test_launch_status(
    statuses: tuple[int, ...], unfinished: int, interrupted: bool, expected: int
) -> None:
    assert launch_status(statuses, unfinished, interrupted=interrupted) == expected


@pytest.mark.parametrize(
    ("partitions", "workers", "expected"),
    [(16, 1, 16), (16, 2, 8), (16, 3, 6), (16, 4, 4), (4, 8, 1)],
)
def test_launched_workers_each_work_an_even_share(
    partitions: int, workers: int, expected: int
) -> None:
    assert at_once_for(partitions, workers) == expected

"""Admission: how a batch from the intake enters the pipeline.

Every item read is counted, and its feed positions noted in the watermark,
before anything else happens to it, so the checkpoint can later move past it
(design.md invariant 1). Then a plain change goes to the chunker (a run of
them at once), a bad line or row becomes a failed record at once, a re-read
change the journal already settled is finished without a send, and a change
re-driven from the journal (it has no feed position) leaves the redrive set.

A re-driven change is the journal's copy of what a record owes. When the
engine itself already holds newer work for that record (a change waiting or
in flight, which absorbed the owed state, or an outcome taken since the
journal was read) the copy is stale and is dropped: sending it would put an
older value over a newer one (`supersedes`).
"""

from __future__ import annotations

from collections.abc import Callable

from syncengine.engine.chunker import Chunker
from syncengine.engine.recorder import Recorder
from syncengine.engine.replay import AlreadySettled, Batch
from syncengine.engine.watermark import Watermark
from syncengine.keys import position_key
from syncengine.model import BadInput, Change


class Admission:
    """Takes intake batches into the chunker; owned by the engine's dispatcher."""

    __slots__ = (
        "_chunker",
        "_module",
        "_recorder",
        "_redriving",
        "_source_id",
        "_supersedes",
        "_watermark",
    )

    def __init__(
        self,
        *,
        watermark: Watermark,
        recorder: Recorder,
        chunker: Chunker,
        redriving: set[str],
        source_id: str,
        module: str,
        supersedes: Callable[[str], bool] = lambda _key: False,
    ) -> None:
        self._watermark = watermark
        self._recorder = recorder
        self._chunker = chunker
        self._redriving = redriving
        self._source_id = source_id
        self._module = module
        self._supersedes = supersedes

    def take(self, batch: Batch) -> None:
        """Takes in one batch; a plain feed change (one position, a key) goes the short way."""
        plain: list[Change] = []
        for item in batch:
            if type(item) is Change and item.key is not None and len(item.positions) == 1:
                plain.append(item)
                continue
            if plain:  # the chunker must see changes in feed order
                self._take_plain(plain)
                plain = []
            self._take_one(item)
        if plain:
            self._take_plain(plain)

    def _take_plain(self, plain: list[Change]) -> None:
        """A run of feed changes with one position and a key each, in feed order."""
        self._watermark.note_read_many([change.positions[0] for change in plain])
        self._recorder.counts.read += len(plain)
        self._chunker.add_many(plain)

    def _take_one(self, item: Change | BadInput | AlreadySettled) -> None:
        counts = self._recorder.counts
        if isinstance(item, AlreadySettled):
            for position in item.positions:
                self._watermark.note_read(position)
            counts.read += 1
            counts.replay_skipped += 1
            self._recorder.already_settled(item.positions)
            return
        if isinstance(item, BadInput):
            self._watermark.note_read(item.position)
            counts.read += 1
            position = item.position
            key = position_key(self._source_id, position.display, generation=position.generation)
            self._recorder.bad_input(item, key=key, module=self._module)
            return
        if item.positions:
            for position in item.positions:
                self._watermark.note_read(position)
            counts.read += 1
            if item.key is None:
                # Feeds key their inserts as they read them, before the replay
                # window's look-up; this keys a change built without a feed.
                first = item.positions[0]
                item.key = position_key(self._source_id, first.display, generation=first.generation)
        else:
            record_key = item.key
            if record_key is not None:
                self._redriving.discard(record_key)
                if self._supersedes(record_key):
                    return  # the engine's own, newer state of the record wins
                self._chunker.forget_owed(record_key)  # this copy is the owed state itself
            counts.redriven += 1
        self._chunker.add(item)

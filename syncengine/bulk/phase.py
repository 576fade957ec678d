"""The bulk phase of `migrate`: what can go by bulk write goes, before the records pass.

1. Jobs an earlier pass left between steps are resumed (`job_runner`).
2. The feed is read from the journal's checkpoint through the replay window
   (so what the journal settled is not counted) and each key counted
   (`census`); each (module, operation) group is priced and picked
   (`choice`), logged as `bulk.plan`.
3. The feed is read again; the changes of picked groups whose key occurs
   once go into jobs of up to 25,000 rows, each journaled with its rows
   before its upload; `[limits] bulk_jobs_in_flight` of them run at once
   (`job_pool`). A change that local validation refuses (`[crm] validate`)
   is left to the records pass, which fails it unsent, as it fails it
   without a bulk phase.

Inserts and upserts are counted by the value of the field upsert jobs match
on (`_census_key`), not by their own keys: an insert and an upsert (or two of
either) naming the same value would otherwise go in different jobs, which
run in no feed order, so the upsert could create the record before the
insert that precedes it in the feed (which then fails DUPLICATE_DATA). The
records pass sends them as it sends any change without a bulk phase.

The phase never moves the checkpoint. It writes each row's outcome as the
records path would, with its feed position, and raises the feed's high water
to the last position it settled; the records pass then reads from the same
checkpoint, its replay window finds those rows settled and skips them, and it
sends only what the phase left (and re-drives the rows it handed over).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import structlog

from syncengine.bulk.census import Census, Group
from syncengine.bulk.choice import GroupChoice, WriteApi, choose
from syncengine.bulk.eligibility import change_refusal
from syncengine.bulk.heap import give_back
from syncengine.bulk.hosts import upload_url_for
from syncengine.bulk.job_pool import JobPool
from syncengine.bulk.job_runner import BulkCounts, JobRunner, JobStopped
from syncengine.bulk.jobs_journal import JobLine, JobRow, JobsJournal
from syncengine.config import Config
from syncengine.crm.auth import TokenProvider
from syncengine.crm.bulk_csv import (
    MAX_ROWS_PER_FILE,
    BulkFile,
    BulkInputError,
    find_by_for,
    plan_files,
)
from syncengine.crm.bulk_write import BulkWriteClient
from syncengine.crm.field_rules import ModuleRules
from syncengine.crm.session import make_session
from syncengine.engine.local_validation import UniqueHolders, judge
from syncengine.engine.replay import ReplayWindow, read_start
from syncengine.engine.validating_writer import RulesLookup
from syncengine.errors import FatalError
from syncengine.journal import Journal, decode_payload, encode_payload
from syncengine.keys import duplicate_key, position_key
from syncengine.model import Change, Checkpoint, Operation, SourcePosition
from syncengine.sources import open_source
from syncengine.sources.base import Source
from syncengine.sources.generation import row_source

log = structlog.get_logger("syncengine.bulk")

#: How long one job may run before the pass gives up waiting (it resumes next time).
POLL_DEADLINE_S = 6 * 3600.0


@dataclass(slots=True)
class BulkSummary:
    """The phase's picks per group and what its jobs did."""

    choices: list[GroupChoice] = field(default_factory=list)
    counts: BulkCounts = field(default_factory=BulkCounts)
    #: A stop came while a job ran: its rows are not settled, so no records pass may
    #: follow in this process (it would send them while the job may still write them).
    stopped: bool = False


class _Feed:
    """One feed, read from where the pass starts, its settled changes left out."""

    def __init__(self, journal: Journal, source: Source) -> None:
        self._journal = journal
        self.source = source
        self.source_id = source.source_id
        self.start: Checkpoint | None = None
        self.high_water: Checkpoint | None = None

    async def locate(self) -> None:
        """Read the checkpoint and high water (again: resumed jobs may have raised it)."""
        self.high_water = await self._journal.high_water(self.source_id)
        checkpoint = await self._journal.checkpoint(self.source_id)
        self.start = read_start(checkpoint, self.high_water)

    async def changes(self) -> AsyncIterator[list[Change]]:
        """Batches of the feed's changes not yet settled, each with its journal key."""
        replay = ReplayWindow(self._journal, self.source_id, self.high_water, self.start)
        async with contextlib.aclosing(self.source.read(self.start)) as batches:
            async for batch in batches:
                items = await replay.filter(batch) if replay.active else batch
                out: list[Change] = []
                for item in items:
                    if type(item) is Change and item.positions:
                        if item.key is None:
                            first = item.positions[0]
                            item.key = position_key(
                                self.source_id, first.display, generation=first.generation
                            )
                        out.append(item)
                yield out


class BulkPhase:
    """One phase: its feed, journal, jobs and client."""

    def __init__(
        self,
        config: Config,
        journal: Journal,
        runner: JobRunner,
        jobs: JobsJournal,
        api: WriteApi,
        rules: RulesLookup | None = None,
    ) -> None:
        self._config = config
        self._rules = rules
        self._module_rules: dict[str, ModuleRules | None] = {}
        self._no_holders = UniqueHolders(max_values=0)
        self._journal = journal
        self._runner = runner
        self._jobs = jobs
        self._api = api
        self._feed = _Feed(journal, open_source(config))
        self._find_by: dict[Group, str | None] = {}
        self.summary = BulkSummary(counts=runner.counts)

    async def run(self, stop: asyncio.Event) -> BulkSummary:
        """Resume jobs left over, then plan and run new ones unless the API is `records`."""
        for job in self._jobs.unfinished():
            if stop.is_set():
                return self.summary
            await self._runner.resume(job)
        if self._api is WriteApi.RECORDS or stop.is_set():
            return self.summary
        await self._feed.locate()
        census = await self._count()
        try:
            picked = self._choose(census)
            if picked and not stop.is_set():
                await self._send(census, picked, stop)
        finally:
            census.close()  # its table is not kept through the records pass
        return self.summary

    def _find_by_of(self, group: Group) -> str | None:
        """The job's `find_by` for a group (raises BulkInputError when none is known)."""
        if group not in self._find_by:
            fields = self._config.crm.duplicate_check_fields
            self._find_by[group] = find_by_for(
                group[0], group[1], duplicate_check_field=fields[0] if fields else None
            )
        return self._find_by[group]

    async def _count(self) -> Census:
        owed = self._jobs.owed_keys()
        triggers_allowed = self._api is WriteApi.BULK or self._config.crm.bulk_without_triggers
        dup_fields = self._config.crm.duplicate_check_fields
        #: The change being counted, whose own key the census may not see (`_census_key`).
        noting: list[Change] = []

        def group_for(_counted: Change) -> Group | None:
            change = noting[-1]
            group = (change.module, change.operation)
            if change.operation is Operation.UPSERT and len(dup_fields or ()) > 1:
                return None  # a job finds records by one field; the records API checks them all
            try:
                find_by = (
                    self._find_by_of(group) if change.operation is not Operation.DELETE else None
                )
            except BulkInputError:
                return None
            refused = change_refusal(
                change, find_by=find_by, owed_keys=owed, triggers_allowed=triggers_allowed
            )
            if refused is not None or self._refused_locally(change):
                return None
            return group

        census = Census(group_for)
        async for batch in self._feed.changes():
            for change in batch:
                if self._rules is not None and change.module not in self._module_rules:
                    self._module_rules[change.module] = await self._rules.rules(change.module)
                noting[:] = [change]
                census.note(self._census_key(change))
        return census

    def _census_key(self, change: Change) -> Change:
        """`change` as the census counts it: an insert's or upsert's key is the upsert
        match field's value, case folded as the CRM compares it (see the module docstring)."""
        if change.operation is not Operation.INSERT and change.operation is not Operation.UPSERT:
            return change
        try:
            match_field = self._find_by_of((change.module, Operation.UPSERT))
        except BulkInputError:
            return change
        value = change.record.get(match_field) if match_field else None
        if value is None or value == "" or isinstance(value, dict | list):
            return change
        folded = value.casefold() if isinstance(value, str) else value
        # Only the key is read: a bare Change costs less than a copy (this runs per row).
        key = duplicate_key(change.module, str(match_field), folded)
        return Change(change.module, change.operation, change.record, key)

    def _refused_locally(self, change: Change) -> bool:
        """True when local validation fails `change`: the records pass fails it unsent.

        Only the record's own values are judged (no unique value held by another
        record of this run): the records pass judges it again, with those.
        """
        rules = self._module_rules.get(change.module)
        if rules is None:
            return False
        rejection, _unknown = judge(
            rules,
            change.operation,
            change.record,
            holders=self._no_holders,
            unknown_mode=self._config.crm.unknown_fields,
        )
        return rejection is not None

    def _choose(self, census: Census) -> set[Group]:
        crm, limits = self._config.crm, self._config.limits
        picked: set[Group] = set()
        for (module, operation), rows in census.rows_by_group().items():
            choice = choose(
                module,
                operation,
                rows,
                api=self._api,
                job_credits=limits.bulk_job_credits,
                records_per_credit=limits.records_per_credit,
                triggers_wanted=bool(crm.trigger),
                bulk_without_triggers=crm.bulk_without_triggers,
            )
            self.summary.choices.append(choice)
            log.info(
                "bulk.plan",
                module=module,
                operation=operation.value,
                rows=rows,
                credits_bulk=choice.bulk_credits,
                credits_records=choice.records_credits,
                api="bulk" if choice.bulk else "records",
            )
            if choice.bulk:
                picked.add((module, operation))
                self.summary.counts.planned += rows
        return picked

    async def _send(self, census: Census, picked: set[Group], stop: asyncio.Event) -> None:
        if await self._runner.available():
            pool = JobPool(self._config.limits.bulk_jobs_in_flight)
            try:
                await self._fill(pool, census, picked, stop)
                await pool.drain()
            finally:
                await pool.cancel()
        refused = self._runner.unavailable
        if refused is None:
            return
        if self._api is WriteApi.BULK:
            raise FatalError(f"bulk write is not available ({refused}); try --api records")
        # `auto`: an org without bulk write (or a token without its scopes) is sent
        # the records API's way; the rows of the refused job were handed over.
        log.warning("bulk.unavailable", error=refused, detail="sending by the records API")

    async def _fill(
        self, pool: JobPool, census: Census, picked: set[Group], stop: asyncio.Event
    ) -> None:
        # Jobs start in the order the feed first names their groups.
        waiting = {group: _Waiting() for group in census.rows_by_group() if group in picked}
        source_id = self._feed.source_id
        async for batch in self._feed.changes():
            for change in batch:
                group = census.group_of(self._census_key(change))
                if group in waiting:
                    assert group is not None
                    rows = waiting[group]
                    rows.add(source_id, change)
                    if len(rows.lines) >= MAX_ROWS_PER_FILE:
                        waiting[group] = _Waiting()
                        await self._jobs_for(pool, group, rows)
                        if stop.is_set():
                            return
        for group in list(waiting):
            rows = waiting.pop(group)
            if rows.lines and not stop.is_set():
                await self._jobs_for(pool, group, rows)

    async def _jobs_for(self, pool: JobPool, group: Group, waiting: _Waiting) -> None:
        """Journal and run the jobs of `waiting`'s rows; rows a file cannot carry stay in
        the feed, and so do all rows once the CRM refused bulk write (the records pass
        sends them).

        Empties `waiting` once its jobs are journaled, before waiting for a place
        in the pool: a job under way holds only its file (`job_runner`).
        """
        lines, positions = waiting.lines, waiting.positions
        waiting.lines, waiting.positions = [], []
        if self._runner.unavailable is not None:
            return
        async with self._runner.working:
            try:
                planned = self._plan(group, lines, positions)
            finally:
                del lines, positions
                give_back()
        for job, file in planned:
            await pool.add(self._runner.run(job, file))

    def _plan(
        self, group: Group, lines: list[JobLine], positions: list[SourcePosition]
    ) -> list[tuple[JobRow, BulkFile]]:
        """The files of one group's rows, each journaled as a job with its rows."""
        module, operation = group
        find_by = self._find_by_of(group)
        # The records as the journaled payloads hold them: as a resumed job rebuilds its file.
        records = [decode_payload(line.payload, attempts=0).record for line in lines]
        try:
            plan = plan_files(module, operation, records, find_by=find_by)
        except BulkInputError as exc:  # more fields than a job maps: the records path sends them
            log.warning(
                "bulk.not_planned", module=module, operation=operation.value, error=str(exc)
            )
            return []
        del records
        planned: list[tuple[JobRow, BulkFile]] = []
        for file in plan.files:
            last = max((positions[row] for row in file.positions), key=lambda p: p.ordinal)
            job = self._jobs.plan(
                source=self._feed.source_id,
                module=module,
                operation=operation,
                find_by=find_by,
                lines=[lines[row] for row in file.positions],
                last=Checkpoint(last.resume_after, last.display, last.generation),
            )
            planned.append((job, file))
        return planned


@dataclass(slots=True)
class _Waiting:
    """One group's rows not yet in a job: each as its journal line (about a third of
    what the change itself takes) and the feed position its job's `last` comes from."""

    lines: list[JobLine] = field(default_factory=list)
    positions: list[SourcePosition] = field(default_factory=list)

    def add(self, source_id: str, change: Change) -> None:
        self.lines.append(_line(source_id, change))
        self.positions.append(change.positions[-1])


#: One string per feed file for all its rows, not one per row.
_row_source = functools.lru_cache(maxsize=64)(row_source)


def _line(source_id: str, change: Change) -> JobLine:
    assert change.key is not None
    position = change.positions[-1]
    return JobLine(
        change.key,
        position.display,
        _row_source(source_id, position.generation),
        _right_sized(encode_payload(change)),
    )


def _right_sized(blob: bytes) -> bytes:
    """A copy of `blob` that occupies only its length.

    orjson (from 3.12) returns bytes in a buffer of at least 4 KiB that it
    never shrinks: 25,000 payloads of ~150 bytes held for one job would take
    100 MB instead of 4.
    """
    return bytes(memoryview(blob))


async def run_bulk_phase(
    config: Config,
    journal: Journal,
    tokens: TokenProvider,
    *,
    api: WriteApi,
    stop: asyncio.Event,
    rules: RulesLookup | None = None,
    on_counts: Callable[[BulkCounts], None] | None = None,
) -> BulkSummary:
    """The bulk phase of one pass (see the module docstring); `records` only resumes jobs.

    `rules` is the records pass's field metadata (None with `[crm] validate = false`);
    `on_counts` is handed the phase's live counts before any job runs (the progress bar).
    """
    jobs = journal.jobs()
    session = make_session(
        concurrency=config.limits.bulk_jobs_in_flight + 1,
        connect_timeout_s=config.crm.connect_timeout_s,
    )
    try:
        client = BulkWriteClient(
            session=session,
            api_domain=config.crm.api_domain,
            upload_url=upload_url_for(config.crm.api_domain),
            tokens=tokens,
            timeout_s=max(300.0, config.crm.timeout_s),
            poll_first_s=config.limits.bulk_poll_s,
            poll_cap_s=max(60.0, config.limits.bulk_poll_s),
            proxy=config.crm.proxy,
        )
        runner = JobRunner(
            client=client,
            journal=journal,
            jobs=jobs,
            high_water=await journal.high_water(open_source(config).source_id),
            job_credits=config.limits.bulk_job_credits,
            call_credits=config.limits.credits_per_call,
            poll_deadline_s=POLL_DEADLINE_S,
            stop=stop,
            rules=rules,
            track_unchanged=config.crm.skip_unchanged,
        )
        if on_counts is not None:
            on_counts(runner.counts)
        phase = BulkPhase(config, journal, runner, jobs, api, rules)
        try:
            summary = await phase.run(stop)
        except JobStopped:
            log.info("bulk.stopped", detail="the job runs on; the next migrate collects it")
            summary = phase.summary
            summary.stopped = True
    finally:
        await session.close()
        jobs.close()
    counts = summary.counts
    if counts.jobs or counts.synced or counts.failed or counts.handed_over:
        log.info(
            "bulk.summary",
            jobs=counts.jobs,
            synced=counts.synced,
            failed=counts.failed,
            handed_over=counts.handed_over,
            credits=counts.credits,
        )
    return summary

"""Drives one bulk-write job from its journaled step to its end, and journals its outcome.

Steps, each journaled before the next request (`jobs_journal`): upload →
`uploaded`, create → `created`, poll, download, then the rows' outcomes and
the raised high water go to the journal in one group commit, and the job is
`done`. Resumed after a crash, a job starts from the step journaled:

* `created`: polled and read; its rows are never uploaded again;
* `uploaded` (a crash between the upload's answer and the job id): an update
  or upsert job is created again (writing the same values twice changes
  nothing); an insert job may exist already, so its rows are handed to the
  records path instead. That is the crash bound of bulk inserts: a job
  created in the CRM whose answer was lost inserts its rows, and the records
  path inserts them again;
* `planned`: no job was ever asked for; it is uploaded and created anew.

Memory: while a job is under way only its file is held; its rows' changes
are read back from the jobs journal when its outcome is journaled, and the
outcome goes to the journal `SETTLE_ROWS` rows at a time, so what a job
costs in memory does not grow with its rows' payloads. A job is `done` only
once its last slice, which carries the raised high water, is durable: killed
between slices, the next pass collects the job again and writes the same
rows again.

A job refused (file or body refused, scope missing, org unknown) or ending
FAILED hands its rows to the records path, as do rows the job skipped or did
not process. A job that has not finished by the deadline, or whose result
cannot be fetched, ends the pass with FatalError; a stop asked for while a
job runs raises JobStopped. The next `migrate` resumes the job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from syncengine.bulk.accepted import digest_keys, with_digests
from syncengine.bulk.heap import give_back
from syncengine.bulk.jobs_journal import JobLine, JobRow, JobsJournal
from syncengine.bulk.outcomes import JOB_UNKNOWN, JobRows, failed_unknown, handed_over, rows_for
from syncengine.crm.bulk_answers import (
    BulkJobUnknownError,
    BulkPollTimeoutError,
    BulkRefusedError,
    BulkResultError,
    BulkUnavailableError,
    JobStatus,
)
from syncengine.crm.bulk_csv import BulkFile, BulkInputError, plan_files
from syncengine.crm.bulk_write import BulkWriteClient
from syncengine.engine.recorder import is_past
from syncengine.engine.validating_writer import RulesLookup
from syncengine.errors import FatalError
from syncengine.journal import Journal, decode_payload
from syncengine.model import Checkpoint, Operation

log = structlog.get_logger("syncengine.bulk")

#: Rows of a job's outcome per group commit (see the module docstring).
SETTLE_ROWS = 2_000

T = TypeVar("T")


@dataclass(slots=True)
class BulkCounts:
    """What the phase did: jobs created, and its rows by how they ended.

    Live while the phase runs (the progress bar reads it): `planned` is the
    rows the phase picked for bulk write, `merged` is set once the pass has
    added `synced` and `failed` into its own counts.
    """

    planned: int = 0
    jobs: int = 0
    synced: int = 0
    failed: int = 0
    handed_over: int = 0
    credits: int = 0
    merged: bool = False


def rebuild_file(job: JobRow, lines: list[JobLine]) -> BulkFile | None:
    """The file of a journaled job, built again from its rows' changes (None if it differs)."""
    records = [decode_payload(line.payload, attempts=0).record for line in lines]
    try:
        plan = plan_files(job.module, job.operation, records, find_by=job.find_by)
    except BulkInputError:
        return None
    if plan.refused or len(plan.files) != 1 or len(plan.files[0].positions) != len(lines):
        return None
    return plan.files[0]


class JobStopped(Exception):
    """The pass was asked to stop while a job ran; the job stays journaled by its id."""


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T:
    """`work`'s result, or JobStopped (and `work` cancelled) once `stop` is set."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()  # another job failed: this one stops waiting too
        raise
    finally:
        stopper.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise JobStopped
    return task.result()


class JobRunner:
    """Runs jobs one at a time for one pass; raises the feed's high water as they settle."""

    def __init__(
        self,
        *,
        client: BulkWriteClient,
        journal: Journal,
        jobs: JobsJournal,
        high_water: Checkpoint | None,
        job_credits: int,
        call_credits: int,
        poll_deadline_s: float,
        stop: asyncio.Event,
        rules: RulesLookup | None = None,
        track_unchanged: bool = False,
    ) -> None:
        """`job_credits` is what a job costs, `call_credits` what the org read costs;
        `rules` (field metadata) completes rejected rows' details as the records API's;
        `track_unchanged` (`[crm] skip_unchanged`) keeps digests with synced rows."""
        self._client = client
        self._journal = journal
        self._jobs = jobs
        self._high = high_water
        self._job_credits = job_credits
        self._call_credits = call_credits
        self._org_read = False
        self._org_lock = asyncio.Lock()
        self._deadline_s = poll_deadline_s
        self._stop = stop
        self._rules = rules
        self._track_unchanged = track_unchanged
        #: Held while a job's file is built (`phase`) or its result journaled: one
        #: at a time, so a job that ends while the next is built adds nothing to the peak.
        self.working = asyncio.Lock()
        self.counts = BulkCounts()
        #: Why the CRM refused a job before it was created (the org read, the
        #: upload, the job itself), once it did: no further job is planned.
        self.unavailable: str | None = None

    async def resume(self, job: JobRow) -> None:
        """A job an earlier pass left between steps."""
        file = rebuild_file(job, self._jobs.lines(job))
        log.info("bulk.resume", job=job.id, state=job.state, job_id=job.job_id, rows=job.rows)
        self.counts.planned += job.rows
        if file is None:
            log.error("bulk.resume_mismatch", job=job.id)
            await self._hand_over(job, "the job's file could not be built again")
            return
        if job.state == "uploaded" and job.operation is Operation.INSERT:
            # The job may have been created with its answer lost: see the module docstring.
            await self._hand_over(job, "an insert job whose creation is unknown")
            return
        await self.run(job, file)

    async def available(self) -> bool:
        """Whether the CRM takes bulk-write jobs: the org read uploads need, made once.

        Asked before any job is planned, so an org without bulk write (or a
        token without its scopes) costs one refused call, not a job's rows
        journaled and handed over; False sets `unavailable`.
        """
        try:
            await self._read_org()
        except (BulkRefusedError, BulkJobUnknownError, BulkUnavailableError) as exc:
            log.warning("bulk.org_unreadable", code=exc.code, error=str(exc)[:300])
            self.unavailable = self.unavailable or str(exc)[:300]
        return self.unavailable is None

    async def _read_org(self) -> None:
        async with self._org_lock:  # uploads name the org: one metadata call
            if not self._org_read:
                await self._client.org_id()
                self._org_read = True
                self.counts.credits += self._call_credits

    async def run(self, job: JobRow, file: BulkFile) -> None:
        """Take `job` from its journaled step to its end."""
        try:
            if job.state == "planned":
                await self._read_org()
                self._jobs.uploaded(job, await self._client.upload(file))
            if job.state == "uploaded":
                assert job.file_id is not None
                self._jobs.created(job, await self._client.create_job(file, job.file_id))
                self.counts.jobs += 1
                self.counts.credits += self._job_credits
        except (BulkRefusedError, BulkJobUnknownError, BulkUnavailableError) as exc:
            log.warning("bulk.job_not_created", job=job.id, code=exc.code, error=str(exc)[:300])
            if not isinstance(exc, BulkJobUnknownError):
                self.unavailable = self.unavailable or str(exc)[:300]
            await self._hand_over(job, f"bulk write: {exc}"[:500])
            return
        assert job.job_id is not None
        try:
            # A stop (SIGINT, SIGTERM) ends the wait, not the job: the next pass collects it.
            status = await _unless_stopped(
                self._client.poll(job.job_id, deadline_s=self._deadline_s), self._stop
            )
        except BulkPollTimeoutError as exc:
            raise FatalError(
                f"bulk-write job {job.job_id} is still running; run migrate again to collect it"
            ) from exc
        async with self.working:
            try:
                await self._collect(job, file, status)
            finally:
                give_back()

    async def _collect(self, job: JobRow, file: BulkFile, status: JobStatus) -> None:
        """Fetch a finished job's result and journal its rows' outcomes."""
        assert job.job_id is not None
        try:
            outcomes = await _unless_stopped(self._client.outcomes(file, status), self._stop)
        except BulkResultError as exc:
            log.warning("bulk.result_unreadable", job_id=job.job_id, error=str(exc)[:300])
            message = f"bulk write: {exc}"[:500]
            if job.operation is Operation.INSERT:
                await self._settle(job, lambda lines: failed_unknown(lines, message))
            else:
                await self._hand_over(job, message, state="done")
            return
        except (BulkRefusedError, BulkUnavailableError) as exc:
            raise FatalError(
                f"the result of bulk-write job {job.job_id} could not be read ({exc.code}); "
                "run migrate again to fetch it"
            ) from exc
        rules = None if self._rules is None else await self._rules.rules(job.module)
        done = 0

        def answer(lines: list[JobLine]) -> JobRows:
            nonlocal done
            rows = rows_for(lines, outcomes[done : done + len(lines)], rules, find_by=job.find_by)
            done += len(lines)
            return rows

        totals = await self._settle(job, answer)
        log.info(
            "bulk.job_done",
            job_id=job.job_id,
            module=job.module,
            operation=job.operation,
            synced=totals.synced,
            failed=totals.failed,
            handed_over=totals.handed_over,
            # The phase's progress, for logs where no bar is drawn.
            rows_done=self.counts.synced + self.counts.failed + self.counts.handed_over,
            rows_planned=self.counts.planned,
        )

    async def _hand_over(self, job: JobRow, message: str, *, state: str = "abandoned") -> None:
        await self._settle(job, lambda lines: handed_over(lines, JOB_UNKNOWN, message), state=state)

    async def _settle(
        self, job: JobRow, rows_of: Callable[[list[JobLine]], JobRows], *, state: str = "done"
    ) -> JobRows:
        """The job's rows (read back from the jobs journal) as `rows_of` answers them, a
        slice per group commit, the last with the raised high water; then the job ends."""
        totals = JobRows()
        for start in range(0, max(job.rows, 1), SETTLE_ROWS):
            lines = self._jobs.lines(job, start, start + SETTLE_ROWS)
            rows = rows_of(lines)
            if self._track_unchanged and rows.synced:
                known = await self._journal.accepted_values(digest_keys(lines, rows.updates))
                rows.updates = with_digests(lines, rows.updates, known)
            del lines
            high_water = {}
            last_slice = start + SETTLE_ROWS >= job.rows
            if last_slice and job.last is not None and self._raise_high_water(job.last):
                assert self._high is not None
                high_water[job.source] = self._high
            durable = self._journal.submit(rows.updates, high_water=high_water)
            totals.synced += rows.synced
            totals.failed += rows.failed
            totals.handed_over += rows.handed_over
            del rows
            await asyncio.shield(durable)
        self._jobs.ended(job, state)
        self.counts.synced += totals.synced
        self.counts.failed += totals.failed
        self.counts.handed_over += totals.handed_over
        return totals

    def _raise_high_water(self, last: Checkpoint) -> bool:
        """Make `last` the high water when it lies further on (or in another file)."""
        high = self._high
        if (
            high is None
            or high.generation != last.generation
            or is_past(last.resume_after, high.resume_after)
        ):
            self._high = last
            return True
        return False

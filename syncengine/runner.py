"""Wires a pass from a config: journal, HTTP session, token provider, limiter,
client, source and engine, opened in that order and closed in reverse.

This is the only place that turns configuration into live objects, so the
stages themselves take plain arguments and can be tested on their own.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial

import structlog

from syncengine.bulk.choice import api_for
from syncengine.bulk.job_runner import BulkCounts
from syncengine.bulk.phase import run_bulk_phase
from syncengine.config import Config
from syncengine.credits import CreditModel, CreditTally
from syncengine.crm.auth import TokenProvider
from syncengine.crm.client import CrmClient, make_session
from syncengine.crm.field_metadata import FieldRulesSource
from syncengine.engine import Engine, EngineSettings, PassCounts
from syncengine.engine.validating_writer import ValidatingWriter
from syncengine.errors import ConfigError
from syncengine.exit_status import EXIT_FATAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED
from syncengine.journal import Journal
from syncengine.journal.field_cache import JournalFieldCache
from syncengine.journal.token_cache import JournalTokenStore
from syncengine.limits import Limiter
from syncengine.logs import register_secret
from syncengine.model import MAX_CHUNK_RECORDS
from syncengine.sampler import reading_of, sampled
from syncengine.shared.org import open_shared_org
from syncengine.sources import open_source

log = structlog.get_logger("syncengine.runner")


@dataclass(frozen=True, slots=True)
class PassResult:
    """The end of a pass: its counts, whether it was stopped, its exit status."""

    counts: PassCounts
    interrupted: bool
    exit_status: int
    elapsed_s: float
    #: The pass's row in the runs table (for its report).
    run_id: int = 0
    #: Credits spent and saved (`credits`), as the summary line shows them.
    credits: dict[str, float | int | None] | None = None


def tune_gc_for_throughput() -> None:
    """Make the cyclic garbage collector run rarely during a pass.

    A pass allocates millions of short-lived, acyclic objects (changes,
    positions, outcomes); with the default threshold of 700 allocations the
    collector keeps re-scanning them and costs about a tenth of the engine's
    time. Objects alive at start-up (modules, config) are frozen out of its
    scans. Reference counting still frees everything as usual. A process-wide
    choice, so only the command line makes it.
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def engine_settings(config: Config) -> EngineSettings:
    """The engine's knobs from the config (pure)."""
    crm, limits = config.crm, config.limits
    return EngineSettings(
        module=crm.module,
        workers=limits.concurrency,
        max_attempts=limits.max_attempts,
        retry_base_s=limits.retry_base_s,
        retry_cap_s=limits.retry_cap_s,
        grace_s=limits.grace_s,
        duplicate_check_fields=crm.duplicate_check_fields,
        apply_feature_execution=("layout_rules",) if crm.apply_layout_rules else (),
        max_buffered=max(2, limits.concurrency) * MAX_CHUNK_RECORDS,
        track_unchanged=crm.skip_unchanged,
        skip_unchanged=crm.skip_unchanged,
    )


def credit_model(config: Config) -> CreditModel:
    """The price of calls from `[limits]` (`credits.CreditModel`)."""
    return CreditModel(config.limits.credits_per_call, config.limits.records_per_credit)


def credit_tally(
    counts: PassCounts,
    spent: int,
    remaining: int | None,
    *,
    refused: int = 0,
    bulk_spent: int = 0,
) -> CreditTally:
    """The credits a pass spent (`spent` by the records API, by the model, plus
    `bulk_spent` by bulk-write jobs) and saved, from its counts and the records
    validation `refused` before sending."""
    return CreditTally(
        spent=spent + bulk_spent,
        coalesced_records=counts.coalesced,
        unchanged_records=counts.unchanged,
        validated_records=refused,
        remaining=remaining,
        bulk_spent=bulk_spent,
    )


def daemon_settings(config: Config) -> EngineSettings:
    """The engine's knobs in daemon mode: follow the feed, linger for partial chunks."""
    daemon = config.daemon
    return replace(
        engine_settings(config),
        linger_s=daemon.linger_ms / 1000,
        grace_s=daemon.grace_s,
        follow_poll_interval_s=daemon.poll_interval_s,
        reference_wait_s=daemon.reference_wait_s,
        drain_on_stop=True,
        # `syncengine retry` takes effect within a few polls, never hammering the journal.
        redrive_interval_s=max(1.0, 5 * daemon.poll_interval_s),
    )


def holder_description(command: str) -> str:
    """What a second process is told about the one holding the journal."""
    return f"syncengine {command} (pid {os.getpid()} on {socket.gethostname()})"


@dataclass(frozen=True, slots=True)
class LiveParts:
    """The live objects of a pass, for the daemon's metrics and readiness checks."""

    engine: Engine
    journal: Journal
    client: CrmClient
    tokens: TokenProvider
    limiter: Limiter
    #: The client behind local validation (`[crm] validate`), None when it is off.
    validator: ValidatingWriter | None = None

    @property
    def locally_refused(self) -> int:
        """Records failed before sending because the CRM would certainly refuse them."""
        return 0 if self.validator is None else self.validator.refused


def validated(client: CrmClient, journal: Journal, config: Config) -> ValidatingWriter:
    """`client` behind local validation (`[crm] validate`), metadata cached in the journal."""
    rules = FieldRulesSource(client.read_fields, JournalFieldCache(journal), clock=time.time)
    return ValidatingWriter(client, rules, unknown_fields=config.crm.unknown_fields)


@asynccontextmanager
async def open_engine(
    config: Config,
    *,
    command: str,
    settings: EngineSettings | None = None,
    exclusive: bool = True,
) -> AsyncIterator[LiveParts]:
    """Everything a pass needs, opened in order and closed in reverse.

    Not `exclusive`: the journal is opened beside its holder, as `worker`
    processes share one journal (their partition leases keep them apart).
    """
    crm = config.crm
    for secret in (crm.client_secret, crm.refresh_token):
        register_secret(secret)
    folder = config.journal.path.parent
    if config.journal.url is None and not folder.is_dir():
        raise ConfigError(f"journal.path: the folder {folder} does not exist")
    async with AsyncExitStack() as stack:
        journal = await Journal.open(
            config.journal,
            holder=holder_description(command) if exclusive else None,
            commit_process=True,
            commit_timeout_s=config.journal.commit_timeout_s,
        )
        stack.push_async_callback(journal.close)
        # Read before this pass's own run is recorded: its answers are not lost yet.
        killed_since = await journal.killed_runs_since()
        lost_answers = None if killed_since is None else (killed_since, time.time())
        session = make_session(
            concurrency=config.limits.concurrency, connect_timeout_s=crm.connect_timeout_s
        )
        stack.push_async_callback(session.close)
        # `[limits] shared`: the org's slots, credits and token live in PostgreSQL.
        shared = None
        if config.limits.shared is not None:
            shared = await stack.enter_async_context(open_shared_org(config))
        tokens = TokenProvider(
            session=session,
            accounts_url=crm.accounts_url,
            client_id=crm.client_id,
            client_secret=crm.client_secret,
            refresh_token=crm.refresh_token,
            store=JournalTokenStore(journal) if shared is None else shared.tokens,
            timeout_s=crm.token_timeout_s,
            proxy=crm.proxy,
            refresh_guard=None if shared is None else shared.tokens.refresh_guard,
        )
        limiter = Limiter(
            concurrency=config.limits.concurrency,
            requests_per_minute=(
                None
                if config.limits.requests_per_minute is None
                else max(1, round(config.limits.requests_per_minute))
            ),
            reserve_credits=config.limits.reserve_credits,
            shared=None if shared is None else shared.slots,
            credits_listener=None if shared is None else shared.credits.report,
        )
        if shared is not None:
            shared.credits.start(limiter.apply_credits_remaining)
        client = CrmClient(
            session=session,
            api_domain=crm.api_domain,
            tokens=tokens,
            limiter=limiter,
            total_timeout_s=crm.timeout_s,
            proxy=crm.proxy,
            configured_module=crm.module,
            lost_answers=lost_answers,
            credit_model=credit_model(config),
        )
        validator = validated(client, journal, config) if crm.validate else None
        engine = Engine(
            journal=journal,
            writer=client if validator is None else validator,
            settings=settings or engine_settings(config),
            source=open_source(config),
        )
        yield LiveParts(engine, journal, client, tokens, limiter, validator)


async def record_end(
    journal: Journal,
    run_id: int,
    *,
    exit_status: int,
    counts: PassCounts,
    failing: bool,
    credits: dict[str, float | int | None] | None = None,
) -> None:
    """Records the end of run `run_id` in the runs table.

    When the pass already failed (`failing`), a journal that cannot take even
    this row must not hide that failure behind its own traceback: it is
    logged, and the run stays unfinished in the table, as a killed one does.
    """
    try:
        row: dict[str, object] = dict(counts.as_dict())
        if credits is not None:
            row["credits"] = credits
        await journal.finish_run(run_id, now=time.time(), exit_status=exit_status, counts=row)
    except Exception as exc:
        if not failing:
            raise
        log.warning("run.end_not_recorded", error=f"{type(exc).__name__}: {exc}"[:300])


def exit_status_for(counts: PassCounts, *, interrupted: bool) -> int:
    """interface.md: 130 when interrupted, 1 when this pass failed records, else 0."""
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if counts.failed else EXIT_OK


async def run_pass(
    config: Config,
    *,
    command: str,
    stop: asyncio.Event,
    on_engine: Callable[[Engine], None] | None = None,
    on_bulk: Callable[[BulkCounts], None] | None = None,
    full: bool = False,
    api: str | None = None,
) -> PassResult:
    """One `run` or `migrate` pass; the runs table records its start and end.

    `migrate` first sends what is cheaper by bulk write (`syncengine.bulk`;
    `api` is `migrate --api`), then runs the records pass; `run` only
    finishes bulk jobs a killed `migrate` left.

    FatalError and JournalLockedError propagate to the CLI, which maps them to
    exit statuses; the journal is consistent whichever way the pass ends.
    """
    started = time.monotonic()
    settings = engine_settings(config)
    if full:  # `run --full`: send everything, keep recording what the CRM holds
        settings = replace(settings, skip_unchanged=False)
    model = credit_model(config)
    async with open_engine(config, command=command, settings=settings) as parts:
        engine, journal = parts.engine, parts.journal
        stats = parts.client.stats
        spent_before = stats.credits_spent
        bulk_spent = 0

        def credits() -> dict[str, float | int | None]:
            spent = stats.credits_spent - spent_before
            tally = credit_tally(
                engine.counts,
                spent,
                stats.credits_remaining,
                refused=parts.locally_refused,
                bulk_spent=bulk_spent,
            )
            return tally.as_dict(model)

        run_id = await journal.start_run(command, now=time.time())
        if on_engine is not None:
            on_engine(engine)
        exit_status = EXIT_FATAL
        failing = True
        try:
            bulk = await run_bulk_phase(
                config,
                journal,
                parts.tokens,
                api=api_for(command, api, config.crm.write_api),
                stop=stop,
                rules=None if parts.validator is None else parts.validator.rules,
                on_counts=on_bulk,
            )
            bulk_spent = bulk.counts.credits
            counts = engine.counts
            if not bulk.stopped:
                async with sampled(journal, run_id, partial(reading_of, parts)):
                    counts = await engine.run(stop)
            # The records pass skipped the rows the bulk phase settled (its replay window).
            counts.synced += bulk.counts.synced
            counts.failed += bulk.counts.failed
            bulk.counts.merged = True
            interrupted = engine.stopped_early or bulk.stopped
            exit_status = exit_status_for(counts, interrupted=interrupted)
            failing = False
        finally:
            await record_end(
                journal,
                run_id,
                exit_status=exit_status,
                counts=engine.counts,
                failing=failing,
                credits=credits(),
            )
        spent = credits()
    elapsed_s = time.monotonic() - started
    result = PassResult(counts, interrupted, exit_status, elapsed_s, run_id, spent)
    log.info(
        "run.summary",
        command=command,
        exit_status=exit_status,
        elapsed_s=round(elapsed_s, 3),
        records_per_s=round(counts.synced / elapsed_s, 1) if elapsed_s > 0 else None,
        **counts.as_dict(),
        **{f"credits_{name}": value for name, value in spent.items()},
    )
    return result

"""The commands of interface.md and their exit statuses.

No sync logic lives here: commands parse options, load the config, call
`runner` or the journal, print, and map errors to exit statuses (2 usage or
config, 3 fatal, 4 journal held by another process, 130 interrupted).
Errors are printed as one line on standard error; JSON goes to standard out.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, NoReturn, TypeVar

import click
import orjson

from syncengine import __version__
from syncengine.config import WRITE_APIS, Config, load_config
from syncengine.errors import ConfigError, FatalError, JournalLockedError, SyncError
from syncengine.exit_status import (
    EXIT_FATAL,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
)
from syncengine.journal import Journal
from syncengine.logs import LogFormat, configure_logging, scrub
from syncengine.process_hardening import disable_core_dumps
from syncengine.progress import progress_bar
from syncengine.reports import (
    failure_documents,
    format_failures,
    format_status,
    status_document,
)
from syncengine.runner import run_pass, tune_gc_for_throughput
from syncengine.sources import open_source
from syncengine.workers.partition import DEFAULT_PARTITIONS, MAX_PARTITIONS

T = TypeVar("T")

#: The partitions a pass split over workers has (`syncengine.workers.partition`).
PARTITIONS_OPTION = click.option(
    "--partitions",
    type=click.IntRange(1, MAX_PARTITIONS),
    default=DEFAULT_PARTITIONS,
    show_default=True,
    help="Partitions of the record key a pass over workers is split into; fixed per journal.",
)

CONFIG_OPTION = click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The TOML config file.",
)


class _EnvironWithoutSecrets(Mapping[str, str]):
    """The environment, where a missing variable reads as a placeholder.

    `status`, `failures` and `retry` only read the journal, so they must work
    from a shell that does not hold the CRM secrets.
    """

    def __getitem__(self, name: str) -> str:
        return os.environ.get(name, f"unset-{name}")

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


def fail(message: str, status: int) -> NoReturn:
    """Print a one-line error (secrets scrubbed) and exit with `status`."""
    click.echo(f"syncengine: error: {scrub(message)}", err=True)
    sys.exit(status)


def _load(config_path: Path, *, needs_secrets: bool = True) -> Config:
    disable_core_dumps()  # from here on the process holds secrets (and the journal's token)
    try:
        return load_config(config_path, environ=None if needs_secrets else _EnvironWithoutSecrets())
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


def _run_async(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Runs `main(stop)`; the first SIGINT/SIGTERM sets `stop`, a second one cancels."""

    async def runner() -> T:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        task = asyncio.current_task()
        assert task is not None

        def on_signal() -> None:
            if stop.is_set():
                task.cancel()
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal)
        return await main(stop)

    try:
        return asyncio.run(runner())
    except JournalLockedError as exc:
        fail(str(exc), EXIT_LOCKED)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except FatalError as exc:
        fail(str(exc), EXIT_FATAL)
    except SyncError as exc:
        fail(str(exc), EXIT_FATAL)
    except (asyncio.CancelledError, KeyboardInterrupt):
        fail("interrupted; the checkpoint is saved", EXIT_INTERRUPTED)


class _LazyGroup(click.Group):
    """A command group whose heavier commands are imported only when they run.

    `demo` and `sim` bring the simulator's web server with them, `report` a
    plotting library; a cron job
    running `run` every minute should not pay for importing it (click's
    documented pattern for lazily loaded subcommands).
    """

    #: Command name -> "module:attribute" of its click command.
    lazy_commands: ClassVar[dict[str, str]] = {
        "demo": "syncengine.demo:demo",
        "report": "syncengine.report_command:report",
        "sim": "syncengine.sim.command:sim",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_commands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy_commands.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncengine")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    default="auto",
    show_default=True,
    help="Log lines: readable on a terminal, JSON lines otherwise (auto).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    help="Least severe events to log.",
)
def cli(log_format: LogFormat, log_level: str) -> None:
    """Push record changes into Zoho CRM in bulk, within its limits, losing nothing."""
    configure_logging(log_format=log_format, level=log_level)


@cli.command()
@CONFIG_OPTION
@click.option(
    "--full",
    is_flag=True,
    help="Send every change, even those [crm] skip_unchanged would leave out.",
)
def run(config_path: Path, full: bool) -> None:
    """One pass, as a cron job: due retries, then the feed to its current end."""
    config = _load(config_path)
    tune_gc_for_throughput()
    result = _run_async(lambda stop: run_pass(config, command="run", stop=stop, full=full))
    sys.exit(result.exit_status)


@cli.command()
@CONFIG_OPTION
@click.option(
    "-o",
    "--report",
    "report_path",
    default=None,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write this run's HTML report (see `syncengine report`) to this file.",
)
@click.option(
    "--api",
    "write_api",
    type=click.Choice(list(WRITE_APIS)),
    default=None,
    help="Write API: records, bulk (Bulk Write jobs), or auto: bulk for a (module, "
    "operation) group when that costs fewer credits ([crm] write_api, else auto).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Split the pass over this many worker processes by partitions of the record key "
    "(PostgreSQL journal only; records API).",
)
@PARTITIONS_OPTION
def migrate(
    config_path: Path,
    report_path: Path | None,
    write_api: str | None,
    workers: int | None,
    partitions: int,
) -> None:
    """The same pass for a one-off bulk load, with a live progress bar."""
    source = click.get_current_context().get_parameter_source("partitions")
    if workers is None and source is not click.core.ParameterSource.DEFAULT:
        fail("--partitions applies only with --workers", EXIT_USAGE)
    config = _load(config_path)
    if workers is not None:
        _migrate_with_workers(config, config_path, workers, partitions, write_api, report_path)
    tune_gc_for_throughput()

    async def main(stop: asyncio.Event) -> int:
        total = open_source(config).estimate_total(None)
        async with progress_bar(total) as watched:
            result = await run_pass(
                config,
                command="migrate",
                stop=stop,
                on_engine=watched.append,
                on_bulk=watched.bulk,
                api=write_api,
            )
        counts = result.counts
        click.echo(
            f"migrate: {counts.synced} synced, {counts.failed} failed "
            f"({counts.bad_input} bad input) in {result.elapsed_s:.1f} s",
            err=True,
        )
        if report_path is not None:
            from syncengine.report_command import write_report

            await write_report(config, report_path, run_id=result.run_id)
            click.echo(f"migrate: report written to {report_path}", err=True)
        return result.exit_status

    sys.exit(_run_async(main))


def _migrate_with_workers(
    config: Config,
    config_path: Path,
    workers: int,
    partitions: int,
    write_api: str | None,
    report_path: Path | None,
) -> NoReturn:
    """`migrate --workers N`: the pass over N local `worker` processes."""
    if write_api == "bulk":
        fail("--workers sends by the records API; it cannot be combined with --api bulk", 2)
    if report_path is not None:
        fail("--workers cannot be combined with --report; run `syncengine report` after", 2)
    if config.journal.url is None:
        fail("--workers needs the journal on PostgreSQL ([journal] url)", EXIT_USAGE)
    from syncengine.workers.launcher import launch

    result = _run_async(
        lambda stop: launch(config, config_path, workers=workers, partitions=partitions, stop=stop)
    )
    statuses = ", ".join(str(status) for status in result.statuses)
    click.echo(
        f"migrate: {len(result.statuses)} workers ended ({statuses}); "
        f"{result.unfinished} partition(s) unfinished",
        err=True,
    )
    sys.exit(result.exit_status)


@cli.command()
@CONFIG_OPTION
@PARTITIONS_OPTION
@click.option(
    "--at-once",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Partitions this worker works at a time (sharing its [limits] concurrency).",
)
@click.option("--join", is_flag=True, hidden=True, help="Join a pass; never begin one.")
def worker(config_path: Path, partitions: int, at_once: int, join: bool) -> None:
    """Works partitions of a pass beside other workers, until none is left."""
    from syncengine.workers.worker import run_worker

    config = _load(config_path)
    tune_gc_for_throughput()
    result = _run_async(
        lambda stop: run_worker(
            config, stop=stop, partitions=partitions, at_once=at_once, join_only=join
        )
    )
    counts = result.counts
    click.echo(
        f"worker: {result.partitions_done} partition(s), {counts.synced} synced, "
        f"{counts.failed} failed in {result.elapsed_s:.1f} s",
        err=True,
    )
    sys.exit(result.exit_status)


@cli.command()
@CONFIG_OPTION
def daemon(config_path: Path) -> None:
    """Runs until SIGTERM/SIGINT: follows the feed as it grows, retries on schedule."""
    from syncengine.daemon import run_daemon  # only the daemon needs the ops server

    config = _load(config_path)
    tune_gc_for_throughput()
    sys.exit(_run_async(lambda stop: run_daemon(config, stop=stop)))


@cli.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object on standard output.")
def status(config_path: Path, as_json: bool) -> None:
    """Counts of records by state, the checkpoint, the last run."""
    config = _load(config_path, needs_secrets=False)

    async def main(_stop: asyncio.Event) -> dict[str, Any]:
        async with await Journal.open(config.journal) as journal:
            return await status_document(journal, journal.where)

    document = _run_async(main)
    click.echo(orjson.dumps(document).decode() if as_json else format_status(document))


@cli.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="A JSON array on standard output.")
@click.option("--code", default=None, help="Only failures with this code (e.g. INVALID_DATA).")
def failures(config_path: Path, as_json: bool, code: str | None) -> None:
    """The failed records with their last error."""
    config = _load(config_path, needs_secrets=False)

    async def main(_stop: asyncio.Event) -> list[dict[str, Any]]:
        async with await Journal.open(config.journal) as journal:
            return failure_documents(await journal.failures(code=code))

    rows = _run_async(main)
    click.echo(orjson.dumps(rows).decode() if as_json else format_failures(rows))


@cli.command()
@CONFIG_OPTION
@click.option("--module", "module", default=None, help="Only this module (e.g. Accounts).")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of {module, key, id}.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a module,key,id header.")
def ids(config_path: Path, module: str | None, as_json: bool, as_csv: bool) -> None:
    """The id map: each source key's CRM id, for records inserted or upserted with a key."""
    if as_json and as_csv:
        fail("--json and --csv cannot be combined", EXIT_USAGE)
    config = _load(config_path, needs_secrets=False)
    from syncengine.ids_command import IdsFormat, write_ids

    fmt: IdsFormat = "json" if as_json else "csv" if as_csv else "text"

    async def main(_stop: asyncio.Event) -> int:
        async with await Journal.open(config.journal) as journal:
            return await write_ids(journal, sys.stdout, module=module, fmt=fmt)

    _run_async(main)


@cli.command()
@CONFIG_OPTION
@click.option("--code", default=None, help="Only failures with this code.")
@click.option("--id", "ids", multiple=True, help="Only this record id (repeatable).")
def retry(config_path: Path, code: str | None, ids: tuple[str, ...]) -> None:
    """Puts failed records back in line for the next pass."""
    config = _load(config_path, needs_secrets=False)

    async def main(_stop: asyncio.Event) -> tuple[int, int]:
        import time

        async with await Journal.open(config.journal) as journal:
            result = await journal.requeue_failed(code=code, ids=ids, now=time.time())
        return result.requeued, result.not_redrivable

    requeued, stuck = _run_async(main)
    click.echo(f"{requeued} failed record(s) put back in line for the next run.")
    if stuck:
        click.echo(
            f"{stuck} record(s) came from feed lines that could not be used (BAD_INPUT): "
            "fix them in the feed; they cannot be re-sent as they are."
        )


@cli.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object on standard output.")
@click.option(
    "--all",
    "whole_feed",
    is_flag=True,
    help="The whole feed, not only what follows the checkpoint.",
)
def check(config_path: Path, as_json: bool, whole_feed: bool) -> None:
    """What a pass would fail, found without writing: exit 0 when clean, 1 when not."""
    from syncengine.check_command import check_document, check_text, run_check

    config = _load(config_path)
    report = _run_async(lambda _stop: run_check(config, whole_feed=whole_feed))
    click.echo(orjson.dumps(check_document(report)).decode() if as_json else check_text(report))
    sys.exit(EXIT_SOME_FAILED if report.result.refusals else EXIT_OK)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="syncengine")

"""`syncengine report`: the journal's runs as one self-contained HTML page.

Loaded only when used (with its plotting library), like `demo` and `sim`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import click

from syncengine.cli import CONFIG_OPTION, _load, fail
from syncengine.config import Config
from syncengine.errors import ConfigError, FatalError, JournalLockedError
from syncengine.exit_status import EXIT_FATAL, EXIT_USAGE
from syncengine.journal import Journal
from syncengine.report_data import gather, parse_since
from syncengine.report_page import render


async def write_report(
    config: Config, path: Path, *, run_id: int | None = None, since: float | None = None
) -> None:
    """Reads the journal (beside any holder) and writes the page to `path` atomically.

    Raises ConfigError when `path` cannot be written, naming it.
    """
    async with await Journal.open(config.journal) as journal:
        data = await gather(journal, run_id=run_id, since=since)
    page = await asyncio.to_thread(render, data)
    await asyncio.to_thread(_write_atomically, path, page)


def _write_atomically(path: Path, text: str) -> None:
    """A reader never sees half a page: written beside it, then renamed over it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"cannot write report {path}: {exc.strerror or exc}") from exc


@click.command()
@CONFIG_OPTION
@click.option("--run", "run_id", type=int, default=None, help="Only this run (its id).")
@click.option(
    "--since",
    default=None,
    help="Runs started since: a span (90m, 24h, 7d) or a date (2026-01-31). Default: 7d.",
)
@click.option(
    "-o",
    "--output",
    "output",
    default=Path("report.html"),
    show_default=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The HTML file to write.",
)
def report(config_path: Path, run_id: int | None, since: str | None, output: Path) -> None:
    """Writes the runs, plots over time and failed records as one HTML file."""
    if run_id is not None and since is not None:
        fail("give --run or --since, not both", EXIT_USAGE)
    config = _load(config_path, needs_secrets=False)
    try:
        since_s = None if since is None else parse_since(since, now=time.time())
        asyncio.run(write_report(config, output, run_id=run_id, since=since_s))
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except (FatalError, JournalLockedError) as exc:
        fail(str(exc), EXIT_FATAL)
    click.echo(f"report written to {output}")
    sys.exit(0)

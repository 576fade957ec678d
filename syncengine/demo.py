"""`syncengine demo`: the whole product on the embedded defaults, no account needed.

It starts the bundled simulator on loopback (with some latency and a few
locked records, so retries show), writes a feed of realistic leads with a few
bad rows and a config next to it, runs `migrate` with its progress bar, then
prints `status` and `failures` and writes the run's HTML report. Everything
lands in one folder the user can inspect and re-run by hand with the printed
commands.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import click
import orjson

from syncengine.config import load_config
from syncengine.journal import Journal
from syncengine.progress import progress_bar
from syncengine.report_command import write_report
from syncengine.reports import (
    failure_documents,
    format_failures,
    format_status,
    status_document,
)
from syncengine.runner import run_pass
from syncengine.sim.config import SimConfig
from syncengine.sim.server import running_simulator
from syncengine.sources import open_source

#: The demo config; `configs/demo.toml` is `render_demo_config()` with its
#: defaults (a test keeps the two in step).
DEMO_CONFIG_TEMPLATE = """\
# The demo: the bundled simulator (`syncengine sim`) and a SQLite journal.
# `syncengine demo` writes the feed and runs everything; by hand, run
# `syncengine sim --port {port}` in one terminal and
# `syncengine migrate -c <this file>` in another.

[source]
type = "jsonl"
path = "{feed}"

[crm]
api_domain   = "http://127.0.0.1:{port}"
accounts_url = "http://127.0.0.1:{port}"
client_id     = "demo-client"
client_secret = 'demo-secret'  # the simulator's fixed demo values
refresh_token = 'demo-refresh'
module    = "Leads"
operation = "upsert"      # matched on Email, the Leads duplicate-check field
trigger   = []

[limits]
concurrency = 10
max_attempts = 5
retry_base_s = 0.2
retry_cap_s = 2.0
bulk_poll_s = 1           # migrate sends the upserts as a Bulk Write job (fewer credits)

[journal]
path = "{journal}"
"""

DEFAULT_SIM_PORT = 8900


def render_demo_config(
    *,
    port: int = DEFAULT_SIM_PORT,
    feed: str = "../demo/leads.jsonl",
    journal: str = "../demo/syncengine.db",
) -> str:
    """The demo config text; the defaults give `configs/demo.toml`."""
    return DEMO_CONFIG_TEMPLATE.format(port=port, feed=feed, journal=journal)


_FIRST = ["Ana", "Ben", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Jun", "Kofi"]
_LAST = ["Silva", "Okafor", "Nguyen", "Kowalski", "Haddad", "Larsen", "Moreau", "Tanaka", "Reyes"]
_COMPANY = ["Acme Ltd", "Globex", "Initech", "Umbrella Co", "Stark Metals", "Wayne Foods"]
_SOURCE = ["Advertisement", "Cold Call", "Web Download", "Partner"]
_STATUS = ["Not Contacted", "Contacted", "Qualified"]


def realistic_leads(count: int, *, seed: int = 7) -> Iterator[bytes]:
    """JSONL lines of leads; about one in 500 is bad in a way users meet in real feeds."""
    rng = random.Random(seed)
    for index in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        lead = {
            "First_Name": first,
            "Last_Name": last,
            "Company": rng.choice(_COMPANY),
            "Email": f"{first}.{last}.{index}@example.org".lower(),
            "Phone": f"+1 555 {rng.randrange(1000, 9999)}",
            "Lead_Source": rng.choice(_SOURCE),
            "Lead_Status": rng.choice(_STATUS),
            "No_of_Employees": rng.randrange(1, 5000),
        }
        flaw = index % 500
        if flaw == 137:
            yield b'{"Last_Name": "Truncated", "Company": '  # bad JSON: a cut-off line
        elif flaw == 271:
            lead["Email"] = f"not-an-email-{index}"  # the CRM answers INVALID_DATA
            yield orjson.dumps(lead)
        elif flaw == 389:
            del lead["Last_Name"]  # the CRM answers MANDATORY_NOT_FOUND
            yield orjson.dumps(lead)
        else:
            yield orjson.dumps(lead)


def write_demo_files(folder: Path, *, records: int, port: int) -> Path:
    """Writes the feed and the config; returns the config's path."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "leads.jsonl").open("wb") as feed:
        for line in realistic_leads(records):
            feed.write(line + b"\n")
    config_path = folder / "demo.toml"
    config_path.write_text(
        render_demo_config(port=port, feed="leads.jsonl", journal="syncengine.db"), encoding="utf-8"
    )
    for stale in folder.glob("syncengine.db*"):
        stale.unlink()
    return config_path


async def run_demo(folder: Path, *, records: int, port: int) -> int:
    """Simulator up, migrate with a progress bar, then status and failures."""
    sim_config = SimConfig(
        port=port, latency_ms=40, jitter_ms=20, per_record_ms=0.2, fault_locked=0.002, seed=1
    )
    async with running_simulator(sim_config) as sim:
        config_path = write_demo_files(folder, records=records, port=sim.port)
        config = load_config(config_path)
        click.echo(f"simulator on {sim.base_url}; feed {folder / 'leads.jsonl'} ({records} leads)")
        total = open_source(config).estimate_total(None)
        async with progress_bar(total) as watched:
            result = await run_pass(
                config,
                command="migrate",
                stop=asyncio.Event(),
                on_engine=watched.append,
                on_bulk=watched.bulk,
            )
    async with await Journal.open(config.journal) as journal:
        document = await status_document(journal, journal.where)
        failed = await journal.failures()
    click.echo("\n$ syncengine status -c " + str(config_path))
    click.echo(format_status(document))
    click.echo("\n$ syncengine failures -c " + str(config_path))
    rows = failure_documents(failed)
    shown = 9
    click.echo(
        format_failures(rows[:shown]).replace(
            f"{min(shown, len(rows))} failed", f"{len(rows)} failed", 1
        )
    )
    if len(rows) > shown:
        click.echo(f"  ... and {len(rows) - shown} more: syncengine failures -c {config_path}")
    report_path = folder / "report.html"
    await write_report(config, report_path, run_id=result.run_id)
    click.echo(f"\nThe run's report (plots, failures): open {report_path} in a browser.")
    return result.exit_status


@click.command("demo")
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path),
    default=Path("demo"),
    show_default=True,
    help="Where the feed, config and journal are written.",
)
@click.option(
    "--records",
    type=click.IntRange(1),
    default=20_000,
    show_default=True,
    help="How many leads the generated feed holds.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Simulator port (0: a free one).",
)
def demo(folder: Path, records: int, port: int) -> None:
    """Runs the demo: bundled simulator, generated leads, migrate, status, failures, report."""
    status = asyncio.run(run_demo(folder, records=records, port=port))
    # A demo that reports its planted bad rows has worked: exit 0 unless it broke.
    raise SystemExit(0 if status in (0, 1) else status)

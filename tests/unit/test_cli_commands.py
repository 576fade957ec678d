"""The command group: every command of interface.md is there, the heavy ones load lazily."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from syncengine.cli import cli

COMMANDS = ["daemon", "demo", "failures", "migrate", "retry", "run", "sim", "status"]


def test_help_lists_every_command() -> None:
    """`syncengine --help` names each command, the lazily loaded ones included."""
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:", 1)[1]
    for command in COMMANDS:
        assert f"  {command} " in listed


def test_lazy_commands_load_on_use() -> None:
    """`sim` and `demo` work through the group: their own help, their own options."""
    runner = CliRunner()
    sim_help = runner.invoke(cli, ["sim", "--help"])
    assert sim_help.exit_code == 0, sim_help.output
    assert "--latency-ms" in sim_help.output
    demo_help = runner.invoke(cli, ["demo", "--help"])
    assert demo_help.exit_code == 0, demo_help.output
    assert "simulator" in demo_help.output


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["sync"])
    assert result.exit_code == 2
    assert "No such command 'sync'" in result.output


def test_the_pass_commands_do_not_import_the_simulator_or_asyncpg() -> None:
    """A cron `run` starts without loading the simulator's web server or the PostgreSQL driver."""
    probe = (
        "import sys, syncengine.cli;"
        "print(sorted(m for m in ('syncengine.sim.server', 'aiohttp.web', 'asyncpg')"
        " if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "[]"

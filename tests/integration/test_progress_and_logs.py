"""Log lines and `migrate`'s progress bar share a terminal without cutting each other."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from syncengine.sim.server import SimHandle
from tests.integration.conftest import lead_updates, seed_leads, write_config, write_feed
from tests.integration.test_migrate_and_demo import _run_on_terminal

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def screen_lines(drawn: str) -> list[str]:
    """What a terminal shows for `drawn`: carriage returns overwrite, newlines advance."""
    lines = [""]
    column = 0
    for char in _ANSI.sub("", drawn):
        if char == "\r":
            column = 0
        elif char == "\n":
            lines.append("")
            column = 0
        else:
            line = lines[-1]
            lines[-1] = line[:column].ljust(column) + char + line[column + 1 :]
            column += 1
    return [line.rstrip() for line in lines if line.strip()]


def test_the_screen_model_overwrites_on_carriage_return() -> None:
    assert screen_lines("50%|##   |\r          \rlog line\n80%|#### |") == [
        "log line",
        "80%|#### |",
    ]


async def test_log_lines_go_above_the_bar_and_stay_whole(sim: SimHandle, tmp_path: Path) -> None:
    await seed_leads(sim, 2000)
    write_feed(tmp_path / "changes.jsonl", lead_updates(2000))
    config = write_config(tmp_path, sim)

    status, drawn = await asyncio.to_thread(
        _run_on_terminal, ["--log-format", "console", "migrate", "-c", str(config)], tmp_path
    )

    assert status == 0, drawn[-2000:]
    lines = screen_lines(drawn)
    logged = [line for line in lines if _TIMESTAMP.search(line)]
    assert any("run.summary" in line for line in logged), lines
    for line in logged:
        assert _TIMESTAMP.match(line.lstrip()), f"a log line cut by the bar: {line!r}"
        assert "rec/s" not in line, f"the bar drawn into a log line: {line!r}"
    bars = [line for line in lines if "rec/s" in line]
    assert bars, lines
    assert "2000/2000" in bars[-1]
    summary = next(line for line in logged if "run.summary" in line)
    assert lines.index(summary) < lines.index(bars[-1])  # the log line above the final bar

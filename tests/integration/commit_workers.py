"""Finding a real `syncengine` process's commit worker through /proc."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


async def worker_of(process: asyncio.subprocess.Process) -> int:
    """The commit worker of the `syncengine` process `process`, once it runs."""
    pid = process.pid
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.returncode is None, "the pass ended before its worker was seen"
        for child in children(pid):
            with open(f"/proc/{child}/cmdline", "rb") as cmdline:
                if b"commit_worker" in cmdline.read():
                    return child
        await asyncio.sleep(0.01)
    raise AssertionError("no commit worker appeared")

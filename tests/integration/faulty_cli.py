"""`python -m tests.integration.faulty_cli ARGS`: the real `syncengine` command line,
with one stage made to raise an exception nobody expects, as a bug would.

`SE_TEST_FAULT` chooses the stage:

- `writer:N`: the CRM client's `write` raises RuntimeError from its (N+1)th call
  on, after N requests that really reached the CRM (the sender stage);
- `redrive`: the journal's `due` raises RuntimeError when asked for the rows due
  now, which only the daemon's redrive task asks (the redrive stage).

Everything else (config, journal, simulator, signals, exit status, stderr) is
the production code, so a test sees what a user would. The fault is wrapped
around the real methods here, in the test tree, so the product carries no hook.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator
from typing import Any

from syncengine.cli import main
from syncengine.crm.client import CrmClient
from syncengine.journal import Journal
from syncengine.model import Change


def _fail_writer_after(calls: int) -> None:
    real_write = CrmClient.write
    made = 0

    async def write(self: CrmClient, request: Any) -> Any:
        nonlocal made
        made += 1
        if made > calls:
            raise RuntimeError("injected writer fault")
        return await real_write(self, request)

    CrmClient.write = write  # type: ignore[method-assign]


def _fail_redrive() -> None:
    real_due = Journal.due

    def due(self: Journal, now: float, *, page: int = 1000) -> AsyncIterator[Change]:
        if now != math.inf:  # the start of a pass asks for everything; the redrive for "now"
            raise RuntimeError("injected journal read fault")
        return real_due(self, now, page=page)

    Journal.due = due  # type: ignore[method-assign]


def _install(fault: str) -> None:
    stage, _, argument = fault.partition(":")
    if stage == "writer":
        _fail_writer_after(int(argument))
    elif stage == "redrive":
        _fail_redrive()
    else:
        raise SystemExit(f"unknown SE_TEST_FAULT {fault!r}")


if __name__ == "__main__":
    _install(os.environ["SE_TEST_FAULT"])
    main()

"""Keeping the secrets a process holds out of core dumps.

A command that loads the config holds the CRM client secret and refresh
token (and the journal's cached access token) in memory; a core file written
on a crash would copy them to disk, readable by whoever can read the dump
folder. `disable_core_dumps` sets both limits of `RLIMIT_CORE` to 0: the
kernel then writes no core file, dump handlers such as systemd-coredump
honour the limit and store none, and the hard limit keeps a child process
(the commit worker inherits the limits) from raising it again.
"""

from __future__ import annotations

import resource


def disable_core_dumps() -> None:
    """Set RLIMIT_CORE to (0, 0) for this process and every process it starts.

    Lowering a limit is always allowed, so this cannot fail for want of
    privilege; it is irreversible for the process, which is the point.
    """
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

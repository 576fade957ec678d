"""The daemon loads asyncpg only for a PostgreSQL feed."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_daemon_does_not_import_asyncpg() -> None:
    """A daemon following a JSONL feed never pays for (or depends on) asyncpg."""
    code = "import sys, syncengine.daemon; sys.exit('asyncpg' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

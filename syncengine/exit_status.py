"""The exit statuses of interface.md, named once for the CLI, the runner and the daemon."""

from __future__ import annotations

#: Everything read was synced (or is pending a scheduled retry, for the daemon).
EXIT_OK = 0
#: The pass ended normally but some records failed (see `syncengine failures`).
EXIT_SOME_FAILED = 1
#: Bad usage or configuration: nothing was sent.
EXIT_USAGE = 2
#: A fatal error ended the pass early (credentials, scope, a stage that raised);
#: the journal is consistent and the next run resumes from the checkpoint.
EXIT_FATAL = 3
#: Another process holds the journal.
EXIT_LOCKED = 4
#: Interrupted by a signal; the checkpoint is saved.
EXIT_INTERRUPTED = 130

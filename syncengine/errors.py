"""The one exception tree of syncengine.

Per-record outcomes are values (see `model.Verdict`), never exceptions; only
failures that end a run, or that a layer boundary must translate, are raised::

    SyncError
    ├── ConfigError           bad usage or config; nothing was sent (exit 2)
    ├── FatalError            the run cannot go on: credentials, scope, module (exit 3)
    │   └── AuthenticationError   the accounts server refused our client or refresh token
    ├── StageFailed           a stage of the pass raised something unexpected (exit 3)
    ├── JournalLockedError    another process holds the journal (exit 4)
    └── TransportError        network, timeout or unparsable answer: transient for a request

Messages never carry secrets: they name the cause (`invalid_code`), the key
(`crm.refresh_token`) or the file and line, not the value.
"""

from __future__ import annotations


class SyncError(Exception):
    """Root of every error syncengine raises on purpose."""


class ConfigError(SyncError):
    """The configuration or command line is unusable; raised before anything is sent."""


class FatalError(SyncError):
    """The run must stop cleanly: retrying cannot help until a person acts."""


class AuthenticationError(FatalError):
    """The accounts server refused the client id, secret or refresh token."""


class JournalLockedError(SyncError):
    """Another process holds the journal; the message names the holder."""


class TransportError(SyncError):
    """A request got no usable answer (connection, timeout, bad body): retry it."""


class StageFailed(SyncError):
    """A stage of a pass (reader, sender, flusher, redrive, dispatcher) raised an
    exception nobody expected; the pass ended and journaled what was answered.

    The message names the stage and the error's type and text, so the one line
    the CLI prints says where to look without a traceback.
    """

    def __init__(self, stage: str, error: BaseException) -> None:
        self.stage = stage
        self.error = error
        detail = str(error).splitlines()[0][:300] if str(error) else ""
        described = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
        super().__init__(
            f"the {stage} stage failed: {described}; the journal is consistent,"
            " the next run resumes from the checkpoint"
        )

"""Logging set-up: structlog, readable on a terminal, JSON lines otherwise.

Every event passes through `redact_secrets` last, so a secret registered with
`register_secret` (client secret, refresh token, each minted access token) is
replaced wherever it appears, in any field, even inside an exception text. The
logs go to standard error; standard output is kept for the JSON outputs of
`status` and `failures`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog
from tqdm import tqdm

LogFormat = Literal["auto", "console", "json"]

REDACTED = "***"

#: Field names whose values are secrets by their very name.
_SECRET_FIELD_NAMES = frozenset(
    {"client_secret", "refresh_token", "access_token", "authorization", "password", "secret"}
)

#: Secrets shorter than this are not redacted by value: replacing a two-letter
#: string everywhere would mangle logs and protects nothing.
_MIN_SECRET_LENGTH = 6

_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Make `value` unprintable in every later log event."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        _secrets.add(value)


def scrub(text: str) -> str:
    """`text` with every registered secret replaced; for errors shown to users."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: _scrub_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(item) for item in value]
    if isinstance(value, BaseException):
        return scrub(f"{type(value).__name__}: {value}")
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: secret-named fields hidden, registered secrets scrubbed."""
    for key in list(event_dict):
        if key.lower() in _SECRET_FIELD_NAMES:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub_value(event_dict[key])
    return event_dict


def _wants_console(log_format: LogFormat, stream: TextIO) -> bool:
    if log_format == "auto":
        return stream.isatty()
    return log_format == "console"


class AboveTheBarLogger(structlog.PrintLogger):
    """Prints each event as one whole line above any progress bar on the same terminal.

    A line printed while `migrate`'s bar is drawn would start where the bar
    ends and the bar would be redrawn below it; tqdm's `external_write_mode`
    (what `tqdm.write` uses) clears the bar, lets the line through and draws
    the bar again under it. Without a bar it is a plain print of one line.
    """

    def msg(self, message: str) -> None:
        """Print `message` and its newline in one write, above any bar."""
        with self._lock, tqdm.external_write_mode(file=self._file):
            self._file.write(message + "\n")
            self._file.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


def configure_logging(
    *, log_format: LogFormat = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog once per process, before the first event."""
    out = stream or sys.stderr
    renderer: Any
    if _wants_console(log_format, out):
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=lambda *_args: AboveTheBarLogger(file=out),
        cache_logger_on_first_use=False,
    )

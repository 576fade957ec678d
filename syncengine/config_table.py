"""One TOML table of the configuration, read through typed getters.

Each getter checks one key's type and range and returns None when the key
is absent, so a table's loader (`config.py`) lists its keys once and the
dataclass default applies to what was left out. Every error is a
`ConfigError` of one line naming the file and the dotted key; a value is
echoed only where it cannot be a secret (names, choices, URLs, numbers),
never through `string`, which secrets go through.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from syncengine.crm.origin import is_loopback_host
from syncengine.errors import ConfigError

_T = TypeVar("_T")


class ConfigTable:
    """One TOML table being read: typed getters that name the dotted key in errors."""

    def __init__(self, data: Mapping[str, Any], prefix: str, file: Path) -> None:
        self._data = data
        self._prefix = prefix
        self.file = file

    def error(self, key: str, message: str) -> ConfigError:
        """A one-line error naming the file and this table's `key`."""
        dotted = f"{self._prefix}.{key}" if self._prefix else key
        return ConfigError(f"{self.file}: {dotted}: {message}")

    def get(self, key: str) -> Any:
        """The raw value, or None when absent (TOML has no null, so None is unambiguous)."""
        return self._data.get(key)

    def table(self, key: str) -> ConfigTable:
        """A sub-table; absent means empty, so every key takes its default."""
        value = self.get(key)
        if value is not None and not isinstance(value, dict):
            raise self.error(key, "must be a table")
        return ConfigTable(value or {}, key, self.file)

    def reject_unknown(self, known: Sequence[str]) -> None:
        """Reject keys not in `known`, suggesting the closest: typos must not pass silently.

        Runs before any value is checked, so a misspelt key is reported as
        such rather than as its correct spelling being required.
        """
        for key in self._data:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.error(key, f"unknown key{hint}")

    def required(self, key: str, value: _T | None) -> _T:
        """`value`, which a getter returned for `key`; raises when the key was absent."""
        if value is None:
            raise self.error(key, "is required")
        return value

    def string(self, key: str) -> str | None:
        """A non-empty string, or None when absent.

        Its value is never echoed in an error, so secrets go through here.
        """
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(key, "must be a string")
        if not value:
            raise self.error(key, "must not be empty")
        return value

    def matching(self, key: str, pattern: re.Pattern[str]) -> str | None:
        """A string that fully matches `pattern` (names and identifiers), or None."""
        value = self.string(key)
        if value is not None and not pattern.fullmatch(value):
            raise self.error(key, f"{value!r} is not a valid name")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str | None:
        """One of `choices`, or None when absent."""
        value = self.string(key)
        if value is not None and value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def url(self, key: str) -> str:
        """A required https URL without credentials, query or fragment; trailing slash dropped.

        Plain `http://` is accepted only for a loopback host (the simulator):
        anywhere else it would carry the client secret, the refresh token and
        every access token in clear.
        """
        value = self.required(key, self.string(key))
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.error(key, f"must be an http or https URL; got {value!r}")
        if parts.username or parts.password:
            raise self.error(key, "must not contain credentials")
        if parts.query or parts.fragment:
            raise self.error(key, f"must not have a query or fragment; got {value!r}")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise self.error(
                key, f"must use https (http:// is allowed only to loopback); got {value!r}"
            )
        return value.rstrip("/")

    def proxy_url(self, key: str) -> str | None:
        """An `http://host:port` proxy URL (credentials allowed, never echoed), or None.

        Requests to the CRM go through it as CONNECT tunnels, so TLS runs end
        to end and the proxy sees host names only, never tokens or records.
        """
        value = self.string(key)
        if value is None:
            return None
        parts = urlsplit(value)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme != "http" or not parts.hostname or port is None:
            raise self.error(key, "must be an http://host:port URL (the value is not shown)")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise self.error(key, "must have no path, query or fragment (the value is not shown)")
        return value.rstrip("/")

    def path(self, key: str, base: Path) -> Path | None:
        """A file path (relative ones resolve against `base`, the config's folder), or None."""
        value = self.string(key)
        return None if value is None else (base / Path(value).expanduser()).resolve()

    def integer(self, key: str, *, low: int, high: int | None = None) -> int | None:
        """An integer in low..high (booleans are not integers here), or None."""
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(key, "must be an integer")
        if value < low or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"between {low} and {high}"
            raise self.error(key, f"must be {bounds}; got {value}")
        return value

    def number(self, key: str, *, positive: bool = True) -> float | None:
        """A finite number (> 0 when `positive`, else >= 0), or None when absent."""
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(key, "must be a number")
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise self.error(key, f"must be {'> 0' if positive else '>= 0'}; got {value}")
        return float(value)

    def boolean(self, key: str) -> bool | None:
        """true or false, or None when absent."""
        value = self.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def string_list(
        self, key: str, *, pattern: re.Pattern[str] | None = None, choices: tuple[str, ...] = ()
    ) -> tuple[str, ...] | None:
        """A list of distinct strings (each matching `pattern` or in `choices`), or None."""
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(key, "must be a list of strings")
        for item in value:
            if (pattern and not pattern.fullmatch(item)) or (choices and item not in choices):
                allowed = f" (one of {', '.join(choices)})" if choices else ""
                raise self.error(key, f"{item!r} is not allowed{allowed}")
        if len(set(value)) != len(value):
            raise self.error(key, "must not repeat a value")
        return tuple(value)

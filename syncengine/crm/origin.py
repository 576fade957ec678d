"""Where a URL points: its origin (scheme, host, port) and whether that is this machine.

Pure functions shared by the config checks (plain `http://` only to loopback)
and the token path (the token answer's `api_domain` against the configured
one), so both compare URLs the same way.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of `url`, normalized: lower case, default port filled in.

    `https://WWW.zohoapis.com/` and `https://www.zohoapis.com:443` have the
    same origin. A port that is not a number gives None, never an exception.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, host, port if port is not None else _DEFAULT_PORTS.get(scheme)


def is_loopback_host(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1: traffic that never leaves this machine."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False

"""Where a URL points: its origin (scheme, host, port) and whether that is this machine.

Pure functions shared by the config checks (plain `http://` only to loopback)
and the token path (the token answer's `api_domain` against the configured
one), so both compare URLs the same way.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from syncengine.errors import ConfigError, FatalError

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


class ApiDomainMismatchError(ConfigError, FatalError):
    """The configured `crm.api_domain` is not the org's data centre the token answer names.

    A config error (exit 2) found only once a token is in hand, so it is also
    a FatalError: the senders stop the pass the way they stop it for any
    fatal answer, and the command line reports it as the config error it is.
    """


def check_api_domain(configured: str, answered: str | None) -> None:
    """Raise ApiDomainMismatchError when the token answer names another data centre.

    `answered` is the token answer's `api_domain` (None: the answer named
    none, so there is nothing to compare). Compared by origin, so a trailing
    slash, letter case or an explicit default port is no mismatch.
    """
    if answered is None or origin(configured) == origin(answered):
        return
    raise ApiDomainMismatchError(
        f"crm.api_domain: {configured} is not the org's data centre; the token answer "
        f'names {answered}: set crm.api_domain = "{answered.rstrip("/")}"'
    )

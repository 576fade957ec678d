"""Which proxy, if any, a request to the CRM or the accounts server goes through.

A pure policy, decided once per target URL:

* `NO_PROXY` (or `no_proxy`) naming the host, or `*`, sends it direct;
* an explicit `[crm] proxy` applies to every other host;
* otherwise the standard `HTTPS_PROXY` / `HTTP_PROXY` variables apply by the
  target's scheme, except to loopback hosts: a proxy set for the whole shell
  must not capture the simulator on 127.0.0.1.

For an `https://` target the proxy only carries a CONNECT tunnel: TLS runs
end to end and is verified as without a proxy, so the proxy sees the host
name, never tokens, secrets or records. The decision is ours rather than
aiohttp's `trust_env`, which has no loopback rule and would apply a shell's
proxy to the simulator.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from syncengine.crm.origin import is_loopback_host
from syncengine.logs import register_secret


@dataclass(frozen=True, slots=True)
class ProxyRoute:
    """A proxy to go through: its URL without credentials, and the header carrying them."""

    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    #: True when the target is plain http: the proxy forwards the request
    #: itself, so the credentials ride on the request (aiohttp sends
    #: `proxy_headers` only on a CONNECT).
    forwarded: bool = False

    def connect_headers(self) -> dict[str, str] | None:
        """Headers for the CONNECT request (a fresh dict: aiohttp adds Host to it)."""
        return None if self.forwarded else dict(self.headers)

    def request_headers(self) -> dict[str, str]:
        """Headers to add to a request the proxy forwards (plain http targets)."""
        return self.headers if self.forwarded else {}

    @classmethod
    def parse(cls, proxy: str) -> ProxyRoute:
        """A route from a proxy URL; `user:password@` becomes a Proxy-Authorization header."""
        parts = urlsplit(proxy)
        if parts.username is None:
            return cls(proxy)
        password = unquote(parts.password or "")
        register_secret(password)  # never printable, whatever a later log line carries
        pair = f"{unquote(parts.username)}:{password}".encode()
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        return cls(
            f"{parts.scheme}://{netloc}",
            {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode()},
        )


def route_for(
    url: str, *, configured: str | None, environ: Mapping[str, str] | None = None
) -> ProxyRoute | None:
    """The proxy route for requests to `url`, or None to connect directly."""
    proxy = proxy_for(url, configured=configured, environ=environ)
    if proxy is None:
        return None
    route = ProxyRoute.parse(proxy)
    if urlsplit(url).scheme.lower() == "http":
        return ProxyRoute(route.url, route.headers, forwarded=True)
    return route


def proxy_for(
    url: str, *, configured: str | None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The proxy URL for requests to `url`, or None to connect directly."""
    env = os.environ if environ is None else environ
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    if _bypassed(host, port, env):
        return None
    if configured is not None:
        return configured
    if is_loopback_host(host):
        return None
    proxies = _environment_proxies(env)
    return proxies.get(parts.scheme.lower()) or None


def _environment_proxies(env: Mapping[str, str]) -> dict[str, str]:
    """`{scheme: proxy}` from `*_PROXY` variables; lower case wins, as curl and urllib do."""
    found: dict[str, str] = {}
    for name, value in env.items():
        lowered = name.lower()
        if value and lowered.endswith("_proxy") and lowered != "no_proxy":
            scheme = lowered[: -len("_proxy")]
            if name == lowered or scheme not in found:
                found[scheme] = value
    return found


def _bypassed(host: str, port: int | None, env: Mapping[str, str]) -> bool:
    """True when NO_PROXY names `host`: `*`, the host itself, or a domain it ends in.

    Entries are comma separated; `.example.com` and `example.com` both cover
    `www.example.com`; an entry with `:port` covers that port only.
    """
    no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
    name = host.strip("[]").lower().rstrip(".")
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_host, entry_port = entry, None
        if entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry):
            entry_host, _, port_text = entry.rpartition(":")
            entry_port = int(port_text) if port_text.isdigit() else None
        entry_host = entry_host.strip("[]").lstrip(".").rstrip(".")
        if entry_port is not None and entry_port != port:
            continue
        if name == entry_host or name.endswith("." + entry_host):
            return True
    return False

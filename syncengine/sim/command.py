"""`syncengine sim`: run the bundled CRM simulator as a process on loopback.

Every knob of `SimConfig` is an option named as in interface.md (`--fault-500`
for `fault_500`). The command prints the values to put in a config's `[crm]`
table (the demo credentials are the simulator's own fixed values, so printing
them leaks nothing), serves until SIGINT or SIGTERM, and then exits 0.

The admin endpoints (reset, seed, config) have no authentication, so
`--admin` is refused on an address other than loopback unless
`--admin-on-network` says so, and then a warning says who can reach them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import click

from syncengine.sim.config import EDITIONS, REFUSAL_CODES, KnobError, SimConfig
from syncengine.sim.schema import SchemaError
from syncengine.sim.server import SimHandle, running_simulator

_PROBABILITY: Final = click.FloatRange(0.0, 1.0)
_NON_NEGATIVE: Final = click.FloatRange(min=0.0)
_COUNT: Final = click.IntRange(min=0)

#: (option, click keyword arguments); the option name maps to the knob name.
OPTIONS: Final[list[tuple[str, dict[str, Any]]]] = [
    ("--host", {"default": "127.0.0.1", "help": "Address to listen on (loopback by default)."}),
    ("--port", {"default": 8900, "type": _COUNT, "help": "Port to listen on; 0 picks a free one."}),
    ("--client-id", {"default": "demo-client", "help": "The one accepted OAuth client id."}),
    ("--client-secret", {"default": "demo-secret", "help": "That client's secret."}),
    ("--refresh-token", {"default": "demo-refresh", "help": "The one accepted refresh token."}),
    ("--token-ttl-s", {"default": 3600.0, "type": _NON_NEGATIVE, "help": "Access-token lifetime."}),
    (
        "--edition",
        {
            "default": "enterprise",
            "type": click.Choice(sorted(EDITIONS)),
            "help": "Concurrency and credit presets (free 5, standard 10, professional "
            "15, enterprise 20, ultimate 25 concurrent calls).",
        },
    ),
    (
        "--concurrency",
        {"type": _COUNT, "help": "Requests in flight before 429 (overrides the edition)."},
    ),
    ("--credits", {"type": _COUNT, "help": "Credits per rolling 24 h (overrides the edition)."}),
    ("--latency-ms", {"default": 0.0, "type": _NON_NEGATIVE, "help": "Base response time."}),
    ("--jitter-ms", {"default": 0.0, "type": _NON_NEGATIVE, "help": "Uniform random extra time."}),
    ("--per-record-ms", {"default": 0.0, "type": _NON_NEGATIVE, "help": "Extra time per record."}),
    (
        "--fault-500",
        {"default": 0.0, "type": _PROBABILITY, "help": "Probability of 500 INTERNAL_ERROR."},
    ),
    (
        "--fault-drop",
        {
            "default": 0.0,
            "type": _PROBABILITY,
            "help": "Probability of closing the connection with no response.",
        },
    ),
    (
        "--fault-drop-after",
        {
            "default": 0.0,
            "type": _PROBABILITY,
            "help": "Probability of applying a write, then closing with no response.",
        },
    ),
    (
        "--fault-stall",
        {
            "default": 0.0,
            "type": _PROBABILITY,
            "help": "Probability of applying a write, then answering after --stall-s.",
        },
    ),
    (
        "--fault-locked",
        {
            "default": 0.0,
            "type": _PROBABILITY,
            "help": "Per-record probability of RECORD_LOCKED on existing records.",
        },
    ),
    (
        "--fault-429",
        {
            "default": 0.0,
            "type": _PROBABILITY,
            "help": "Probability of a 429 answered at once (nothing applied).",
        },
    ),
    (
        "--partial-status",
        {
            "default": "202",
            "type": click.Choice(["202", "207"]),
            "help": "Status of a partly failed batch.",
        },
    ),
    (
        "--schema",
        {
            "type": click.Path(exists=True, dir_okay=False, path_type=Path),
            "help": "JSON file of module schemas to load instead of the built-in ones.",
        },
    ),
    ("--seed", {"default": 0, "type": int, "help": "Random seed for latency and faults."}),
    ("--admin/--no-admin", {"default": False, "help": "Turn on the /__admin/ endpoints."}),
    (
        "--stall-s",
        {"default": 30.0, "type": _NON_NEGATIVE, "help": "How long a stalled request hangs."},
    ),
    (
        "--live-token-cap",
        {
            "default": 10,
            "type": click.IntRange(min=1),
            "help": "Live access tokens per refresh token; minting more evicts the oldest.",
        },
    ),
    (
        "--mint-limit",
        {
            "default": 10,
            "type": click.IntRange(min=1),
            "help": "New access tokens per refresh token per mint window.",
        },
    ),
    ("--mint-window-s", {"default": 600.0, "type": _NON_NEGATIVE, "help": "The mint window."}),
    (
        "--legacy-expires-in/--no-legacy-expires-in",
        {"default": False, "help": "Answer expires_in in ms plus expires_in_sec (older servers)."},
    ),
    (
        "--token-error-status",
        {
            "default": "200",
            "type": click.Choice(["200", "400"]),
            "help": "HTTP status of token endpoint errors.",
        },
    ),
    (
        "--revoked/--no-revoked",
        {"default": False, "help": "Start with the refresh token revoked (invalid_code)."},
    ),
    (
        "--users",
        {"type": _COUNT, "help": "Licensed users: credits follow the edition formula, capped."},
    ),
    (
        "--credits-per-records",
        {
            "default": 10,
            "type": click.IntRange(min=1),
            "help": "A write costs 1 credit per this many records.",
        },
    ),
    (
        "--credit-window-s",
        {"default": 86_400.0, "type": _NON_NEGATIVE, "help": "The rolling credit window."},
    ),
    (
        "--heavy-concurrency",
        {
            "default": 10,
            "type": click.IntRange(min=1),
            "help": "Concurrent writes of more than --heavy-records records.",
        },
    ),
    (
        "--heavy-records",
        {"default": 10, "type": _COUNT, "help": "Records above which a write is heavy."},
    ),
    (
        "--scope",
        {
            "multiple": True,
            "help": "A scope the client holds (repeat); default: "
            "ZohoCRM.modules.ALL, ZohoCRM.settings.ALL, ZohoCRM.bulk.ALL, ZohoFiles.files.ALL.",
        },
    ),
    (
        "--accept-bearer/--no-accept-bearer",
        {
            "default": False,
            "help": "Also accept 'Authorization: Bearer <token>' (unverified on Zoho).",
        },
    ),
    ("--api-domain", {"help": "api_domain in token answers (default: this server's URL)."}),
    (
        "--poison-field",
        {
            "help": "A field whose presence in any record makes the whole write a bare "
            "400 INVALID_DATA (a record the API cannot parse); default off.",
        },
    ),
    (
        "--refuse-with",
        {
            "type": click.Choice(list(REFUSAL_CODES)),
            "help": "Refuse every records-API call with this whole-request code "
            "(403 NO_PERMISSION, 400 AUTHORIZATION_FAILED, 403 FEATURE_NOT_SUPPORTED, "
            "400 LICENSE_LIMIT_EXCEEDED); default off.",
        },
    ),
    (
        "--fault-blueprint",
        {
            "default": 0.0,
            "type": _PROBABILITY,
            "help": "Per-record probability of RECORD_IN_BLUEPRINT on existing records.",
        },
    ),
    (
        "--fault-not-approved",
        {
            "default": 0.0,
            "type": _PROBABILITY,
            "help": "Per-record probability of NOT_APPROVED on existing records.",
        },
    ),
    (
        "--retry-after-s",
        {
            "type": _NON_NEGATIVE,
            "help": "Send Retry-After on 429s (Zoho documents none; default off).",
        },
    ),
    (
        "--bulk-queue-s",
        {"default": 0.0, "type": _NON_NEGATIVE, "help": "How long a bulk-write job stays ADDED."},
    ),
    (
        "--bulk-job-s",
        {
            "default": 0.0,
            "type": _NON_NEGATIVE,
            "help": "How long a bulk-write job then stays INPROGRESS (a slow job).",
        },
    ),
    (
        "--bulk-fault-fail",
        {
            "default": 0.0,
            "type": _PROBABILITY,
            "help": "Probability that a bulk-write job ends FAILED with nothing applied.",
        },
    ),
    (
        "--bulk-drop-downloads",
        {
            "default": 0,
            "type": _COUNT,
            "help": "Downloads of each bulk-write result that drop the connection halfway.",
        },
    ),
    (
        "--bulk-job-credits",
        {"default": 500, "type": _COUNT, "help": "API credits one bulk-write job costs."},
    ),
    (
        "--bulk-upload-s",
        {
            "default": 0.0,
            "type": _NON_NEGATIVE,
            "help": "Seconds before a bulk-write upload is answered (a slow upload).",
        },
    ),
    (
        "--bulk-download-s",
        {
            "default": 0.0,
            "type": _NON_NEGATIVE,
            "help": "Seconds before a bulk-write result is sent (a slow download).",
        },
    ),
]


def _with_options(func: Callable[..., None]) -> Callable[..., None]:
    for name, kwargs in reversed(OPTIONS):
        func = click.option(name, **kwargs)(func)
    return func


def is_loopback_host(host: str) -> bool:
    """True for an address only this machine can reach: 127.0.0.0/8, ::1, `localhost`.

    Any other name counts as the network: it may resolve to anything.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def admin_exposure(host: str, *, admin: bool, on_network: bool) -> str | None:
    """The warning to print for these options, or None; UsageError when they must be refused."""
    if not admin or is_loopback_host(host):
        return None
    if not on_network:
        raise click.UsageError(
            f"--admin on {host!r} would let anyone who can reach this port reset, seed and "
            "reconfigure the simulator without authentication; listen on 127.0.0.1, or add "
            "--admin-on-network if that is really meant"
        )
    return (
        f"WARNING: the simulator's admin endpoints (/__admin/: reset, seed, config) are served "
        f"WITHOUT AUTHENTICATION on {host}: anyone who can reach this port can change or wipe "
        "its data"
    )


def build_config(options: dict[str, Any]) -> SimConfig:
    """A `SimConfig` from the parsed options (choices arrive as strings)."""
    knobs = dict(options)
    scopes = knobs.pop("scope")
    knobs["partial_status"] = int(knobs["partial_status"])
    knobs["token_error_status"] = int(knobs["token_error_status"])
    config = SimConfig(**knobs)
    if scopes:
        config.scopes = tuple(scopes)
    return config


def describe(handle: SimHandle) -> str:
    """What to put in a config's `[crm]` table to use this simulator."""
    config = handle.config
    return "\n".join(
        [
            f"syncengine sim listening on {handle.base_url}",
            "[crm]",
            f'api_domain    = "{handle.base_url}"',
            f'accounts_url  = "{handle.accounts_url}"',
            f'client_id     = "{config.client_id}"',
            # TOML literal strings: the simulator's own demo values, not secrets.
            f"client_secret = '{config.client_secret}'",
            f"refresh_token = '{config.refresh_token}'",
            f"admin endpoints: {'on' if config.admin else 'off'}; stop with Ctrl-C",
        ]
    )


async def serve(config: SimConfig) -> None:
    """Serve until SIGINT or SIGTERM arrives."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running_simulator(config) as handle:
            click.echo(describe(handle))
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@click.command("sim")
@_with_options
@click.option(
    "--admin-on-network",
    is_flag=True,
    help="Allow --admin on an address other than loopback (the endpoints have no authentication).",
)
def sim(admin_on_network: bool, **options: Any) -> None:
    """Start the bundled CRM simulator (records API and token endpoint) on loopback."""
    warning = admin_exposure(options["host"], admin=options["admin"], on_network=admin_on_network)
    if warning is not None:
        click.secho(warning, err=True, fg="red", bold=True)
    try:
        config = build_config(options)
        asyncio.run(serve(config))
    except (KnobError, SchemaError) as exc:
        raise click.UsageError(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot listen: {exc.strerror or exc}") from exc

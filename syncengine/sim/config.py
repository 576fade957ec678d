"""Every knob of the bundled CRM simulator, and the edition presets behind them.

`SimConfig` is plain mutable data: the command line builds one, tests pass one
(or keyword overrides) to `running_simulator`, and `POST /__admin/config`
changes fields of the live one through `apply_knobs`, which names any unknown
knob or bad value in a `KnobError`. Units are in the names (`_s`, `_ms`);
probabilities are floats in [0, 1].

Where crm-api.md marks a behaviour [unverified], the knob exists and its
default follows that document's recommendation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final


class KnobError(ValueError):
    """An unknown knob, or a value a knob cannot take; the message names the knob."""


@dataclass(frozen=True, slots=True)
class Edition:
    """Limits of one CRM edition (crm-api.md §3.1 "cap" column, §3.2).

    `credits` None means unlimited. `base_credits` and `credits_per_user` give
    the current formula, used only when `SimConfig.users` is set.
    """

    concurrency: int
    credits: int | None
    base_credits: int
    credits_per_user: int


EDITIONS: Final[dict[str, Edition]] = {
    "free": Edition(5, 5_000, 5_000, 0),
    "standard": Edition(10, 100_000, 50_000, 250),
    "professional": Edition(15, 3_000_000, 50_000, 500),
    "enterprise": Edition(20, 5_000_000, 50_000, 1_000),
    "ultimate": Edition(25, None, 50_000, 2_000),
}

#: Scopes the demo client holds unless restricted: every module, metadata, and
#: bulk write with its file uploads (crm-bulk-write.md §1, §2).
DEFAULT_SCOPES: Final[tuple[str, ...]] = (
    "ZohoCRM.modules.ALL",
    "ZohoCRM.settings.ALL",
    "ZohoCRM.bulk.ALL",
    "ZohoFiles.files.ALL",
)


@dataclass(slots=True)
class SimConfig:
    """The simulator's knobs; see `syncengine sim --help` for each one's meaning."""

    host: str = "127.0.0.1"
    port: int = 8900
    client_id: str = "demo-client"
    client_secret: str = "demo-secret"  # the demo value
    refresh_token: str = "demo-refresh"  # the demo value
    token_ttl_s: float = 3600.0
    edition: str = "enterprise"
    concurrency: int | None = None
    credits: int | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    per_record_ms: float = 0.0
    fault_500: float = 0.0
    fault_drop: float = 0.0
    fault_drop_after: float = 0.0  # probability of applying a write, then closing with no answer
    fault_stall: float = 0.0
    fault_locked: float = 0.0
    fault_429: float = 0.0  # probability of a 429 answered at once, nothing applied
    partial_status: int = 202
    schema: Path | None = None
    seed: int = 0
    admin: bool = False
    # Extras the issue needs beyond interface.md's table.
    stall_s: float = 30.0  # how long a stalled request hangs before answering
    live_token_cap: int = 10  # live access tokens per refresh token; the oldest is evicted
    mint_limit: int = 10  # new access tokens per refresh token per mint window
    mint_window_s: float = 600.0
    legacy_expires_in: bool = False  # expires_in in ms plus expires_in_sec
    token_error_status: int = 200  # HTTP status of token endpoint errors (200 or 400)
    revoked: bool = False  # the refresh token is revoked: invalid_code, tokens die
    users: int | None = None  # with users set, credits follow the edition formula (capped)
    credits_per_records: int = 10  # a write costs one credit per this many records
    credit_window_s: float = 86_400.0
    heavy_concurrency: int = 10  # concurrent writes carrying more than heavy_records
    heavy_records: int = 10
    scopes: tuple[str, ...] = field(default=DEFAULT_SCOPES)
    accept_bearer: bool = False  # [unverified] whether `Bearer <token>` is accepted
    # A record carrying this field makes the whole write a bare 400 INVALID_DATA
    # (no data[]): how the real API answers content it cannot parse, the case
    # the client isolates by splitting the chunk. None: off.
    poison_field: str | None = None
    api_domain: str | None = None  # token answers' api_domain; None: this server
    retry_after_s: float | None = None  # Retry-After on 429s; Zoho documents none (§3.3)
    # Bulk Write API (crm-bulk-write.md): how long a job stays ADDED, then
    # INPROGRESS; the probability that a job ends FAILED; how many downloads of
    # each job's result drop the connection halfway; credits per job; how long
    # an upload and a result download take to be answered (a slow transfer).
    bulk_queue_s: float = 0.0
    bulk_job_s: float = 0.0
    bulk_fault_fail: float = 0.0
    bulk_drop_downloads: int = 0
    bulk_job_credits: int = 500
    bulk_upload_s: float = 0.0
    bulk_download_s: float = 0.0
    # Whole-request refusal answered to every records-API call (crm-api.md §1.7):
    # one of REFUSAL_CODES, or None (off).
    refuse_with: str | None = None
    fault_blueprint: float = 0.0  # per existing record: RECORD_IN_BLUEPRINT
    fault_not_approved: float = 0.0  # per existing record: NOT_APPROVED


def edition_limits(config: SimConfig) -> Edition:
    """The preset for `config.edition`; raises `KnobError` for an unknown edition."""
    try:
        return EDITIONS[config.edition]
    except KeyError:
        raise KnobError(f"edition: unknown edition {config.edition!r}") from None


def effective_concurrency(config: SimConfig) -> int:
    """Requests in flight allowed before a 429: the override, else the edition's."""
    if config.concurrency is not None:
        return config.concurrency
    return edition_limits(config).concurrency


def effective_credits(config: SimConfig) -> int | None:
    """Credits per rolling window, None when unlimited (ultimate, or no cap)."""
    if config.credits is not None:
        return config.credits
    edition = edition_limits(config)
    if config.users is None or edition.credits_per_user == 0:
        return edition.credits
    formula = edition.base_credits + edition.credits_per_user * config.users
    return formula if edition.credits is None else min(formula, edition.credits)


def write_cost(config: SimConfig, record_count: int) -> int:
    """Credits one write of `record_count` records costs: 1 per `credits_per_records`."""
    return max(1, math.ceil(record_count / max(1, config.credits_per_records)))


KNOBS: Final[frozenset[str]] = frozenset(f.name for f in dataclasses.fields(SimConfig))
_PROBABILITIES: Final = frozenset(
    {"fault_500", "fault_drop", "fault_drop_after", "fault_stall", "fault_locked", "fault_429"}
    | {"fault_blueprint", "fault_not_approved"}
)
_OPTIONAL: Final = frozenset(
    {"poison_field", "concurrency", "credits", "users", "api_domain", "retry_after_s"}
    | {"refuse_with"}
)
#: Whole-request refusals `refuse_with` can answer: a person must act (crm-api.md §1.7).
REFUSAL_CODES: Final = (
    "NO_PERMISSION",
    "AUTHORIZATION_FAILED",
    "FEATURE_NOT_SUPPORTED",
    "LICENSE_LIMIT_EXCEEDED",
)


def _coerce_special(name: str, value: Any) -> tuple[bool, Any]:
    """(True, value) for knobs that are not plain scalars, else (False, None)."""
    if name == "schema":
        return True, None if value is None else Path(str(value))
    if name == "scopes":
        if not isinstance(value, list | tuple) or not all(isinstance(s, str) for s in value):
            raise KnobError("scopes: expected a list of strings")
        return True, tuple(value)
    if value is None and name in _OPTIONAL:
        return True, None
    return False, None


def _scalar(name: str, value: Any, kind: type) -> Any:
    """`value` as a bool, int, float or str, or a `KnobError` naming the knob."""
    if kind is bool:
        if not isinstance(value, bool):
            raise KnobError(f"{name}: expected true or false")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise KnobError(f"{name}: expected a string")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise KnobError(f"{name}: expected a number")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise KnobError(f"{name}: expected an integer")
    return kind(value)


def _coerce(name: str, value: Any, current: Any) -> Any:
    """Convert a JSON value for knob `name` to the knob's type, or raise `KnobError`."""
    special, converted = _coerce_special(name, value)
    if special:
        return converted
    kinds: dict[str, type] = {"api_domain": str, "retry_after_s": float, "poison_field": str}
    kinds["refuse_with"] = str
    kind = kinds.get(name) or (type(current) if current is not None else int)
    return _scalar(name, value, kind)


def _check(config: SimConfig) -> None:
    """Reject values no knob may hold; each message names the knob."""
    edition_limits(config)
    for name in _PROBABILITIES:
        if not 0.0 <= float(getattr(config, name)) <= 1.0:
            raise KnobError(f"{name}: a probability must be within [0, 1]")
    if config.refuse_with is not None and config.refuse_with not in REFUSAL_CODES:
        raise KnobError(f"refuse_with: must be one of {', '.join(REFUSAL_CODES)}")
    if config.partial_status not in (202, 207):
        raise KnobError("partial_status: must be 202 or 207")
    if config.token_error_status not in (200, 400):
        raise KnobError("token_error_status: must be 200 or 400")
    for name in ("concurrency", "credits", "users"):
        value = getattr(config, name)
        if value is not None and value < 0:
            raise KnobError(f"{name}: must not be negative")
    if min(config.live_token_cap, config.mint_limit, config.heavy_concurrency) < 1:
        raise KnobError("live_token_cap, mint_limit, heavy_concurrency: must be at least 1")
    _check_bulk(config)


def _check_bulk(config: SimConfig) -> None:
    """The bulk-write knobs' ranges; each message names the knob."""
    if not 0.0 <= config.bulk_fault_fail <= 1.0:
        raise KnobError("bulk_fault_fail: a probability must be within [0, 1]")
    for name in (
        "bulk_queue_s",
        "bulk_job_s",
        "bulk_drop_downloads",
        "bulk_job_credits",
        "bulk_upload_s",
        "bulk_download_s",
    ):
        if getattr(config, name) < 0:
            raise KnobError(f"{name}: must not be negative")


def validate_config(config: SimConfig) -> SimConfig:
    """Return `config` unchanged if every knob is in range; else raise `KnobError`."""
    _check(config)
    return config


def apply_knobs(config: SimConfig, knobs: dict[str, Any]) -> SimConfig:
    """A copy of `config` with `knobs` (JSON values) applied and checked.

    Raises `KnobError` naming the first unknown knob or bad value; `config`
    itself is never changed, so a rejected request leaves the simulator as it was.
    """
    unknown = sorted(set(knobs) - KNOBS)
    if unknown:
        raise KnobError(f"{unknown[0]}: unknown knob")
    changes = {name: _coerce(name, value, getattr(config, name)) for name, value in knobs.items()}
    return validate_config(dataclasses.replace(config, **changes))


def config_to_json(config: SimConfig) -> dict[str, Any]:
    """Every knob as a JSON-ready value (paths as strings, scopes as a list)."""
    out: dict[str, Any] = {}
    for name in sorted(KNOBS):
        value = getattr(config, name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out

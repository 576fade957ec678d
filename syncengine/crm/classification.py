"""The error taxonomy of design.md and crm-api.md §4, as pure functions.

Inputs are what a response says (HTTP status, the CRM's `code`); the output
is a closed `ErrorClass` that the client and the engine act on. Keeping this
table pure and separate lets it be table-tested and property-tested without
any network, and keeps one place to change when Zoho adds a code.
"""

from __future__ import annotations

import enum

from syncengine.model import Verdict


class ErrorClass(enum.StrEnum):
    """What a CRM answer means for the records it covers."""

    SUCCESS = "success"  # per-record SUCCESS
    PERMANENT = "permanent"  # this record's content is refused: fail it, no retry
    TRANSIENT_RECORD = "transient_record"  # the code is unknown: retry it
    LOCKED = "locked"  # the record is locked for now: retry it, minutes later
    TOKEN = "token"  # refresh the access token (single flight) and resend; no attempt
    THROTTLED = "throttled"  # slow down and resend; no attempt
    TRANSIENT_REQUEST = "transient_request"  # whole request failed: resend later; an attempt
    POISON = "poison"  # 400 without data[] caused by a record: split to isolate it
    FATAL = "fatal"  # stop the run: credentials, scope, module, or a client bug


#: Per-record codes that retrying cannot fix (crm-api.md §1.6, §4).
PERMANENT_RECORD_CODES = frozenset(
    {
        "INVALID_DATA",
        "MANDATORY_NOT_FOUND",
        "DUPLICATE_DATA",
        "LIMIT_EXCEEDED",
        "PATTERN_NOT_MATCHED",
        "RECORD_IN_BLUEPRINT",
        "CANNOT_PERFORM_ACTION",
        "NOT_APPROVED",
        "ID_ALREADY_CONVERTED",
        "DEPENDENT_FIELD_MISSING",
        "DATA_MISMATCH",
        "MAPPING_MISMATCH",
        "NOT_ALLOWED",
    }
)

#: Per-record codes for a record that is busy, not wrong (crm-api.md §4:
#: "retry with long delay (minutes), small attempt cap"). Record locking and a
#: merge in progress last minutes, so a quick retry only spends an attempt.
LOCKED_RECORD_CODES = frozenset({"RECORD_LOCKED"})

#: The least delay before a locked record is sent again, in seconds.
LOCKED_RETRY_FLOOR_S = 60.0

#: Whole-request codes after which no resend can succeed until a person acts.
FATAL_REQUEST_CODES = frozenset(
    {
        "OAUTH_SCOPE_MISMATCH",
        "NO_PERMISSION",
        "FEATURE_NOT_SUPPORTED",
        "AUTHORIZATION_FAILED",
        "INVALID_MODULE",
        "INVALID_URL_PATTERN",
        "INVALID_REQUEST_METHOD",
        "REQUIRED_PARAM_MISSING",
        "LICENSE_LIMIT_EXCEEDED",
        # A whole-request LIMIT_EXCEEDED is the >100-records answer: a client bug.
        "LIMIT_EXCEEDED",
    }
)

#: Whole-request codes that refuse the module a request names (crm-api.md §1.7).
MODULE_REFUSED_CODES = frozenset({"INVALID_MODULE"})

#: Whole-request 401 codes that a fresh access token may cure.
TOKEN_CODES = frozenset({"INVALID_TOKEN", "AUTHENTICATION_FAILURE", "INVALID_OAUTHTOKEN"})

THROTTLE_CODE = "TOO_MANY_REQUESTS"


def classify_record(code: str) -> ErrorClass:
    """Class of one element of a response's `data[]`, from its `code`.

    Business rules (`RECORD_IN_BLUEPRINT`, `NOT_APPROVED`, ...) are permanent
    on purpose: the record needs a person (a blueprint transition, an
    approval), and resending the same values cannot change that. A locked
    record is retried on a long delay. Unknown codes are transient: retrying
    up to `max_attempts` and then failing with the code visible is safer than
    guessing permanent.
    """
    if code == "SUCCESS":
        return ErrorClass.SUCCESS
    if code in PERMANENT_RECORD_CODES:
        return ErrorClass.PERMANENT
    if code in LOCKED_RECORD_CODES:
        return ErrorClass.LOCKED
    return ErrorClass.TRANSIENT_RECORD


def retry_floor_s(code: str) -> float:
    """The least delay before a record answered `code` is sent again (0: no floor)."""
    return LOCKED_RETRY_FLOOR_S if code in LOCKED_RECORD_CODES else 0.0


def classify_request(status: int, code: str | None) -> ErrorClass:
    """Class of a whole-request answer: one without a usable `data[]`.

    `code` is the bare error object's `code`, or None when the body had none.
    A 2xx without `data[]` is a bad answer (transient), never a success.
    """
    if status == 429 or code == THROTTLE_CODE:
        return ErrorClass.THROTTLED
    if status >= 500 or status == 408:
        return ErrorClass.TRANSIENT_REQUEST
    if code in FATAL_REQUEST_CODES:
        return ErrorClass.FATAL
    if status == 401:
        # Unknown 401 codes get one refresh too; a second 401 is fatal anyway.
        return ErrorClass.TOKEN
    if code in TOKEN_CODES:
        return ErrorClass.TOKEN
    if status in (400, 413):
        # Record content (or its size) broke the whole request: split the chunk.
        return ErrorClass.POISON
    if 400 <= status < 500:
        return ErrorClass.FATAL
    return ErrorClass.TRANSIENT_REQUEST


def refuses_feed_module(code: str, module: str, configured_module: str | None) -> bool:
    """True when a whole-request refusal concerns only the records of this request.

    A module refused (`INVALID_MODULE`: unknown, no tab permission,
    unsupported) stops the run when it is the configured module, which most
    records go to and nothing can be synced without. A module that only
    some feed lines name (an envelope's `module`, a `_module` column) is
    those lines' mistake: they fail with the code and the feed goes on.
    With no configured module known, every refusal stays fatal.
    """
    return (
        code in MODULE_REFUSED_CODES
        and configured_module is not None
        and module != configured_module
    )


def verdict_for(error_class: ErrorClass) -> Verdict:
    """The per-record verdict for a per-record class (SUCCESS, PERMANENT, TRANSIENT_RECORD).

    Raises ValueError for whole-request classes, which the client resolves
    (resend, split, raise) before any record gets a verdict.
    """
    if error_class is ErrorClass.SUCCESS:
        return Verdict.SYNCED
    if error_class is ErrorClass.PERMANENT:
        return Verdict.REJECT
    if error_class in (ErrorClass.TRANSIENT_RECORD, ErrorClass.LOCKED):
        return Verdict.RETRY
    raise ValueError(f"{error_class} is not a per-record class")

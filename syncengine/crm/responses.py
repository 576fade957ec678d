"""Pure parsing of a records-API write response into per-record outcomes.

Input: the HTTP status, the raw body bytes and how many records were sent.
Output: either `RecordResults` (one `RecordOutcome` per record, by position)
or a `RequestFailure` (the whole request failed; its class says what to do).
The status line never decides success on its own (crm-api.md §1.4): any 2xx,
and a 400, are read element by element from `data[]`; 202 and 207 are alike.
An unparsable body or a count mismatch is a transient failure, never a success.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from syncengine.crm.classification import ErrorClass, classify_record, classify_request, verdict_for
from syncengine.model import RecordOutcome, Verdict

#: Engine codes for whole-request failures that carry no CRM code.
BAD_RESPONSE = "BAD_RESPONSE"
INTERNAL_ERROR = "INTERNAL_ERROR"
#: A 3xx: the request was not followed elsewhere, and nothing was written.
REDIRECTED = "REDIRECTED"


@dataclass(frozen=True, slots=True)
class RecordResults:
    """The CRM answered for each record; `outcomes[i]` belongs to record i.

    `successes` counts the SUCCESS outcomes, so the client's counters need
    not walk a chunk that succeeded whole.
    """

    outcomes: list[RecordOutcome]
    successes: int = 0


@dataclass(frozen=True, slots=True)
class RequestFailure:
    """The request as a whole failed; no record got an answer of its own."""

    error_class: ErrorClass
    status: int
    code: str
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


ParsedResponse = RecordResults | RequestFailure


def parse_write_response(status: int, body: bytes, record_count: int) -> ParsedResponse:
    """Turn one write response into per-record outcomes or a whole-request failure.

    `record_count` is how many records the request carried; a `data[]` of
    another length cannot be matched by position and is a BAD_RESPONSE.
    """
    if status == 429:
        return _failure_from_body(status, body)
    if status >= 500:
        return _failure_from_body(status, body, default_code=INTERNAL_ERROR)
    if 300 <= status < 400:
        # Never a success, whatever the body says: the records went nowhere.
        # Transient, so a passing misroute heals and a lasting one fails the
        # records after max_attempts with this code.
        return RequestFailure(
            ErrorClass.TRANSIENT_REQUEST, status, REDIRECTED, f"HTTP {status} redirect not followed"
        )
    document = _load_json(body)
    data = document.get("data") if isinstance(document, dict) else None
    if isinstance(data, list) and (200 <= status < 300 or status == 400):
        return _results_from_data(status, data, record_count)
    if isinstance(document, dict) and isinstance(document.get("code"), str):
        return _failure(status, document)
    if 200 <= status < 300:
        return RequestFailure(
            ErrorClass.TRANSIENT_REQUEST, status, BAD_RESPONSE, "answer without data[]"
        )
    return RequestFailure(
        classify_request(status, None), status, f"HTTP_{status}", "answer without an error code"
    )


def _load_json(body: bytes) -> Any:
    """The decoded body, or None when it is empty or not JSON."""
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _failure_from_body(status: int, body: bytes, *, default_code: str = "") -> RequestFailure:
    """A failure whose class the status fixes; the body only adds code and message."""
    document = _load_json(body)
    if isinstance(document, dict) and isinstance(document.get("code"), str):
        return _failure(status, document)
    code = default_code or f"HTTP_{status}"
    return RequestFailure(classify_request(status, None), status, code, f"HTTP {status}")


def _failure(status: int, document: dict[str, Any]) -> RequestFailure:
    """A failure from a bare CRM error object `{"code","details","message","status"}`."""
    code = str(document["code"])
    return RequestFailure(
        error_class=classify_request(status, code),
        status=status,
        code=code,
        message=_text(document.get("message")),
        details=_details(document.get("details")),
    )


def _results_from_data(status: int, data: list[Any], record_count: int) -> ParsedResponse:
    """One outcome per element of `data[]`, matched to the records by position."""
    if len(data) != record_count:
        return RequestFailure(
            ErrorClass.TRANSIENT_REQUEST,
            status,
            BAD_RESPONSE,
            f"data[] holds {len(data)} results for {record_count} records",
        )
    outcomes: list[RecordOutcome] = []
    append = outcomes.append
    successes = 0
    synced = Verdict.SYNCED
    for element in data:
        if type(element) is dict and element.get("code") == "SUCCESS":
            # The common case, kept short: it runs for nearly every record synced.
            details = element.get("details")
            if type(details) is not dict:
                details = {}
            record_id = details.get("id")
            message = element.get("message")
            append(
                RecordOutcome(
                    synced,
                    "SUCCESS",
                    message if type(message) is str else _text(message),
                    details,
                    record_id if type(record_id) is str else _id_text(record_id),
                )
            )
            successes += 1
            continue
        outcome = _element_outcome(element)
        if outcome is None:
            return RequestFailure(
                ErrorClass.TRANSIENT_REQUEST, status, BAD_RESPONSE, "data[] element without code"
            )
        append(outcome)
    return RecordResults(outcomes, successes)


def _element_outcome(element: Any) -> RecordOutcome | None:
    """The outcome one `data[]` element other than a plain SUCCESS states, or None."""
    if not isinstance(element, dict) or not isinstance(element.get("code"), str):
        return None
    code: str = element["code"]
    details = _details(element.get("details"))
    error_class = classify_record(code)
    crm_id = None
    if error_class is ErrorClass.SUCCESS and details.get("id") is not None:
        crm_id = str(details["id"])
    return RecordOutcome(
        verdict=verdict_for(error_class),
        code=code,
        message=_text(element.get("message")),
        details=details,
        crm_id=crm_id,
    )


def _details(value: Any) -> dict[str, Any]:
    """`details` when it is an object, else empty (some answers omit it)."""
    return value if isinstance(value, dict) else {}


def _id_text(value: Any) -> str | None:
    """A record id as text (some answers give a number), None when absent."""
    return None if value is None else str(value)


def _text(value: Any) -> str:
    """A message as text, whatever JSON type the server used."""
    return "" if value is None else str(value)

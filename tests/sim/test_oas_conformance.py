"""The simulator's answers against Zoho's own OpenAPI schemas for the Records API.

Every answer the records API can give (success, partial success, each
per-record error and each whole-request error) is produced on a fresh
simulator and validated with `jsonschema` against the response schemas of
zoho/crm-oas `v8.0/record.json` (the subset in `oas/record_v8_subset.json`,
whose header names its source). Its HTTP status is checked against the
status Zoho's v8 examples give that answer.

Only the documented differences between v2 (what the simulator speaks) and
v8 are allowed, each listed below with where it is documented. Anything else
that does not match fails.

Two notes on the schema itself: the file lists every operation's answer
under status 200 only, so statuses come from the example files of the same
repository (`v8.0/record/operations/*/examples/response-<status>-*.md`); and
its top-level `oneOf` cannot tell a `data` wrapper from a bare error (neither
branch lists required keys, so any object matches both), so the branch is
picked by the body's shape, and a bare error must carry the four keys every
Zoho example carries.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import jsonschema
import orjson
import pytest

from syncengine.sim.responses import WHOLE_ERRORS
from tests.sim.conftest import LEAD_ID_START, Api

SUBSET: Final = Path(__file__).parent / "oas" / "record_v8_subset.json"

ID1, ID2 = str(LEAD_ID_START), str(LEAD_ID_START + 1)
UNKNOWN_ID = "4876876000000999999"

# --- The documented v2 differences, and nothing else ----------------------------------------

#: 1. A partly failed write: v2 answers 202 (crm-api.md §1.4, v2 status table);
#:    v8 answers 207 Multi-Status (examples `response-207-mixedresults.md`).
#:    The simulator's default is v2's; `partial_status = 207` gives v8's.
V2_PARTIAL_STATUS: Final = 202
V8_PARTIAL_STATUS: Final = 207

#: 2. An upsert that inserted answers `"duplicate_field": null` (crm-api.md §1.3);
#:    the v8 schema types the key as a string.
V2_NULLABLE_SUCCESS_KEYS: Final = ("duplicate_field",)

#: 3. Whole-request codes of v2 missing from the v8 `API_Exception` code enum.
V2_CODES: Final = {
    "TOO_MANY_REQUESTS": "crm-api.md §1.7 and §3.3 (429)",
    "AUTHORIZATION_FAILED": "crm-api.md §1.7 (seed page); crm-oas example "
    "v8.0/record/operations/createRecords/examples/response-400-authorizationfailed.md",
    "LICENSE_LIMIT_EXCEEDED": "crm-api.md §1.7 (Kaizen #25)",
}

#: 4. Messages outside the v8 message enum (which Zoho's own examples do not keep to).
V2_MESSAGES: Final = {
    "invalid oauth scope to access this URL": "OAUTH_SCOPE_MISMATCH body from live v2 "
    "calls (crm-api.md §1.7; airbytehq/airbyte#32922)",
    "Internal Server Error": "crm-oas example createRecords/examples/response-500-internalerror.md",
    "User does not have sufficient privilege to perform this action": "crm-oas example "
    "createRecords/examples/response-400-authorizationfailed.md",
    "feature not available in this edition": "crm-oas v8.0 workflow rules example "
    "FeatureNotSupportedResponse (403)",
    "Request exceeds your license limit.": "crm-oas v8.0 profiles example LimitExceeded",
    "Sorry, you cannot perform this operation as the record is locked.": "crm-oas example "
    "updateRecords/examples/response-400-recordlockederror.md",
    "too many requests": "429 message [unverified], crm-api.md §3.3",
    "The concurrency limit of the user for the given App has exceeded": "429 text quoted in "
    "crm-api.md §3.2",
    "You have reached the API credits limit for the rolling 24 hours": "429 message "
    "[unverified], crm-api.md §3.3",
    "the number of records exceeds the allowed limit": ">100 records answer [unverified], "
    "crm-api.md §1.7",
}

#: Whole-request code → HTTP status Zoho documents for it (v8 examples unless noted).
V8_WHOLE_STATUS: Final = {
    "INVALID_TOKEN": 401,  # crm-api.md §1.7
    "AUTHENTICATION_FAILURE": 401,  # cloneRecord/examples/response-401-authenticationfailure.md
    "OAUTH_SCOPE_MISMATCH": 401,  # createRecords/examples/response-401-oauthscopemismatch.md
    "INVALID_MODULE": 400,  # createRecords/examples/response-400-invalidmodule.md
    "INVALID_URL_PATTERN": 404,  # appointments getAppointmentById response-404-*
    "INVALID_REQUEST_METHOD": 400,  # deleteRecords/examples/response-400-invalidrequestmethod.md
    "REQUIRED_PARAM_MISSING": 400,  # deleteRecords/examples/response-400-missingparam.md
    "MANDATORY_NOT_FOUND": 400,  # createRecords/examples/response-400-mandatorynotfound.md
    "INVALID_DATA": 400,  # createRecords/examples/response-400-invaliddata.md
    "LIMIT_EXCEEDED": 400,  # getRecords/examples/response-400-limitexceeded.md
    "TOO_MANY_REQUESTS": 429,  # crm-api.md §1.7
    "INTERNAL_ERROR": 500,  # createRecords/examples/response-500-internalerror.md
    "NO_PERMISSION": 403,  # createRecords/examples/response-403-nopermission.md
    "AUTHORIZATION_FAILED": 400,  # createRecords/examples/response-400-authorizationfailed.md
    "FEATURE_NOT_SUPPORTED": 403,  # workflow rules example FeatureNotSupportedResponse
    "LICENSE_LIMIT_EXCEEDED": 400,  # crm-api.md §1.7
}


def load_schemas() -> dict[str, Any]:
    """The stored subset with the four documented differences applied, and only those."""
    document: dict[str, Any] = orjson.loads(SUBSET.read_bytes())
    patched = copy.deepcopy(document)
    schemas = patched["components"]["schemas"]
    for key in V2_NULLABLE_SUCCESS_KEYS:
        schemas["Success_Response"]["properties"][key]["type"] = ["string", "null"]
    exception = schemas["API_Exception"]["properties"]
    exception["code"]["enum"] += sorted(V2_CODES)
    exception["message"]["enum"] += sorted(V2_MESSAGES)
    return patched


def is_offset_datetime(value: object) -> bool:
    """ISO 8601 date-time with an offset, as the API prints `Modified_Time`."""
    if not isinstance(value, str):
        return True
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


FORMATS = jsonschema.FormatChecker(formats=())
FORMATS.checks("date-time")(is_offset_datetime)
SCHEMAS = load_schemas()


def validator(pointer: str) -> jsonschema.Draft7Validator:
    """A validator for the schema at `pointer` of the stored document (refs resolve in it)."""
    return jsonschema.Draft7Validator({**SCHEMAS, "$ref": pointer}, format_checker=FORMATS)


WRITE_DATA = validator("#/write_response/oneOf/0")
BARE_ERROR = validator("#/write_response/oneOf/1")
READ_DATA = validator("#/read_response/oneOf/0")
ERROR_KEYS: Final = {"code", "details", "message", "status"}


def assert_conforms(body: Any, *, read: bool = False) -> None:
    """`body` matches the v8 schema for its shape (a `data` wrapper or a bare error)."""
    assert isinstance(body, dict)
    if "data" in body:
        (READ_DATA if read else WRITE_DATA).validate(body)
        assert body["data"], "an answer's data[] is never empty"
        if not read:
            for element in body["data"]:
                assert set(element) >= ERROR_KEYS, element
    else:
        BARE_ERROR.validate(body)
        assert set(body) == ERROR_KEYS, body


# --- Every answer the records API gives ---------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One call and what it must answer: status, and the codes in it."""

    name: str
    method: str
    path: str
    status: int
    codes: tuple[str, ...]  # per-record codes in order, or the one whole-request code
    body: Any = None
    raw: bytes | None = None
    params: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    auth: bool = True
    knobs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    seed_records: tuple[dict[str, Any], ...] = ()
    read: bool = False
    whole: bool = False  # answered with a bare whole-request error


def lead(n: int, **extra: Any) -> dict[str, Any]:
    """A valid new lead."""
    return {"Last_Name": f"Lead {n}", "Email": f"lead{n}@example.org", **extra}


def write(
    name: str, method: str, status: int, codes: tuple[str, ...], data: Any, **kw: Any
) -> Case:
    """A write to Leads (`/upsert` with `upsert=True`)."""
    path = "/crm/v2/Leads/upsert" if kw.pop("upsert", False) else "/crm/v2/Leads"
    return Case(name, method, path, status, codes, body={"data": data, **kw.pop("extra", {})}, **kw)


PARTIAL = V2_PARTIAL_STATUS
SUCCESSES = [
    write("insert ok", "POST", 201, ("SUCCESS",) * 2, [lead(1), lead(2)]),
    write(
        "update ok",
        "PUT",
        200,
        ("SUCCESS",) * 2,
        [{"id": ID1}, {"id": ID2, "Company": "C"}],
        seed=2,
    ),
    write("upsert ok", "POST", 200, ("SUCCESS",) * 2, [lead(1), lead(9)], upsert=True, seed=1),
    Case(
        "delete ok",
        "DELETE",
        "/crm/v2/Leads",
        200,
        ("SUCCESS",) * 2,
        params={"ids": f"{ID1},{ID2}"},
        seed=2,
    ),
    Case("read ok", "GET", f"/crm/v2/Leads/{ID1}", 200, (), seed=1, read=True),
]
PARTIALS = [
    write(
        "update partial",
        "PUT",
        PARTIAL,
        ("SUCCESS", "INVALID_DATA"),
        [{"id": ID1}, {"id": UNKNOWN_ID}],
        seed=1,
    ),
    write(
        "update partial, v8 status",
        "PUT",
        V8_PARTIAL_STATUS,
        ("SUCCESS", "INVALID_DATA"),
        [{"id": ID1}, {"id": UNKNOWN_ID}],
        seed=1,
        knobs={"partial_status": 207},
    ),
    write("insert partial", "POST", PARTIAL, ("SUCCESS", "DUPLICATE_DATA"), [lead(1), lead(1)]),
    write(
        "upsert partial",
        "POST",
        PARTIAL,
        ("SUCCESS", "MANDATORY_NOT_FOUND"),
        [lead(1), {"Company": "C"}],
        upsert=True,
    ),
    Case(
        "delete partial",
        "DELETE",
        "/crm/v2/Leads",
        PARTIAL,
        ("SUCCESS", "INVALID_DATA"),
        params={"ids": f"{ID1},{UNKNOWN_ID}"},
        seed=1,
    ),
]
SHARED = (
    {"Last_Name": "A", "Email": "same@example.org"},
    {"Last_Name": "B", "Email": "same@example.org"},
)
RECORD_ERRORS = [
    write(
        "bad type", "PUT", 400, ("INVALID_DATA",), [{"id": ID1, "No_of_Employees": "many"}], seed=1
    ),
    write("too long", "PUT", 400, ("INVALID_DATA",), [{"id": ID1, "Company": "x" * 201}], seed=1),
    write("unknown id", "PUT", 400, ("INVALID_DATA",), [{"id": UNKNOWN_ID}]),
    write("not an object", "POST", 400, ("INVALID_DATA",), ["not a record"]),
    write("bad lookup", "POST", 400, ("INVALID_DATA",), [lead(1, Owner={"id": UNKNOWN_ID})]),
    write("mandatory missing", "POST", 400, ("MANDATORY_NOT_FOUND",), [{"Company": "C"}]),
    write("update without id", "PUT", 400, ("MANDATORY_NOT_FOUND",), [{"Company": "C"}]),
    write(
        "layout rule",
        "POST",
        400,
        ("MANDATORY_NOT_FOUND",),
        [lead(1)],
        extra={"apply_feature_execution": [{"name": "layout_rules"}]},
    ),
    write(
        "unique clash",
        "POST",
        400,
        ("DUPLICATE_DATA",),
        [lead(1, Email="same@example.org")],
        seed_records=SHARED[:1],
    ),
    write(
        "ambiguous upsert",
        "POST",
        400,
        ("DUPLICATE_DATA",),
        [lead(1, Email="same@example.org")],
        upsert=True,
        seed_records=SHARED,
    ),
    write(
        "locked", "PUT", 400, ("RECORD_LOCKED",), [{"id": ID1}], seed=1, knobs={"fault_locked": 1.0}
    ),
    Case(
        "locked delete",
        "DELETE",
        f"/crm/v2/Leads/{ID1}",
        400,
        ("RECORD_LOCKED",),
        seed=1,
        knobs={"fault_locked": 1.0},
    ),
    write(
        "blueprint",
        "PUT",
        400,
        ("RECORD_IN_BLUEPRINT",),
        [{"id": ID1, "Company": "C"}],
        seed=1,
        knobs={"fault_blueprint": 1.0},
    ),
    write(
        "not approved",
        "PUT",
        400,
        ("NOT_APPROVED",),
        [{"id": ID1}],
        seed=1,
        knobs={"fault_not_approved": 1.0},
    ),
]
WHOLE_REQUEST_ERRORS = [
    write(
        "dead token",
        "PUT",
        401,
        ("INVALID_TOKEN",),
        [{"id": ID1}],
        auth=False,
        headers={"Authorization": "Zoho-oauthtoken 1000.dead"},
    ),
    write("no token", "PUT", 401, ("AUTHENTICATION_FAILURE",), [{"id": ID1}], auth=False),
    write(
        "scope",
        "PUT",
        401,
        ("OAUTH_SCOPE_MISMATCH",),
        [{"id": ID1}],
        knobs={"scopes": ["ZohoCRM.settings.ALL"]},
    ),
    Case("module", "PUT", "/crm/v2/Leadz", 400, ("INVALID_MODULE",), body={"data": [{"id": ID1}]}),
    Case("url", "GET", "/crm/v9/Leads", 404, ("INVALID_URL_PATTERN",)),
    Case("method", "PATCH", "/crm/v2/Leads", 400, ("INVALID_REQUEST_METHOD",), body={"data": []}),
    Case("no ids", "DELETE", "/crm/v2/Leads", 400, ("REQUIRED_PARAM_MISSING",)),
    write("empty data", "POST", 400, ("MANDATORY_NOT_FOUND",), []),
    Case("bad json", "POST", "/crm/v2/Leads", 400, ("INVALID_DATA",), raw=b"{not json"),
    write(
        "poison",
        "POST",
        400,
        ("INVALID_DATA",),
        [lead(1, Bad_Blob=1)],
        knobs={"poison_field": "Bad_Blob"},
    ),
    write("101 records", "POST", 400, ("LIMIT_EXCEEDED",), [lead(n) for n in range(101)]),
    write("throttled", "PUT", 429, ("TOO_MANY_REQUESTS",), [{"id": ID1}], knobs={"fault_429": 1.0}),
    write("500", "PUT", 500, ("INTERNAL_ERROR",), [{"id": ID1}], knobs={"fault_500": 1.0}),
    *(
        write(
            code.lower(),
            "PUT",
            V8_WHOLE_STATUS[code],
            (code,),
            [{"id": ID1}],
            knobs={"refuse_with": code},
        )
        for code in (
            "NO_PERMISSION",
            "AUTHORIZATION_FAILED",
            "FEATURE_NOT_SUPPORTED",
            "LICENSE_LIMIT_EXCEEDED",
        )
    ),
]
CASES = SUCCESSES + PARTIALS + RECORD_ERRORS
CASES += [dataclasses.replace(case, whole=True) for case in WHOLE_REQUEST_ERRORS]


async def answer(api: Api, case: Case) -> tuple[int, Any]:
    """Set the simulator up for `case`, make its call; (status, body)."""
    if case.seed:
        await api.seed_leads(case.seed)
    if case.seed_records:
        seeded = await api.admin(
            "POST", "seed", {"module": "Leads", "records": list(case.seed_records)}
        )
        assert seeded.status == 200
    await api.access_token()  # minted before knobs that refuse calls are on
    if case.knobs:
        api.sim.state.set_config(case.knobs)
    reply = await api.request(
        case.method,
        case.path,
        body=case.body,
        raw=case.raw,
        params=case.params,
        headers=case.headers,
        auth=case.auth,
    )
    return reply.status, reply.body


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_every_answer_matches_zohos_schema(api: Api, case: Case) -> None:
    """Status and codes as expected; the body valid against v8 plus the listed differences."""
    status, body = await answer(api, case)
    assert status == case.status, body
    assert_conforms(body, read=case.read)
    if case.read:
        return
    if case.whole:
        assert body["code"] == case.codes[0]
        assert status == V8_WHOLE_STATUS[body["code"]]
    else:
        assert tuple(e["code"] for e in body["data"]) == case.codes


def test_every_whole_request_error_is_exercised() -> None:
    """A whole-request code the simulator can answer and no case produces fails here."""
    covered = {c.codes[0] for c in CASES if c.whole}
    assert covered == set(WHOLE_ERRORS)
    assert {code: status for code, (status, _) in WHOLE_ERRORS.items()} == V8_WHOLE_STATUS


def test_every_per_record_code_is_exercised() -> None:
    """The per-record codes the simulator produces all appear in some case."""
    covered = set(itertools.chain.from_iterable(c.codes for c in CASES if not c.whole))
    produced = {"SUCCESS", "INVALID_DATA", "MANDATORY_NOT_FOUND", "DUPLICATE_DATA"}
    produced |= {"RECORD_LOCKED", "RECORD_IN_BLUEPRINT", "NOT_APPROVED"}
    assert covered == produced


def test_the_differences_are_needed_and_the_schema_is_strict() -> None:
    """Each listed difference is used by some answer; without it the schema refuses that answer."""
    strict = orjson.loads(SUBSET.read_bytes())
    plain_error = jsonschema.Draft7Validator({**strict, "$ref": "#/write_response/oneOf/1"})
    for code in V2_CODES:
        body = {"code": code, "details": {}, "message": "invalid data", "status": "error"}
        assert not plain_error.is_valid(body)
        assert BARE_ERROR.is_valid(body)
    for message in V2_MESSAGES:
        body = {"code": "INVALID_DATA", "details": {}, "message": message, "status": "error"}
        assert not plain_error.is_valid(body)
    upserted = {
        "data": [
            {
                "code": "SUCCESS",
                "status": "success",
                "message": "record added",
                "action": "insert",
                "duplicate_field": None,
                "details": {},
            }
        ]
    }
    assert not jsonschema.Draft7Validator({**strict, "$ref": "#/write_response/oneOf/0"}).is_valid(
        upserted
    )
    assert WRITE_DATA.is_valid(upserted)
    assert not WRITE_DATA.is_valid({"data": [{"code": "NOT_A_CODE", "status": "error"}]})
    assert not WRITE_DATA.is_valid(
        {
            "data": [
                {"code": "SUCCESS", "status": "success", "details": {"Modified_Time": "yesterday"}}
            ]
        }
    )

"""Local validation in a pass: refusals in place of answers, duplicates, metadata and its cache."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from syncengine.config import load_config
from syncengine.crm.field_metadata import FieldRulesSource, MetadataUnavailable, parse_fields_answer
from syncengine.crm.field_rules import ModuleRules, compile_rules
from syncengine.crm.write_request import WriteRequest
from syncengine.engine.local_validation import UniqueHolders, judge
from syncengine.engine.validating_writer import ValidatingWriter
from syncengine.errors import ConfigError
from syncengine.journal import Journal
from syncengine.journal.field_cache import JournalFieldCache
from syncengine.model import Operation, RecordOutcome, Verdict
from syncengine.sim.schema import field_metadata, load_schema

LEADS_FIELDS = field_metadata(load_schema().modules["Leads"])
LEADS = compile_rules("Leads", LEADS_FIELDS)


class FakeCrm:
    """Answers SUCCESS to every record it gets (a new id for inserts) and keeps what it got."""

    def __init__(self) -> None:
        self.requests: list[WriteRequest] = []
        self.next_id = 9_000

    async def write(self, request: WriteRequest) -> list[RecordOutcome]:
        self.requests.append(request)
        outcomes = []
        for record in request.records:
            self.next_id += 1
            crm_id = str(record.get("id") or self.next_id)
            outcomes.append(RecordOutcome(Verdict.SYNCED, "SUCCESS", crm_id=crm_id))
        return outcomes


class FixedRules:
    """Rules for Leads only."""

    async def rules(self, module: str) -> ModuleRules | None:
        return LEADS if module == "Leads" else None


def _insert(**fields: Any) -> dict[str, Any]:
    return {"Last_Name": "Kim", "Company": "Acme", **fields}


async def test_refused_records_are_not_sent_and_answered_in_place() -> None:
    """Each record keeps its place; only the good ones reach the CRM."""
    crm = FakeCrm()
    writer = ValidatingWriter(crm, FixedRules(), unknown_fields="warn")
    records = [_insert(), _insert(Email="not an address"), _insert(Phone="5550100")]
    outcomes = await writer.write(WriteRequest("Leads", Operation.INSERT, records))
    assert [o.verdict for o in outcomes] == [Verdict.SYNCED, Verdict.REJECT, Verdict.SYNCED]
    assert outcomes[1].code == "INVALID_DATA"
    assert outcomes[1].details == {"api_name": "Email", "expected_data_type": "email"}
    assert [r for request in crm.requests for r in request.records] == [records[0], records[2]]


async def test_a_chunk_refused_whole_sends_nothing() -> None:
    """When every record is refused, no request is made at all."""
    crm = FakeCrm()
    writer = ValidatingWriter(crm, FixedRules(), unknown_fields="warn")
    outcomes = await writer.write(WriteRequest("Leads", Operation.INSERT, [{"Company": "x"}]))
    assert [o.code for o in outcomes] == ["MANDATORY_NOT_FOUND"]
    assert crm.requests == []


async def test_without_rules_everything_is_sent() -> None:
    """A module whose metadata is unavailable is left to the CRM's judgement."""
    crm = FakeCrm()
    writer = ValidatingWriter(crm, FixedRules(), unknown_fields="fail")
    outcomes = await writer.write(WriteRequest("Deals", Operation.INSERT, [{"Nope": 1}]))
    assert [o.verdict for o in outcomes] == [Verdict.SYNCED]


async def test_unknown_fields_warn_or_fail() -> None:
    """`warn` sends the record; `fail` refuses it with UNKNOWN_FIELD naming the field."""
    record = _insert(Nope=1)
    warn = ValidatingWriter(FakeCrm(), FixedRules(), unknown_fields="warn")
    sent = await warn.write(WriteRequest("Leads", Operation.INSERT, [record]))
    assert sent[0].verdict is Verdict.SYNCED
    fail = ValidatingWriter(FakeCrm(), FixedRules(), unknown_fields="fail")
    refused = await fail.write(WriteRequest("Leads", Operation.INSERT, [record]))
    assert (refused[0].code, refused[0].details) == ("UNKNOWN_FIELD", {"api_name": "Nope"})


async def test_a_unique_value_the_crm_took_is_a_duplicate_for_another_record() -> None:
    """After the CRM took a@x.org for one lead, a second insert of it is DUPLICATE_DATA."""
    crm = FakeCrm()
    writer = ValidatingWriter(crm, FixedRules(), unknown_fields="warn")
    first = await writer.write(WriteRequest("Leads", Operation.INSERT, [_insert(Email="a@x.org")]))
    holder = first[0].crm_id
    second = await writer.write(WriteRequest("Leads", Operation.INSERT, [_insert(Email="A@X.org")]))
    assert (second[0].code, second[0].details) == (
        "DUPLICATE_DATA",
        {"api_name": "Email", "id": holder},
    )
    # The holder itself may be written with its own value, and may give it up.
    own = await writer.write(
        WriteRequest("Leads", Operation.UPDATE, [{"id": holder, "Email": "b@x.org"}])
    )
    assert own[0].verdict is Verdict.SYNCED
    third = await writer.write(WriteRequest("Leads", Operation.INSERT, [_insert(Email="a@x.org")]))
    assert third[0].verdict is Verdict.SYNCED


def test_a_holder_with_a_change_in_flight_holds_nothing_for_sure() -> None:
    """While the holder's own change is in flight its value may be changing: sent, not refused."""
    holders = UniqueHolders()
    holders.accept(LEADS, {"Email": "a@x.org"}, "11")
    record = _insert(Email="a@x.org")
    refused, _ = judge(LEADS, Operation.INSERT, record, holders=holders, unknown_mode="warn")
    assert refused is not None
    holders.begin("Leads", "11")
    sent, _ = judge(LEADS, Operation.INSERT, record, holders=holders, unknown_mode="warn")
    assert sent is None
    holders.end("Leads", "11")
    upsert, _ = judge(LEADS, Operation.UPSERT, record, holders=holders, unknown_mode="warn")
    assert upsert is None  # an upsert may match the holder instead


def test_held_values_are_bounded() -> None:
    """Only the latest values are remembered; a forgotten one is simply sent."""
    holders = UniqueHolders(max_values=2)
    for n in range(3):
        holders.accept(LEADS, {"Email": f"{n}@x.org"}, str(n))
    assert holders.clash(LEADS, {"Email": "0@x.org"}, None) is None
    assert holders.clash(LEADS, {"Email": "2@x.org"}, None) is not None


def test_fields_answer_parsing() -> None:
    """A 200 gives its `fields`; an error body gives its code; garbage is BAD_RESPONSE."""
    body = orjson.dumps({"fields": LEADS_FIELDS})
    assert parse_fields_answer(200, body) == LEADS_FIELDS
    for status, payload, code in [
        (400, b'{"code":"INVALID_MODULE","status":"error"}', "INVALID_MODULE"),
        (401, b'{"code":"OAUTH_SCOPE_MISMATCH"}', "OAUTH_SCOPE_MISMATCH"),
        (200, b"<html>", "BAD_RESPONSE"),
        (204, b"", "BAD_RESPONSE"),
    ]:
        with pytest.raises(MetadataUnavailable) as raised:
            parse_fields_answer(status, payload)
        assert raised.value.code == code


async def test_metadata_is_read_once_and_cached_with_an_expiry(tmp_path: Path) -> None:
    """One read per module; a later pass within the expiry reads the journal; after it, the CRM."""
    reads: list[str] = []
    now = [1_000_000.0]

    async def fetch(module: str) -> tuple[int, bytes] | None:
        reads.append(module)
        return 200, orjson.dumps({"fields": LEADS_FIELDS})

    async with await Journal.open(tmp_path / "j.db") as journal:
        source = FieldRulesSource(fetch, JournalFieldCache(journal), clock=lambda: now[0], ttl_s=60)
        first = await source.rules("Leads")
        assert first is not None
        assert first.fields == LEADS.fields
        await source.rules("Leads")
        assert reads == ["Leads"]
    async with await Journal.open(tmp_path / "j.db") as journal:
        now[0] += 30
        later = FieldRulesSource(fetch, JournalFieldCache(journal), clock=lambda: now[0], ttl_s=60)
        assert await later.rules("Leads") is not None
        assert reads == ["Leads"]  # from the journal
        now[0] += 61
        assert await later.rules("Leads") is not None
        assert reads == ["Leads", "Leads"]  # expired: read again


async def test_unavailable_metadata_is_none_and_remembered() -> None:
    """A refused read gives None (validation steps aside) and its code, asked once."""
    reads: list[str] = []

    async def fetch(module: str) -> tuple[int, bytes] | None:
        reads.append(module)
        return 401, b'{"code":"OAUTH_SCOPE_MISMATCH","status":"error"}'

    source = FieldRulesSource(fetch, None, clock=lambda: 0.0)
    assert await source.rules("Leads") is None
    assert await source.rules("Leads") is None
    assert source.unavailable == {"Leads": "OAUTH_SCOPE_MISMATCH"}
    assert reads == ["Leads"]


async def test_senders_meeting_a_module_at_once_make_one_read() -> None:
    """Ten concurrent lookups of an unknown module share one metadata read."""
    reads: list[str] = []

    async def fetch(module: str) -> tuple[int, bytes] | None:
        reads.append(module)
        await asyncio.sleep(0.01)
        return 200, orjson.dumps({"fields": LEADS_FIELDS})

    source = FieldRulesSource(fetch, None, clock=lambda: 0.0)
    found = await asyncio.gather(*(source.rules("Leads") for _ in range(10)))
    assert all(rules is not None for rules in found)
    assert reads == ["Leads"]


async def test_an_unanswered_read_is_tried_again_soon() -> None:
    """No answer (a dropped connection) is retried after a minute, not after the expiry."""
    answers: list[tuple[int, bytes] | None] = [None, (200, orjson.dumps({"fields": LEADS_FIELDS}))]
    now = [0.0]

    async def fetch(module: str) -> tuple[int, bytes] | None:
        return answers.pop(0)

    source = FieldRulesSource(fetch, None, clock=lambda: now[0], ttl_s=3600)
    assert await source.rules("Leads") is None
    now[0] += 30
    assert await source.rules("Leads") is None  # not yet asked again
    now[0] += 31
    assert await source.rules("Leads") is not None
    assert source.unavailable == {}


async def test_a_refusal_stands_but_an_expired_token_does_not() -> None:
    """A scope refusal holds for the expiry; an INVALID_TOKEN answer is tried again soon."""
    now = [0.0]
    calls: list[str] = []

    async def fetch(module: str) -> tuple[int, bytes] | None:
        calls.append(module)
        code = "OAUTH_SCOPE_MISMATCH" if module == "Leads" else "INVALID_TOKEN"
        return 401, orjson.dumps({"code": code, "status": "error"})

    source = FieldRulesSource(fetch, None, clock=lambda: now[0], ttl_s=3600)
    assert await source.rules("Leads") is None
    assert await source.rules("Deals") is None
    now[0] += 61
    await source.rules("Leads")
    await source.rules("Deals")
    assert calls == ["Leads", "Deals", "Deals"]


async def test_an_unknown_field_is_logged_once_per_run() -> None:
    """However many records name it, one warning per module and field in a run."""
    writer = ValidatingWriter(FakeCrm(), FixedRules(), unknown_fields="warn")
    with capture_logs() as logs:
        for _ in range(3):
            await writer.write(
                WriteRequest("Leads", Operation.INSERT, [_insert(Nope=1), _insert(Nope=2)])
            )
    warnings = [entry for entry in logs if entry["event"] == "validation.unknown_field"]
    assert [(w["module"], w["field"], w["log_level"]) for w in warnings] == [
        ("Leads", "Nope", "warning")
    ]


def test_config_keys_for_validation(tmp_path: Path) -> None:
    """`validate` defaults on and `unknown_fields` to warn; a bad choice names its key."""
    base = (
        '[source]\ntype = "jsonl"\npath = "f.jsonl"\n[crm]\n'
        'api_domain = "http://127.0.0.1:1"\naccounts_url = "http://127.0.0.1:1"\n'
        'client_id = "a"\nclient_secret = "b"\nrefresh_token = "c"\n'
    )
    path = tmp_path / "sync.toml"
    path.write_text(base, encoding="utf-8")
    crm = load_config(path).crm
    assert (crm.validate, crm.unknown_fields) == (True, "warn")
    path.write_text(base + 'validate = false\nunknown_fields = "fail"\n', encoding="utf-8")
    crm = load_config(path).crm
    assert (crm.validate, crm.unknown_fields) == (False, "fail")
    path.write_text(base + 'unknown_fields = "shout"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"crm\.unknown_fields"):
        load_config(path)

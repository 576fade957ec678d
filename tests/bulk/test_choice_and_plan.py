"""The pure parts of the bulk phase: prices and picks, eligibility, the census, hosts, rows."""

from __future__ import annotations

import orjson
import pytest

from syncengine.bulk.census import Census
from syncengine.bulk.choice import WriteApi, api_for, bulk_cost, choose, records_cost
from syncengine.bulk.eligibility import change_refusal
from syncengine.bulk.hosts import upload_url_for
from syncengine.bulk.jobs_journal import JobLine
from syncengine.bulk.outcomes import handed_over, rows_for
from syncengine.journal import RecordUpdate, encode_payload
from syncengine.model import Change, Operation, RecordOutcome, RecordState, SourcePosition, Verdict


def pick(rows: int, api: WriteApi = WriteApi.AUTO, **kw: object) -> bool:
    options: dict[str, object] = {
        "job_credits": 500,
        "records_per_credit": 10,
        "triggers_wanted": False,
        "bulk_without_triggers": False,
    }
    options.update(kw)
    return choose("Leads", Operation.INSERT, rows, api=api, **options).bulk  # type: ignore[arg-type]


def test_prices() -> None:
    assert bulk_cost(1, 500) == 500
    assert bulk_cost(25_000, 500) == 500
    assert bulk_cost(25_001, 500) == 1_000
    assert bulk_cost(1_000_000, 500) == 20_000
    assert records_cost(5_001, 10) == 501


@pytest.mark.parametrize(
    ("rows", "bulk"), [(0, False), (4_999, False), (5_000, False), (5_001, True)]
)
def test_auto_goes_bulk_only_when_cheaper(rows: int, bulk: bool) -> None:
    assert pick(rows) is bulk


def test_triggers_keep_auto_on_records_unless_allowed() -> None:
    assert pick(50_000, triggers_wanted=True) is False
    assert pick(50_000, triggers_wanted=True, bulk_without_triggers=True) is True
    assert pick(10, WriteApi.BULK, triggers_wanted=True) is True
    assert pick(50_000, WriteApi.RECORDS) is False


def test_api_for_commands() -> None:
    assert api_for("migrate", None, None) is WriteApi.AUTO
    assert api_for("run", None, None) is WriteApi.RECORDS
    assert api_for("daemon", None, "auto") is WriteApi.RECORDS
    assert api_for("migrate", None, "auto") is WriteApi.AUTO
    assert api_for("migrate", None, "records") is WriteApi.RECORDS
    assert api_for("migrate", "bulk", "records") is WriteApi.BULK
    assert api_for("run", "bulk", "bulk") is WriteApi.RECORDS


def change(
    record: dict[str, object], key: str | None = "Leads:1", line: int = 1, **kw: object
) -> Change:
    op = kw.pop("operation", Operation.UPDATE)
    position = SourcePosition(line - 1, 10 * line, line)
    return Change("Leads", op, record, key, [position], **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("made", "reason"),
    [
        (change({"id": "1", "Company": "A"}), None),
        (change({"id": "1"}, operation=Operation.DELETE), "not an insert"),
        (change({"id": "1", "Company": "A"}, source_key="k"), "source key"),
        (change({"id": "1", "Company": "A"}, trigger=("workflow",)), "triggers"),
        (change({"id": "1", "Account_Name": {"$ref": {"module": "A", "key": "k"}}}), "$ref"),
        (change({"id": "1", "Company": ""}), "blanks Company"),
        (change({"id": "1", "$append_values": {"Tags": True}}), "carries $append_values"),
        (change({"id": "1", "Nested": {"a": 1}}), "one CSV cell cannot carry"),
        (change({"Company": "A"}), "no id"),
        (change({"id": "1", "Company": "A"}, key="Leads:owed"), "owes"),
    ],
)
def test_change_refusal(made: Change, reason: str | None) -> None:
    found = change_refusal(made, find_by="id", owed_keys={"Leads:owed"}, triggers_allowed=False)
    assert (found is None) if reason is None else (found is not None and reason in found)


def test_census_takes_keys_seen_once() -> None:
    census = Census(lambda c: None if c.record.get("skip") else (c.module, c.operation))
    once, twice_a, twice_b, unfit = (
        change({"id": "1"}, key="K1"),
        change({"id": "2"}, key="K2"),
        change({"id": "2", "x": 1}, key="K2"),
        change({"id": "3", "skip": True}, key="K3"),
    )
    for item in (once, twice_a, twice_b, unfit):
        census.note(item)
    assert census.rows_by_group() == {("Leads", Operation.UPDATE): 1}
    assert census.group_of(once) == ("Leads", Operation.UPDATE)
    assert census.group_of(twice_b) is None
    assert census.group_of(unfit) is None


def test_upload_hosts() -> None:
    assert upload_url_for("https://www.zohoapis.com") == "https://content.zohoapis.com"
    assert upload_url_for("https://www.zohoapis.eu") == "https://content.zohoapis.eu"
    assert upload_url_for("https://www.zohoapis.com.au") == "https://content.zohoapis.com.au"
    assert upload_url_for("https://www.zohoapis.ca") == "https://upload.zohocloud.ca"
    assert upload_url_for("http://127.0.0.1:8900/") == "http://127.0.0.1:8900"


def test_rows_for_outcomes() -> None:
    lines = [
        JobLine(
            f"Leads:{n}",
            n + 1,
            "jsonl:feed",
            encode_payload(change({"id": str(n), "Email": "x"}, key=f"Leads:{n}", line=n + 1)),
        )
        for n in range(3)
    ]
    outcomes = [
        RecordOutcome(Verdict.SYNCED, "SUCCESS", crm_id="0"),
        RecordOutcome(Verdict.REJECT, "INVALID_DATA", "bad", {"api_name": "Email"}),
        RecordOutcome(Verdict.RETRY, "UNPROCESSED", "later"),
    ]
    rows = rows_for(lines, outcomes)
    assert (rows.synced, rows.failed, rows.handed_over) == (1, 1, 1)
    synced, failed, pending = rows.updates
    assert synced == ("Leads:0", "Leads", "0", "update", 1, 1, "jsonl:feed")
    assert isinstance(failed, RecordUpdate)
    assert isinstance(pending, RecordUpdate)
    assert (failed.state, failed.code, failed.position, failed.source_id) == (
        RecordState.FAILED,
        "INVALID_DATA",
        2,
        "jsonl:feed",
    )
    assert failed.payload is not None
    assert orjson.loads(failed.payload)["blamed"] == 2
    assert (pending.state, pending.code, pending.next_attempt_at) == (
        RecordState.PENDING,
        "UNPROCESSED",
        None,
    )
    assert pending.payload is not None
    assert orjson.loads(pending.payload)["record"] == {
        "id": "2",
        "Email": "x",
    }
    over = handed_over(lines, "BULK_JOB_UNKNOWN", "unknown")
    assert over.handed_over == 3
    assert all(isinstance(u, RecordUpdate) and u.state is RecordState.PENDING for u in over.updates)


def test_census_memory_is_fixed_and_a_collision_only_keeps_records_off_bulk() -> None:
    """Two slots for 50 keys seen once: every key shares a slot, so none is taken for bulk
    (a collision sends records by the records API, never a repeated key by bulk)."""
    census = Census(lambda c: (c.module, c.operation), slots=2)
    changes = [change({"id": str(n)}, key=f"K{n}") for n in range(50)]
    for item in changes:
        census.note(item)
    assert census.rows_by_group() == {}
    assert all(census.group_of(item) is None for item in changes)
    roomy = Census(lambda c: (c.module, c.operation), slots=1 << 12)
    for item in changes:
        roomy.note(item)
    taken = [item for item in changes if roomy.group_of(item) is not None]
    assert roomy.rows_by_group() == {("Leads", Operation.UPDATE): len(taken)}
    assert len(taken) >= 45  # a few may share a slot in 4,096

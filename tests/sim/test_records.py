"""The records API: response shapes, statuses and per-record rules (crm-api.md §1)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from syncengine.sim import SimHandle
from tests.sim.conftest import Api

ID1, ID2, ID3 = "4876876000000000001", "4876876000000000002", "4876876000000000003"
UNKNOWN_ID = "4876876000000999999"
SUCCESS_DETAIL_KEYS = {"id", "Modified_Time", "Modified_By", "Created_Time", "Created_By"}


def bad_id() -> dict[str, Any]:
    """The documented answer for an update of an unknown id."""
    return {
        "code": "INVALID_DATA",
        "details": {"api_name": "id"},
        "message": "the id given seems to be invalid",
        "status": "error",
    }


async def test_update_all_ok_is_200_with_full_success_details(api: Api) -> None:
    """An update where every record succeeds answers 200 with one SUCCESS element each."""
    await api.seed_leads(2)
    reply = await api.request(
        "PUT", "/crm/v2/Leads", body={"data": [{"id": ID1, "Company": "A"}, {"id": ID2}]}
    )
    assert reply.status == 200
    assert [e["code"] for e in reply.body["data"]] == ["SUCCESS", "SUCCESS"]
    first = reply.body["data"][0]
    assert (first["status"], first["message"]) == ("success", "record updated")
    assert set(first["details"]) == SUCCESS_DETAIL_KEYS
    assert first["details"]["id"] == ID1
    assert (await api.record("Leads", ID1))["fields"]["Company"] == "A"


async def test_partial_failure_is_202_with_results_in_order(api: Api) -> None:
    """Mixed results answer 202 and keep one element per input record, in order."""
    await api.seed_leads(2)
    data = [{"id": ID1, "Email": "not-an-email"}, {"id": UNKNOWN_ID}, {"id": ID2, "Phone": "+1 2"}]
    reply = await api.request("PUT", "/crm/v2/Leads", body={"data": data})
    assert reply.status == 202
    codes = [e["code"] for e in reply.body["data"]]
    assert codes == ["INVALID_DATA", "INVALID_DATA", "SUCCESS"]
    assert reply.body["data"][0]["details"] == {"api_name": "Email", "expected_data_type": "email"}
    assert reply.body["data"][1] == bad_id()


async def test_partial_status_switch_gives_207(api: Api, sim: SimHandle) -> None:
    """The partial_status switch answers 207 for mixed results."""
    sim.state.set_config({"partial_status": 207})
    await api.seed_leads(1)
    reply = await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": ID1}, {"id": "12"}]})
    assert reply.status == 207


async def test_all_failed_is_400_with_data_array(api: Api) -> None:
    """When every record fails the answer is 400 and still carries data[]."""
    reply = await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": UNKNOWN_ID}]})
    assert reply.status == 400
    assert reply.body == {"data": [bad_id()]}


async def test_numeric_ids_are_accepted_and_answered_as_strings(api: Api) -> None:
    """Ids sent as JSON numbers (as Zoho's SDK does) work; answers carry string ids."""
    await api.seed_leads(1)
    reply = await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": int(ID1)}]})
    assert reply.status == 200
    assert reply.body["data"][0]["details"]["id"] == ID1


async def test_body_without_content_type_is_parsed_as_json(api: Api) -> None:
    """An update body with no Content-Type header is still read as JSON."""
    await api.seed_leads(1)
    raw = orjson.dumps({"data": [{"id": ID1, "Company": "No Header Co"}]})
    reply = await api.request("PUT", "/crm/v2/Leads", raw=raw)
    assert reply.status == 200
    assert (await api.record("Leads", ID1))["fields"]["Company"] == "No Header Co"


async def test_update_without_id_is_mandatory_not_found(api: Api) -> None:
    """A bulk update record without an id is MANDATORY_NOT_FOUND on api_name id."""
    reply = await api.request("PUT", "/crm/v2/Leads", body={"data": [{"Company": "X"}]})
    assert reply.body["data"][0]["code"] == "MANDATORY_NOT_FOUND"
    assert reply.body["data"][0]["details"] == {"api_name": "id"}


async def test_update_one_takes_id_from_url(api: Api) -> None:
    """PUT /{module}/{id} updates that record when the body omits the id."""
    await api.seed_leads(1)
    reply = await api.request("PUT", f"/crm/v2/Leads/{ID1}", body={"data": [{"Company": "Url"}]})
    assert reply.status == 200
    assert (await api.record("Leads", ID1))["fields"]["Company"] == "Url"


async def test_more_than_100_records_is_limit_exceeded(api: Api) -> None:
    """101 records in one call answer 400 LIMIT_EXCEEDED with details limit 100, bare."""
    data = [{"id": ID1}] * 101
    reply = await api.request("PUT", "/crm/v2/Leads", body={"data": data})
    assert reply.status == 400
    assert reply.body["code"] == "LIMIT_EXCEEDED"
    assert reply.body["details"] == {"limit": 100}
    assert reply.body["status"] == "error"
    assert "data" not in reply.body


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "INVALID_DATA"),
        (b"[1, 2]", "INVALID_DATA"),
        (b'{"data": "x"}', "INVALID_DATA"),
        (b"{}", "MANDATORY_NOT_FOUND"),
        (b'{"data": [{"id": "1"}], "trigger": "workflow"}', "INVALID_DATA"),
    ],
)
async def test_malformed_bodies_are_bare_400_errors(api: Api, raw: bytes, code: str) -> None:
    """A body that cannot be used answers a bare 400 error object."""
    reply = await api.request("PUT", "/crm/v2/Leads", raw=raw)
    assert reply.status == 400
    assert reply.body["code"] == code
    assert set(reply.body) == {"code", "details", "message", "status"}


async def test_unknown_module_is_invalid_module(api: Api) -> None:
    """A module the schema does not define answers 400 INVALID_MODULE."""
    reply = await api.request("PUT", "/crm/v2/Potatoes", body={"data": [{"id": ID1}]})
    assert (reply.status, reply.body["code"]) == (400, "INVALID_MODULE")


async def test_unknown_path_is_invalid_url_pattern(api: Api) -> None:
    """A path outside the API answers 404 INVALID_URL_PATTERN."""
    reply = await api.request("GET", "/crm/v9/nothing/here/at/all")
    assert (reply.status, reply.body["code"]) == (404, "INVALID_URL_PATTERN")


async def test_missing_authorization_is_authentication_failure(api: Api) -> None:
    """No Authorization header answers 401 AUTHENTICATION_FAILURE."""
    reply = await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": ID1}]}, auth=False)
    assert (reply.status, reply.body["code"]) == (401, "AUTHENTICATION_FAILURE")


async def test_bearer_scheme_only_with_switch(api: Api, sim: SimHandle) -> None:
    """`Bearer <token>` is refused by default and accepted with accept_bearer."""
    await api.seed_leads(1)
    headers = {"Authorization": f"Bearer {await api.access_token()}"}
    body = {"data": [{"id": ID1}]}
    refused = await api.request("PUT", "/crm/v2/Leads", body=body, headers=headers)
    assert refused.status == 401
    sim.state.set_config({"accept_bearer": True})
    accepted = await api.request("PUT", "/crm/v2/Leads", body=body, headers=headers)
    assert accepted.status == 200


async def test_restricted_scope_is_oauth_scope_mismatch(api: Api, sim: SimHandle) -> None:
    """A client without a scope for the module answers 401 OAUTH_SCOPE_MISMATCH."""
    sim.state.set_config({"scopes": ["ZohoCRM.modules.contacts.ALL"]})
    reply = await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": ID1}]})
    assert (reply.status, reply.body["code"]) == (401, "OAUTH_SCOPE_MISMATCH")
    sim.state.set_config({"scopes": ["ZohoCRM.modules.leads.UPDATE"]})
    await api.seed_leads(1)
    assert (await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": ID1}]})).status == 200


async def test_insert_is_201_record_added_with_new_id(api: Api) -> None:
    """An insert answers 201 `record added` with a fresh 19-digit string id."""
    record = {"Last_Name": "Kim", "Company": "Acme", "Email": "kim@example.org"}
    reply = await api.request("POST", "/crm/v2/Leads", body={"data": [record]})
    assert reply.status == 201
    element = reply.body["data"][0]
    assert element["message"] == "record added"
    new_id = element["details"]["id"]
    assert isinstance(new_id, str)
    assert len(new_id) == 19
    assert (await api.record("Leads", new_id))["fields"]["Last_Name"] == "Kim"


async def test_insert_missing_mandatory_field(api: Api) -> None:
    """An insert without a system-mandatory field is MANDATORY_NOT_FOUND naming it."""
    reply = await api.request("POST", "/crm/v2/Leads", body={"data": [{"Company": "Acme"}]})
    assert reply.status == 400
    assert reply.body["data"][0]["code"] == "MANDATORY_NOT_FOUND"
    assert reply.body["data"][0]["details"] == {"api_name": "Last_Name"}


async def test_blanking_mandatory_field_on_update_fails(api: Api) -> None:
    """Setting a mandatory field to null on update is MANDATORY_NOT_FOUND."""
    await api.seed_leads(1)
    reply = await api.request(
        "PUT", "/crm/v2/Leads", body={"data": [{"id": ID1, "Last_Name": None}]}
    )
    assert reply.body["data"][0]["code"] == "MANDATORY_NOT_FOUND"


async def test_unique_field_clash_is_duplicate_data(api: Api) -> None:
    """Reusing another record's unique Email is DUPLICATE_DATA naming the field."""
    await api.seed_leads(2)
    taken = (await api.record("Leads", ID1))["fields"]["Email"]
    reply = await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": ID2, "Email": taken}]})
    element = reply.body["data"][0]
    assert element["code"] == "DUPLICATE_DATA"
    assert element["details"] == {"api_name": "Email", "id": ID1}
    inserted = await api.request(
        "POST",
        "/crm/v2/Leads",
        body={"data": [{"Last_Name": "B", "Company": "C", "Email": taken.upper()}]},
    )
    assert inserted.body["data"][0]["code"] == "DUPLICATE_DATA"


async def test_duplicates_within_one_batch_are_caught(api: Api) -> None:
    """A second record in the same insert reusing the first's unique value fails."""
    rec = {"Last_Name": "A", "Company": "C", "Email": "same@example.org"}
    reply = await api.request("POST", "/crm/v2/Leads", body={"data": [rec, rec]})
    assert reply.status == 202
    assert [e["code"] for e in reply.body["data"]] == ["SUCCESS", "DUPLICATE_DATA"]


async def test_upsert_reports_action_and_duplicate_field(api: Api) -> None:
    """Upsert updates a match on the system duplicate field and inserts otherwise."""
    await api.seed_leads(1)
    email = (await api.record("Leads", ID1))["fields"]["Email"]
    data = [
        {"Last_Name": "Match", "Company": "C", "Email": email},
        {"Last_Name": "New", "Company": "C", "Email": "new@example.org"},
    ]
    reply = await api.request("POST", "/crm/v2/Leads/upsert", body={"data": data})
    assert reply.status == 200
    updated, inserted = reply.body["data"]
    assert (updated["action"], updated["duplicate_field"]) == ("update", "Email")
    assert updated["details"]["id"] == ID1
    assert updated["message"] == "record updated"
    assert (inserted["action"], inserted["duplicate_field"]) == ("insert", None)
    assert inserted["message"] == "record added"
    assert (await api.record("Leads", ID1))["fields"]["Last_Name"] == "Match"


async def test_upsert_refuses_duplicate_check_fields_that_are_not_unique(api: Api) -> None:
    """Naming a field that is neither unique nor the system duplicate check refuses the call."""
    await api.seed_leads(1)
    await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": ID1, "Mobile": "+1 999"}]})
    body = {
        "data": [{"Last_Name": "M", "Company": "C", "Mobile": "+1 999"}],
        "duplicate_check_fields": ["Mobile"],
    }
    reply = await api.request("POST", "/crm/v2/Leads/upsert", body=body)
    assert reply.status == 400
    assert "data" not in reply.body
    assert (reply.body["code"], reply.body["details"]["api_name"]) == (
        "INVALID_DATA",
        "duplicate_check_fields",
    )
    assert (await api.record("Leads", ID1))["fields"]["Last_Name"] != "M"


async def test_layout_rules_enforced_only_when_applied(api: Api) -> None:
    """Layout-mandated fields are required only with apply_feature_execution layout_rules."""
    record = {"Last_Name": "L", "Company": "C"}
    plain = await api.request("POST", "/crm/v2/Leads", body={"data": [record]})
    assert plain.status == 201
    ruled = await api.request(
        "POST",
        "/crm/v2/Leads",
        body={"data": [record], "apply_feature_execution": [{"name": "layout_rules"}]},
    )
    assert ruled.body["data"][0]["code"] == "MANDATORY_NOT_FOUND"
    assert ruled.body["data"][0]["details"] == {"api_name": "Lead_Source"}


async def test_append_values_appends_and_plain_replaces(api: Api) -> None:
    """`$append_values` true appends new options; without it the list is replaced."""
    await api.seed_leads(1)
    await api.request(
        "PUT", "/crm/v2/Leads", body={"data": [{"id": ID1, "Languages": ["English"]}]}
    )
    appended = {
        "id": ID1,
        "Languages": ["French", "English"],
        "$append_values": {"Languages": True},
    }
    await api.request("PUT", "/crm/v2/Leads", body={"data": [appended]})
    assert (await api.record("Leads", ID1))["fields"]["Languages"] == ["English", "French"]
    await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": ID1, "Languages": ["German"]}]})
    record = await api.record("Leads", ID1)
    assert record["fields"]["Languages"] == ["German"]
    assert "$append_values" not in record["fields"]
    assert record["writes"] == 3


async def test_trigger_absent_runs_workflows_empty_list_does_not(api: Api) -> None:
    """No `trigger` key runs workflows; `"trigger": []` runs none."""
    await api.seed_leads(1)
    await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": ID1}], "trigger": []})
    assert (await api.stats())["workflow_runs"] == 0
    await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": ID1}]})
    assert (await api.stats())["workflow_runs"] == 1


async def test_delete_by_ids_reports_each(api: Api) -> None:
    """DELETE ?ids= answers `record deleted` with only the id, and bad ids fail."""
    await api.seed_leads(2)
    reply = await api.request("DELETE", "/crm/v2/Leads", params={"ids": f"{ID1},{UNKNOWN_ID}"})
    assert reply.status == 202
    assert reply.body["data"][0] == {
        "code": "SUCCESS",
        "details": {"id": ID1},
        "message": "record deleted",
        "status": "success",
    }
    assert reply.body["data"][1]["code"] == "INVALID_DATA"
    assert ID1 not in (await api.admin("GET", "records?module=Leads")).body["Leads"]


async def test_delete_without_ids_is_required_param_missing(api: Api) -> None:
    """DELETE with no ids answers REQUIRED_PARAM_MISSING with details param ids."""
    reply = await api.request("DELETE", "/crm/v2/Leads")
    assert (reply.status, reply.body["code"]) == (400, "REQUIRED_PARAM_MISSING")
    assert reply.body["details"] == {"param": "ids"}


async def test_settings_fields_lists_schema_keys(api: Api) -> None:
    """settings/fields answers the keys Zoho's SDK reads for every field."""
    reply = await api.request("GET", "/crm/v2/settings/fields", params={"module": "Contacts"})
    assert reply.status == 200
    keys = {"api_name", "data_type", "json_type", "length", "system_mandatory", "read_only"}
    keys |= {"custom_field", "visible", "field_label", "id"}
    fields = {f["api_name"]: f for f in reply.body["fields"]}
    assert all(keys <= set(f) for f in fields.values())
    assert fields["Last_Name"]["system_mandatory"] is True
    assert fields["Account_Name"]["lookup"]["module"] == "Accounts"


async def test_lookup_must_name_existing_record(api: Api) -> None:
    """A lookup to a missing record is INVALID_DATA; to an existing one it succeeds."""
    account = await api.request(
        "POST", "/crm/v2/Accounts", body={"data": [{"Account_Name": "Acme"}]}
    )
    account_id = account.body["data"][0]["details"]["id"]
    contact = {"Last_Name": "C"}
    bad = {**contact, "Account_Name": {"id": "4876876000000777777"}}
    good = {**contact, "Account_Name": {"id": account_id}}
    reply = await api.request("POST", "/crm/v2/Contacts", body={"data": [bad, good]})
    assert [e["code"] for e in reply.body["data"]] == ["INVALID_DATA", "SUCCESS"]


@pytest.mark.parametrize(
    ("field", "value", "details"),
    [
        ("Company", "x" * 201, {"api_name": "Company", "maximum_length": "200"}),
        ("Phone", "call me!", {"api_name": "Phone", "expected_data_type": "phone"}),
        ("Website", "not a url", {"api_name": "Website", "expected_data_type": "website"}),
        ("Languages", "French", {"api_name": "Languages", "expected_data_type": "jsonarray"}),
        (
            "Date_of_Birth",
            "31/01/2024",
            {"api_name": "Date_of_Birth", "expected_data_type": "date"},
        ),
        (
            "Last_Contacted",
            "2024-01-31T10:00:00",
            {"api_name": "Last_Contacted", "expected_data_type": "datetime"},
        ),
        ("No_of_Employees", 1.5, {"api_name": "No_of_Employees", "expected_data_type": "integer"}),
        (
            "No_of_Employees",
            10**9,
            {"api_name": "No_of_Employees", "expected_data_type": "integer"},
        ),
        (
            "Annual_Revenue",
            "lots",
            {"api_name": "Annual_Revenue", "expected_data_type": "currency"},
        ),
        ("Email_Opt_Out", "yes", {"api_name": "Email_Opt_Out", "expected_data_type": "boolean"}),
        ("Rating", "Legendary", {"api_name": "Rating", "expected_data_type": "picklist"}),
        (
            "Owner",
            {"id": "4876876000000000042"},
            {"api_name": "Owner", "id": "4876876000000000042"},
        ),
    ],
)
async def test_field_type_rules(api: Api, field: str, value: Any, details: dict[str, Any]) -> None:
    """Each field type's rule rejects a bad value with INVALID_DATA and its details."""
    await api.seed_leads(1)
    reply = await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": ID1, field: value}]})
    assert reply.status == 400
    element = reply.body["data"][0]
    assert (element["code"], element["message"]) == ("INVALID_DATA", "invalid data")
    assert element["details"] == details


async def test_read_one_record_and_204_when_missing(api: Api) -> None:
    """GET /{module}/{id} answers the record's fields, or 204 with no body."""
    await api.seed_leads(1)
    found = await api.request("GET", f"/crm/v2/Leads/{ID1}")
    assert found.status == 200
    assert found.body["data"][0]["id"] == ID1
    assert "Last_Name" in found.body["data"][0]
    missing = await api.request("GET", f"/crm/v2/Leads/{UNKNOWN_ID}")
    assert (missing.status, missing.body) == (204, None)


async def test_delete_one_by_url(api: Api) -> None:
    """DELETE /{module}/{id} removes that record."""
    await api.seed_leads(1)
    reply = await api.request("DELETE", f"/crm/v2/Leads/{ID1}")
    assert reply.status == 200
    assert reply.body["data"][0]["message"] == "record deleted"


async def test_settings_modules_lists_schema_modules(api: Api) -> None:
    """settings/modules lists every schema module as api_supported."""
    reply = await api.request("GET", "/crm/v2/settings/modules")
    names = {m["api_name"] for m in reply.body["modules"] if m["api_supported"]}
    assert names == {"Leads", "Contacts", "Accounts", "Deals"}


async def test_records_written_matches_per_record_write_counts(api: Api) -> None:
    """The records_written counter equals the sum of the records' write counts."""
    ids = await api.seed_leads(30)
    for start in (0, 10, 5):
        data = [{"id": i, "Description": f"pass {start}"} for i in ids[start : start + 20]]
        await api.request("PUT", "/crm/v2/Leads", body={"data": [*data, {"id": UNKNOWN_ID}]})
    view = (await api.admin("GET", "records?module=Leads")).body["Leads"]
    total = sum(record["writes"] for record in view.values())
    assert total == 60
    assert (await api.stats())["records_written"] == total

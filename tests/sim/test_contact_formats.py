"""E-mail and phone values the CRM takes and refuses (crm-api.md §1.8).

Zoho takes any RFC 5322 dot-atom local part (`+tag@…`, `a!b@…`) and phone
values with letters (vanity numbers) and `,;#` extension parts, within the
field's length. Each value is written through the records API, so the
answer is the simulator's, not a regex's.
"""

from __future__ import annotations

import pytest

from tests.sim.conftest import Api

ACCEPTED_EMAILS = [
    "+tag@example.com",
    "a!b@example.org",
    "first.last+sync@mail.example.co.uk",
    "o'brien@example.ie",
    "x#y$z%w&v*u/t=s?r^q_p`o{n|m}l~k-j@example.net",
    "kim@sub-domain.example.travel",
]
REFUSED_EMAILS = [
    "not-an-email",
    "two@@example.org",
    "a..b@example.org",
    ".lead@example.org",
    "trail.@example.org",
    "space here@example.org",
    "a@-example.org",
    "a@example",
    "a@example.c",
    "a(b)@example.org",
]
ACCEPTED_PHONES = [
    "1-800-FLOWERS",
    "555-1234#12",
    "+1 (555) 010-0100",
    "+44 20 7946 0958;123",
    "555 0100,,9#",
    "+91.80.4000.0000",
]
REFUSED_PHONES = ["call me!", "++1 555", "#12", "+", "12+34", "555_0100", "x" * 31]


async def write_lead(api: Api, field: str, value: str) -> tuple[str, dict[str, object]]:
    """Insert one lead carrying `value` in `field`; (code, details) of its answer."""
    reply = await api.request(
        "POST", "/crm/v2/Leads", body={"data": [{"Last_Name": "Format", field: value}]}
    )
    element = reply.body["data"][0]
    return element["code"], element["details"]


@pytest.mark.parametrize("value", ACCEPTED_EMAILS)
async def test_rfc_local_parts_are_accepted(api: Api, value: str) -> None:
    """Every dot-atom local part Zoho takes is stored."""
    code, details = await write_lead(api, "Email", value)
    assert code == "SUCCESS", details
    stored = await api.record("Leads", str(details["id"]))
    assert stored["fields"]["Email"] == value


@pytest.mark.parametrize("value", REFUSED_EMAILS)
async def test_malformed_addresses_are_refused(api: Api, value: str) -> None:
    """Addresses outside the pattern are INVALID_DATA naming the field and its type."""
    assert await write_lead(api, "Email", value) == (
        "INVALID_DATA",
        {"api_name": "Email", "expected_data_type": "email"},
    )


@pytest.mark.parametrize("value", ACCEPTED_PHONES)
async def test_vanity_and_extension_phones_are_accepted(api: Api, value: str) -> None:
    """Letters and `,;#` extension parts are phone values too."""
    code, details = await write_lead(api, "Phone", value)
    assert code == "SUCCESS", details


@pytest.mark.parametrize("value", REFUSED_PHONES)
async def test_other_phone_values_are_refused(api: Api, value: str) -> None:
    """Other symbols, a bare `+` or extension, or more than 30 characters are refused."""
    code, details = await write_lead(api, "Phone", value)
    assert (code, details["api_name"]) == ("INVALID_DATA", "Phone")


async def test_a_phone_of_exactly_thirty_characters_is_accepted(api: Api) -> None:
    """The default phone length is 30: the 30th character is still taken."""
    value = "+1 800 FLOWERS 555 0100 #12345"
    assert len(value) == 30
    assert (await write_lead(api, "Phone", value))[0] == "SUCCESS"

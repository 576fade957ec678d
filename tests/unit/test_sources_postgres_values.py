"""Tests for the PostgreSQL feed's pure parts: DSN redaction, names, value conversion."""

from __future__ import annotations

import datetime
import ipaddress
from decimal import Decimal
from uuid import UUID

import pytest

from syncengine.model import Operation
from syncengine.sources.postgres_table import (
    PostgresTableSource,
    UnencodableValue,
    quote_name,
    redact_dsn,
    to_json_value,
)
from syncengine.sources.records import RecordDefaults

DEFAULTS = RecordDefaults("Leads", Operation.UPDATE, ())


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://u:p%40ss@h:5433/db", "postgresql://u:***@h:5433/db"),
        (
            "postgresql://u@h/db?password=pw&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),
        (
            "postgres://h/db?sslmode=require&PASSWORD=pw",
            "postgres://h/db?sslmode=require&PASSWORD=***",
        ),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_redact_dsn_hides_the_password_only(dsn: str, shown: str) -> None:
    """The password, in the user info or as a parameter, is shown as ***; the rest stays."""
    assert redact_dsn(dsn) == shown


@pytest.mark.parametrize(
    ("dsn", "source_id"),
    [
        ("postgresql://u:pw@db.example/crm", "postgres:db.example/crm#t.seq"),
        ("postgresql://u:pw@db.example:6432/crm", "postgres:db.example:6432/crm#t.seq"),
        ("postgresql:///crm?host=/run/postgresql", "postgres:/run/postgresql/crm#t.seq"),
    ],
)
def test_source_id_names_host_and_database_without_credentials(dsn: str, source_id: str) -> None:
    """The source id is stable and carries neither user nor password."""
    assert PostgresTableSource(dsn, "t", "seq", DEFAULTS).source_id == source_id


def test_quote_name_quotes_each_part_and_refuses_anything_else() -> None:
    """Identifiers (optionally schema-qualified) are double-quoted; others raise ValueError."""
    assert quote_name("outbox.Changes") == '"outbox"."Changes"'
    for bad in ['a"b', "a.b.c", "1a", "a b", "", "a;drop"]:
        with pytest.raises(ValueError, match="not an SQL identifier"):
            quote_name(bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("12.50"), 12.5),
        (Decimal("3.000"), 3),
        (
            datetime.datetime(2024, 5, 1, 9, 30, 15, 900, tzinfo=datetime.UTC),
            "2024-05-01T09:30:15+00:00",
        ),
        (
            datetime.datetime(
                2024, 5, 1, 9, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))
            ),
            "2024-05-01T09:30:00+05:30",
        ),
        (datetime.datetime(2024, 5, 1, 9, 30), "2024-05-01T09:30:00+00:00"),
        (datetime.date(2024, 5, 1), "2024-05-01"),
        (UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ([Decimal(1), None, "x"], [1, None, "x"]),
        ({"id": Decimal("7")}, {"id": 7}),
        (ipaddress.ip_address("10.0.0.1"), "10.0.0.1"),
        (None, None),
        (True, True),
    ],
)
def test_to_json_value_converts_to_zoho_formats(value: object, expected: object) -> None:
    """Decimals, timestamps, dates, UUIDs and other types become JSON values Zoho accepts."""
    result = to_json_value(value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (Decimal("NaN"), "not finite"),
        (Decimal("Infinity"), "not finite"),
        (float("-inf"), "not finite"),
        (Decimal(2**70), "beyond 64 bits"),
        (-(2**63) - 1, "beyond 64 bits"),
        (Decimal("1e400"), r"100000000000\.\.\.\(401 digits\) is beyond 64 bits"),
        ([1, Decimal("NaN")], "not finite"),
    ],
)
def test_values_json_cannot_carry_are_refused_not_nulled(value: object, reason: str) -> None:
    """NaN would be written as null (clearing the field) and big integers crash the encoder."""
    with pytest.raises(UnencodableValue, match=reason):
        to_json_value(value)


def test_64_bit_edges_are_kept() -> None:
    assert to_json_value(Decimal(2**64 - 1)) == 2**64 - 1
    assert to_json_value(-(2**63)) == -(2**63)

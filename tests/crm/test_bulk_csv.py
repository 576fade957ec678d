"""Pure bulk-write file building: rows, columns, refusals, limits, find_by, job body."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncengine.crm.bulk_csv import (
    DATE_FORMAT,
    DATETIME_FORMAT,
    MAX_ROWS_PER_FILE,
    BulkFile,
    BulkInputError,
    cell_text,
    find_by_for,
    plan_files,
)
from syncengine.model import Operation


def rows_of(file: BulkFile) -> list[list[str]]:
    """The CSV rows inside a file's ZIP, header first."""
    with zipfile.ZipFile(io.BytesIO(file.payload)) as archive:
        (name,) = archive.namelist()
        assert name == file.csv_name
        text = archive.read(name).decode()
    return list(csv.reader(io.StringIO(text, newline="")))


def test_find_by_per_operation() -> None:
    """Insert: none; update: id; upsert: the module's duplicate-check field, or the one named."""
    assert find_by_for("Leads", Operation.INSERT) is None
    assert find_by_for("Leads", Operation.UPDATE) == "id"
    assert find_by_for("Accounts", Operation.UPSERT) == "Account_Name"
    assert find_by_for("Leads", Operation.UPSERT, duplicate_check_field="Phone") == "Phone"
    with pytest.raises(BulkInputError, match="Custom_Module"):
        find_by_for("Custom_Module", Operation.UPSERT)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (True, "true"),
        (False, "false"),
        (12, "12"),
        (2.5, "2.5"),
        (1e20, "100000000000000000000"),
        (1e-7, "0.0000001"),
        ("text, with comma", "text, with comma"),
        ({"id": "4876876000000000001"}, "4876876000000000001"),
        (["A", "B"], "A;B"),
        ({"name": "Acme"}, None),
        (["A;B"], None),
        (float("nan"), None),
        ([1, 2], None),
    ],
)
def test_cell_text(value: Any, cell: str | None) -> None:
    """JSON values as one CSV cell; what a cell cannot carry is None."""
    assert cell_text(value) == cell


def test_update_file_puts_the_id_first_and_maps_every_column() -> None:
    """The key column comes first; mappings name every column by index."""
    records = [{"Company": "A", "id": "1"}, {"id": "2", "Phone": "555"}]
    plan = plan_files("Leads", Operation.UPDATE, records, find_by="id")
    (file,) = plan.files
    assert rows_of(file) == [["id", "Company", "Phone"], ["1", "A", ""], ["2", "", "555"]]
    assert file.keys == ("1", "2")
    body = file.job_body("99")
    resource = body["resource"][0]
    assert body["operation"] == "update"
    assert resource["find_by"] == "id"
    assert resource["ignore_empty"] is True
    assert resource["module"] == "Leads"
    assert resource["field_mappings"] == [
        {"api_name": "id", "index": 0},
        {"api_name": "Company", "index": 1},
        {"api_name": "Phone", "index": 2},
    ]


def test_records_a_file_cannot_carry_are_refused_with_a_reason() -> None:
    """Blanks, `$` keys, nested objects and missing keys stay out, each with its reason."""
    records: list[Any] = [
        {"Email": "ok@example.org", "Last_Name": "Ok"},
        {"Email": "blank@example.org", "Phone": None},
        {"Email": "append@example.org", "$append_values": {"Tags": True}},
        {"Email": "nested@example.org", "Account_Name": {"name": "Acme"}},
        {"Last_Name": "No email"},
        "not an object",
    ]
    plan = plan_files("Leads", Operation.UPSERT, records, find_by="Email")
    assert plan.files[0].positions == (0,)
    reasons = dict(plan.refused)
    assert "blanks Phone" in reasons[1]
    assert "$append_values" in reasons[2]
    assert "Account_Name" in reasons[3]
    assert "has no Email" in reasons[4]
    assert "not a JSON object" in reasons[5]


def test_insert_leaves_ids_out() -> None:
    """An insert's `id` is not a column (the records API ignores it too)."""
    (file,) = plan_files(
        "Leads", Operation.INSERT, [{"id": "1", "Last_Name": "X"}], find_by=None
    ).files
    assert rows_of(file)[0] == ["Last_Name"]


def test_25000_rows_per_file() -> None:
    """25,001 records make two files; positions continue across them."""
    records = [{"Last_Name": f"L{n}"} for n in range(MAX_ROWS_PER_FILE + 1)]
    files = plan_files("Leads", Operation.INSERT, records, find_by=None).files
    assert [len(f.positions) for f in files] == [MAX_ROWS_PER_FILE, 1]
    assert files[1].positions == (MAX_ROWS_PER_FILE,)
    assert len(rows_of(files[0])) == MAX_ROWS_PER_FILE + 1


def test_size_limit_splits_files() -> None:
    """A file over the byte limit is halved until each part fits."""
    records = [{"Description": "x" * 100, "Last_Name": str(n)} for n in range(40)]
    files = plan_files("Leads", Operation.INSERT, records, find_by=None, max_bytes=1_500).files
    assert len(files) > 1
    assert [p for f in files for p in f.positions] == list(range(40))
    assert all(len(f.payload) <= 1_500 for f in files)


def test_more_than_200_columns_is_an_input_error() -> None:
    """A file of 201 fields cannot be a job."""
    record = {f"Field_{n}": "v" for n in range(201)}
    with pytest.raises(BulkInputError, match="201 fields"):
        plan_files("Leads", Operation.INSERT, [record], find_by=None)


def test_date_formats_from_types_or_values() -> None:
    """Date columns carry a `format`; from the field types when given, else from ISO values."""
    records = [
        {"Last_Name": "2024-01-01", "Birth": "2024-02-29", "Seen": "2024-01-01T10:00:00+01:00"}
    ]
    by_value = plan_files("Leads", Operation.INSERT, records, find_by=None).files[0]
    assert by_value.formats == {
        "Last_Name": DATE_FORMAT,
        "Birth": DATE_FORMAT,
        "Seen": DATETIME_FORMAT,
    }
    types = {"Last_Name": "text", "Birth": "date", "Seen": "datetime"}
    by_type = plan_files("Leads", Operation.INSERT, records, find_by=None, field_types=types)
    assert by_type.files[0].formats == {"Birth": DATE_FORMAT, "Seen": DATETIME_FORMAT}
    mapping = by_type.files[0].job_body("1")["resource"][0]["field_mappings"][1]
    assert mapping == {"api_name": "Birth", "index": 1, "format": DATE_FORMAT}


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["Last_Name", "Company", "Email", "Phone"]),
            st.text(min_size=1).filter(lambda t: "\x00" not in t),
            min_size=1,
        ),
        max_size=30,
    ),
    st.integers(min_value=1, max_value=7),
)
def test_files_rejoin_the_records_in_order(records: list[dict[str, str]], max_rows: int) -> None:
    """Every record lands in exactly one file row, in order, each cell as given."""
    plan = plan_files("Leads", Operation.INSERT, records, find_by=None, max_rows=max_rows)
    assert plan.refused == []
    assert [p for f in plan.files for p in f.positions] == list(range(len(records)))
    for file in plan.files:
        assert len(file.positions) <= max_rows
        header, *rows = rows_of(file)
        for position, row in zip(file.positions, rows, strict=True):
            assert dict(zip(header, row, strict=True)) == {
                c: records[position].get(c, "") for c in header
            }

"""Keys of changes: one record, one key; one feed position, one key per file."""

from __future__ import annotations

from syncengine.keys import duplicate_key, position_key, record_key


def test_record_and_duplicate_keys_keep_their_stored_format() -> None:
    assert record_key("Leads", "42") == "Leads:42"
    assert duplicate_key("Leads", "Email", "a@b.c") == "Leads:Email=a@b.c"


def test_a_line_of_a_replaced_file_is_not_the_same_row_as_the_old_files_line() -> None:
    old = position_key("jsonl:/f.jsonl", 12, generation="v1:11:100:aaaa")
    new = position_key("jsonl:/f.jsonl", 12, generation="v1:12:100:bbbb")
    assert old != new
    assert old == position_key("jsonl:/f.jsonl", 12, generation="v1:11:100:aaaa")
    assert old.startswith("@jsonl:/f.jsonl@")
    assert old.endswith("#12")


def test_positions_without_a_file_keep_the_format_journals_have() -> None:
    assert position_key("sqlite:/db#t", 7) == "@sqlite:/db#t#7"
    assert position_key(None, 7) == "@7"

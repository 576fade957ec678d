"""Tests for loading and validating the TOML configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncengine.config import Config, load_config
from syncengine.errors import ConfigError
from syncengine.model import Operation

REPO = Path(__file__).resolve().parents[2]
ENV = {"ID": "client-1", "SECRET": "s3cr3t-value", "REFRESH": "1000.refresh-value"}

MINIMAL = """
[source]
type = "jsonl"
path = "feed/changes.jsonl"

[crm]
api_domain = "https://www.zohoapis.com/"
accounts_url = "https://accounts.zoho.com"
client_id = "${ID}"
client_secret = "${SECRET}"
refresh_token = "${REFRESH}"
"""


def write(tmp_path: Path, text: str) -> Path:
    """Write `text` as config.toml in `tmp_path` and return its path."""
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Config:
    """Load `text` as a config with the test environment."""
    return load_config(write(tmp_path, text), environ=ENV)


def error_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    """The one-line ConfigError message that loading `text` raises."""
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ=ENV if environ is None else environ)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_minimal_config_takes_documented_defaults(tmp_path: Path) -> None:
    """Omitted keys take the defaults of interface.md and the brief."""
    config = load(tmp_path, MINIMAL)
    assert config.crm.module == "Leads"
    assert config.crm.operation is Operation.UPDATE
    assert config.crm.trigger == ()
    assert config.crm.duplicate_check_fields is None
    assert (config.crm.connect_timeout_s, config.crm.timeout_s) == (10.0, 60.0)
    assert config.limits.concurrency == 10
    assert config.limits.requests_per_minute is None
    assert config.limits.max_attempts == 8
    assert config.daemon.linger_ms == 500
    assert config.daemon.metrics_port is None
    assert config.source.encoding == "utf-8"


def test_relative_paths_resolve_against_config_folder(tmp_path: Path) -> None:
    """Source and journal paths are relative to the config file, not the working directory."""
    config = load(tmp_path, MINIMAL)
    assert config.source.path == tmp_path.resolve() / "feed" / "changes.jsonl"
    assert config.journal.path == tmp_path.resolve() / "syncengine.db"


def test_env_references_are_replaced_and_trailing_slash_dropped(tmp_path: Path) -> None:
    """`${NAME}` takes the environment's value; URLs lose a trailing slash."""
    config = load(tmp_path, MINIMAL)
    assert config.crm.client_secret == "s3cr3t-value"
    assert config.crm.api_domain == "https://www.zohoapis.com"


def test_secrets_never_appear_in_repr(tmp_path: Path) -> None:
    """repr and str of the config hold no client id, secret or refresh token."""
    config = load(tmp_path, MINIMAL)
    for text in (repr(config), str(config), repr(config.crm)):
        for secret in ENV.values():
            assert secret not in text


def test_missing_env_variable_names_variable_and_key(tmp_path: Path) -> None:
    """A missing environment variable is an error naming it and the key that used it."""
    message = error_of(tmp_path, MINIMAL, {"ID": "x", "REFRESH": "y"})
    assert "SECRET" in message
    assert "crm.client_secret" in message


def test_unknown_key_suggests_closest(tmp_path: Path) -> None:
    """A typo in a key is an error with its dotted path and a suggestion."""
    message = error_of(tmp_path, MINIMAL + "\n[limits]\nconcurency = 5\n")
    assert "limits.concurency" in message
    assert "'concurrency'" in message


def test_unknown_table_is_rejected(tmp_path: Path) -> None:
    """An unknown top-level table is an error, not silently ignored."""
    assert "limit: unknown key; did you mean 'limits'" in error_of(
        tmp_path, MINIMAL + "\n[limit]\nconcurrency = 5\n"
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("[limits]\nconcurrency = 0", "limits.concurrency: must be between 1 and 100; got 0"),
        ("[limits]\nconcurrency = 101", "limits.concurrency: must be between 1 and 100"),
        ("[limits]\nconcurrency = true", "limits.concurrency: must be an integer"),
        ("[limits]\nconcurrency = '5'", "limits.concurrency: must be an integer"),
        ("[limits]\nrequests_per_minute = 0", "limits.requests_per_minute: must be > 0"),
        ("[limits]\nmax_attempts = 0", "limits.max_attempts: must be >= 1"),
        ("[limits]\nretry_base_s = 5.0\nretry_cap_s = 1.0", "limits.retry_cap_s"),
        ("[limits]\ngrace_s = -1", "limits.grace_s: must be >= 0"),
        ("[limits]\ngrace_s = inf", "limits.grace_s"),
        ("[daemon]\nmetrics_port = 70000", "daemon.metrics_port"),
        ("[daemon]\nlinger_ms = 1.5", "daemon.linger_ms: must be an integer"),
        ("[journal]\npath = 3", "journal.path: must be a string"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, extra: str, expected: str) -> None:
    """Wrong types and out-of-range values are errors naming the dotted key."""
    assert expected in error_of(tmp_path, MINIMAL + "\n" + extra + "\n")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("", 'operation = "merge"', "crm.operation: must be one of"),
        ("", 'trigger = ["workflow", "email"]', "crm.trigger: 'email'"),
        ("", 'module = "Le ads"', "crm.module"),
        ("", "apply_layout_rules = 1", "crm.apply_layout_rules"),
        ("", 'duplicate_check_fields = "Email"', "crm.duplicate_check_fields"),
        ('"https://www.zohoapis.com/"', '"ftp://x"', "crm.api_domain: must be an http"),
        ('"https://www.zohoapis.com/"', '"https://u:p@x.com"', "must not contain credentials"),
        ('"https://www.zohoapis.com/"', '"zohoapis.com"', "crm.api_domain"),
        ('type = "jsonl"', 'type = "jsonl"\ndsn = "postgresql://h/db"', "source.dsn: applies only"),
        ('type = "jsonl"', 'type = "sqlite"\nchannel = "c"', "source.channel: applies only"),
        ('type = "jsonl"', 'type = "xml"', "source.type: must be one of"),
        ('type = "jsonl"', 'type = "jsonl"\nencoding = "klingon"', "source.encoding"),
        ('type = "jsonl"', 'type = "jsonl"\nencoding = "utf-16"', "not ASCII-compatible"),
        ('type = "jsonl"', 'type = "csv"\ncsv_delimiter = ";;"', "source.csv_delimiter"),
        ('type = "jsonl"', 'type = "jsonl"\ntable = "t"', "source.table: applies only"),
        ('type = "jsonl"', 'type = "sqlite"\ncursor = "seq"', "source.table: is required"),
        ('type = "jsonl"', 'type = "sqlite"\ntable = "a;b"\ncursor = "c"', "source.table"),
        ('client_id = "${ID}"', 'client_id = ""', "crm.client_id: must not be empty"),
        ('client_id = "${ID}"', "", "crm.client_id: is required"),
        ('path = "feed/changes.jsonl"', "", "source.path: is required"),
    ],
)
def test_bad_keys_in_tables_are_reported(tmp_path: Path, old: str, new: str, expected: str) -> None:
    """Bad choices, names, URLs and missing required keys are one-line errors naming the key."""
    # An empty `old` adds `new` to the [crm] table instead of replacing a line.
    text = MINIMAL.replace(old, new) if old else MINIMAL.replace("[crm]", "[crm]\n" + new)
    assert expected in error_of(tmp_path, text)


def test_secret_value_not_echoed_in_type_errors(tmp_path: Path) -> None:
    """An error about a secret key names the key but never its value."""
    text = MINIMAL.replace('refresh_token = "${REFRESH}"', "refresh_token = ['${REFRESH}']")
    message = error_of(tmp_path, text)
    assert "crm.refresh_token: must be a string" in message
    assert ENV["REFRESH"] not in message


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A TOML syntax error names the file and the line."""
    message = error_of(tmp_path, MINIMAL + "\n[limits\n")
    assert "config.toml" in message
    assert "line 13" in message


def test_missing_file_names_file(tmp_path: Path) -> None:
    """A config file that does not exist is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read config"):
        load_config(tmp_path / "nope.toml", environ=ENV)


def test_full_sqlite_config_loads(tmp_path: Path) -> None:
    """Every key of every table is accepted and typed as documented."""
    text = MINIMAL.replace('type = "jsonl"', 'type = "sqlite"\ntable = "changes"\ncursor = "seq"')
    text += """
module = "Contacts"
operation = "upsert"
trigger = ["workflow", "approval"]
duplicate_check_fields = ["Email", "Phone"]
apply_layout_rules = true
connect_timeout_s = 5
timeout_s = 30.5
token_timeout_s = 15

[limits]
concurrency = 5
requests_per_minute = 100
max_attempts = 3
reserve_credits = 1000
retry_base_s = 0.5
retry_cap_s = 30
grace_s = 0

[journal]
path = "/var/lib/syncengine/journal.db"

[daemon]
linger_ms = 250
grace_s = 10
metrics_port = 9464
poll_interval_s = 0.5
"""
    config = load(tmp_path, text)
    assert (config.source.table, config.source.cursor) == ("changes", "seq")
    assert config.crm.operation is Operation.UPSERT
    assert config.crm.trigger == ("workflow", "approval")
    assert config.crm.duplicate_check_fields == ("Email", "Phone")
    assert config.limits.requests_per_minute == 100.0
    assert config.limits.grace_s == 0.0
    assert config.journal.path == Path("/var/lib/syncengine/journal.db")
    assert config.daemon.metrics_port == 9464


def test_zoho_example_config_loads_with_env() -> None:
    """configs/zoho.example.toml loads once its three environment variables are set."""
    environ = {
        "ZOHO_CLIENT_ID": "1000.ABC",
        "ZOHO_CLIENT_SECRET": "secret",
        "ZOHO_REFRESH_TOKEN": "1000.def",
    }
    config = load_config(REPO / "configs" / "zoho.example.toml", environ=environ)
    assert config.crm.api_domain == "https://www.zohoapis.com"
    assert config.crm.accounts_url == "https://accounts.zoho.com"
    assert config.crm.client_id == "1000.ABC"
    assert config.source.type == "jsonl"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "latin-1", "cp1252"])
def test_ascii_compatible_encodings_are_accepted(tmp_path: Path, encoding: str) -> None:
    """Encodings that keep newlines and quotes as single bytes are accepted."""
    config = load(
        tmp_path, MINIMAL.replace('type = "jsonl"', f'type = "jsonl"\nencoding = "{encoding}"')
    )
    assert config.source.encoding == encoding


def test_unknown_key_is_reported_before_missing_required_keys(tmp_path: Path) -> None:
    """A misspelt key is named as unknown even when required keys are also missing."""
    assert "limits.concurency: unknown key" in error_of(tmp_path, "[limits]\nconcurency = 3\n")
    message = error_of(tmp_path, '[source]\ntyp = "jsonl"\n')
    assert "source.typ: unknown key; did you mean 'type'?" in message


POSTGRES = MINIMAL.replace(
    'type = "jsonl"\npath = "feed/changes.jsonl"',
    'type = "postgres"\ndsn = "postgresql://sync:${PGPASS}@db.example:5433/crm"\n'
    'table = "outbox.changes"\ncursor = "seq"\nchannel = "crm_changes"',
)
PG_ENV = {**ENV, "PGPASS": "pg-pass-w0rd"}


def test_postgres_source_loads_with_interpolated_password(tmp_path: Path) -> None:
    """A postgres source takes dsn (with ${ENV}), schema-qualified table, cursor and channel."""
    config = load_config(write(tmp_path, POSTGRES), environ=PG_ENV)
    source = config.source
    assert (source.type, source.table, source.cursor, source.channel) == (
        "postgres",
        "outbox.changes",
        "seq",
        "crm_changes",
    )
    assert source.dsn == "postgresql://sync:pg-pass-w0rd@db.example:5433/crm"
    assert source.path is None
    assert "pg-pass-w0rd" not in repr(config)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('dsn = "postgresql://sync:${PGPASS}@db.example:5433/crm"', "", "source.dsn: is required"),
        ('table = "outbox.changes"', "", "source.table: is required"),
        ('cursor = "seq"', "", "source.cursor: is required"),
        ('table = "outbox.changes"', 'table = "a.b.c"', "source.table: 'a.b.c' is not a valid"),
        ('table = "outbox.changes"', 'table = "t; DROP TABLE x"', "source.table"),
        ('cursor = "seq"', 'cursor = "seq\\"x"', "source.cursor"),
        ('channel = "crm_changes"', 'channel = "a-b"', "source.channel: 'a-b' is not a valid"),
        ('cursor = "seq"', 'cursor = "seq"\npath = "x.db"', "source.path: does not apply"),
        ('cursor = "seq"', 'cursor = "seq"\nencoding = "utf-8"', "source.encoding: does not"),
        ("postgresql://", "mysql://", "source.dsn: must be a postgresql:// URL"),
        (":5433/", ":99999/", "source.dsn: has an invalid port"),
    ],
)
def test_bad_postgres_source_keys_are_reported(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    """Missing, malformed or misplaced postgres keys are one-line errors that never show the DSN."""
    message = error_of(tmp_path, POSTGRES.replace(old, new), PG_ENV)
    assert expected in message
    assert "pg-pass-w0rd" not in message


SQLITE = MINIMAL.replace(
    'type = "jsonl"\npath = "feed/changes.jsonl"',
    'type = "sqlite"\npath = "app.db"\ntable = "outbox"\ncursor = "seq"',
)


def with_source_line(text: str, line: str) -> str:
    """`text` with `line` added to its [source] table."""
    return text.replace("[source]\n", f"[source]\n{line}\n", 1)


def test_exclude_columns_loads_for_table_feeds(tmp_path: Path) -> None:
    """A list of column names for sqlite and postgres; absent, nothing is left out."""
    sqlite = load(tmp_path, with_source_line(SQLITE, 'exclude_columns = ["created_at", "Note"]\n'))
    assert sqlite.source.exclude_columns == ("created_at", "Note")
    assert load(tmp_path, SQLITE).source.exclude_columns == ()
    postgres = POSTGRES.replace('channel = "crm_changes"', 'exclude_columns = ["created_at"]')
    loaded = load_config(write(tmp_path, postgres), environ=PG_ENV)
    assert loaded.source.exclude_columns == ("created_at",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            with_source_line(SQLITE, 'exclude_columns = "created_at"'),
            "source.exclude_columns: must be a list of",
        ),
        (
            with_source_line(SQLITE, "exclude_columns = [1]"),
            "source.exclude_columns: must be a list of strings",
        ),
        (
            with_source_line(SQLITE, 'exclude_columns = ["a b"]'),
            "source.exclude_columns: 'a b' is not allowed",
        ),
        (
            with_source_line(SQLITE, 'exclude_columns = ["a", "a"]'),
            "source.exclude_columns: must not repeat",
        ),
        (
            with_source_line(SQLITE, 'exclude_columns = ["SEQ"]'),
            "source.exclude_columns: 'SEQ' is the cursor",
        ),
        (
            with_source_line(SQLITE, 'exclude_columns = ["_module"]'),
            "source.exclude_columns: '_module' overrides",
        ),
        (
            with_source_line(MINIMAL, 'exclude_columns = ["x"]'),
            "source.exclude_columns: applies only to types",
        ),
        (
            POSTGRES.replace('channel = "crm_changes"', 'exclude_columns = ["seq"]'),
            "source.exclude_columns: 'seq' is the cursor",
        ),
        (
            POSTGRES.replace('channel = "crm_changes"', 'exclude_columns = ["_operation"]'),
            "source.exclude_columns: '_operation' overrides",
        ),
    ],
)
def test_bad_exclude_columns_are_reported(tmp_path: Path, text: str, expected: str) -> None:
    """Wrong types, bad names, the cursor and the override columns are one-line errors."""
    assert expected in error_of(tmp_path, text, PG_ENV)


def test_a_postgres_exclusion_differing_from_the_cursor_only_in_case_is_a_column(
    tmp_path: Path,
) -> None:
    """PostgreSQL names are quoted, so "Seq" is another column than seq."""
    text = POSTGRES.replace('channel = "crm_changes"', 'exclude_columns = ["Seq"]')
    assert load_config(write(tmp_path, text), environ=PG_ENV).source.exclude_columns == ("Seq",)

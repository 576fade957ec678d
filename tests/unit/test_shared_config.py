"""`[limits] shared` and `shared_schema`: validated like `[source] dsn`, never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncengine.config import Config, load_config
from syncengine.errors import ConfigError

BASE = """
[source]
type = "jsonl"
path = "changes.jsonl"

[crm]
api_domain = "https://www.zohoapis.com"
accounts_url = "https://accounts.zoho.com"
client_id = "id"
client_secret = "secret"
refresh_token = "refresh"

[limits]
"""


def load(tmp_path: Path, limits: str) -> Config:
    path = tmp_path / "sync.toml"
    path.write_text(BASE + limits, encoding="utf-8")
    return load_config(path, environ={})


def test_without_shared_nothing_is_shared(tmp_path: Path) -> None:
    limits = load(tmp_path, "").limits
    assert limits.shared is None
    assert limits.shared_schema == "syncengine"


def test_shared_dsn_and_schema_are_read_and_the_dsn_is_not_in_the_repr(tmp_path: Path) -> None:
    dsn = "postgresql://sync:pa55word@db.internal:5432/limits"
    limits = load(tmp_path, f'shared = "{dsn}"\nshared_schema = "org_limits"\n').limits
    assert limits.shared == dsn
    assert limits.shared_schema == "org_limits"
    assert "pa55word" not in repr(limits)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"mysql://u:pa55word@host/db"', "limits.shared: must be a postgresql:// URL"),
        ('"postgresql://u:pa55word@host:99x/db"', "limits.shared: has an invalid port"),
        ('"postgresql://u:pa55word@[::1/db"', "limits.shared: is not a valid URL"),
        ("5432", "limits.shared:"),
    ],
)
def test_a_bad_shared_dsn_names_the_key_and_hides_the_password(
    tmp_path: Path, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, f"shared = {value}\n")
    assert message in str(raised.value)
    assert "pa55word" not in str(raised.value)
    assert "sync.toml" in str(raised.value)


def test_shared_schema_must_be_an_identifier(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"limits\.shared_schema: .* is not a valid name"):
        load(tmp_path, 'shared = "postgresql://h/db"\nshared_schema = "x; DROP TABLE t"\n')


def test_shared_schema_alone_is_an_error(tmp_path: Path) -> None:
    """A schema with no database would silently share nothing."""
    with pytest.raises(ConfigError, match=r"limits\.shared_schema: applies only with"):
        load(tmp_path, 'shared_schema = "org_limits"\n')


def test_the_example_config_loads() -> None:
    """configs/shared-limits.example.toml is a config the engine accepts."""
    example = Path(__file__).resolve().parents[2] / "configs" / "shared-limits.example.toml"
    environ = {
        "ZOHO_CLIENT_ID": "id",
        "ZOHO_CLIENT_SECRET": "secret",
        "ZOHO_REFRESH_TOKEN": "refresh",
        "SYNCENGINE_SHARED_DSN": "postgresql://syncengine:pw@db.internal:5432/syncengine",
    }
    config = load_config(example, environ=environ)
    assert config.limits.shared == environ["SYNCENGINE_SHARED_DSN"]
    assert config.limits.shared_schema == "syncengine"

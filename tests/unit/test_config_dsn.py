"""A PostgreSQL DSN that does not parse: one config error naming the key, password masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncengine.config import load_config, mask_dsn
from syncengine.errors import ConfigError

CONFIG = """
[source]
type = "postgres"
dsn = "{dsn}"
table = "changes"
cursor = "seq"

[crm]
api_domain = "https://www.zohoapis.eu"
accounts_url = "https://accounts.zoho.eu"
client_id = "id"
client_secret = "secret"
refresh_token = "refresh"
"""


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:hunter2@[::1:5432/x",
        "postgresql://u:hunter2@::1]:5432/x",
        "postgresql://u:hun@ter2@[::1/x?password=hunter2",
    ],
)
def test_unparsable_dsn_is_a_config_error_without_the_password(tmp_path: Path, dsn: str) -> None:
    """urlsplit's ValueError becomes a ConfigError naming source.dsn; no password in it."""
    path = tmp_path / "pg.toml"
    path.write_text(CONFIG.format(dsn=dsn), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "source.dsn" in message
    assert str(path) in message
    assert "hunter2" not in message
    assert "ter2" not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://u:p@[::1:5432/x", "postgresql://u:***@[::1:5432/x"),
        ("postgresql://u:p@w/rd@h/x", "postgresql://u:***@h/x"),
        (
            "postgres://h/x?sslmode=require&password=p",
            "postgres://h/x?sslmode=require&password=***",
        ),
        ("postgresql://u@h/x", "postgresql://u@h/x"),
        ("u:p@h", "***"),
    ],
)
def test_mask_dsn(dsn: str, masked: str) -> None:
    """Everything between the user's colon and the last @, and password= values, is masked."""
    assert mask_dsn(dsn) == masked

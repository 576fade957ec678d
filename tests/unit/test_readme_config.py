"""The configuration reference in the README is a config the engine accepts."""

from __future__ import annotations

import re
from pathlib import Path

from syncengine.config import load_config
from syncengine.model import Operation

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_configuration_reference_loads(tmp_path: Path) -> None:
    """Its TOML block loads with its secrets from the environment, defaults as documented."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Configuration reference") :]
    block = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert block is not None
    path = tmp_path / "sync.toml"
    path.write_text(block.group(1), encoding="utf-8")
    environ = {"ZOHO_CLIENT_ID": "id", "ZOHO_CLIENT_SECRET": "s3cret", "ZOHO_REFRESH_TOKEN": "r"}

    config = load_config(path, environ=environ)

    assert config.source.path == tmp_path / "changes.jsonl"
    assert config.crm.operation is Operation.UPDATE
    assert config.crm.trigger == ()
    assert config.limits.concurrency == 10
    assert config.limits.max_attempts == 8
    assert config.limits.requests_per_minute is None
    assert config.daemon.linger_ms == 500
    assert config.journal.path == tmp_path / "syncengine.db"

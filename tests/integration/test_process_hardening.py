"""Hardening seen from outside: real `syncengine` processes."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import run_cli

PG_CONFIG = """
[source]
type = "postgres"
dsn = "postgresql://feeduser:s3cr3t-pw@[::1:5432/x"
table = "changes"
cursor = "seq"

[crm]
api_domain = "http://127.0.0.1:9"
accounts_url = "http://127.0.0.1:9"
client_id = "demo-client"
client_secret = "${SE_TEST_SECRET}"
refresh_token = "${SE_TEST_REFRESH}"

[journal]
path = "journal.db"
"""


async def test_malformed_dsn_is_one_line_exit_2_without_the_password(tmp_path: Path) -> None:
    """`run` with an unparsable DSN: exit 2, one stderr line naming source.dsn, masked."""
    config = tmp_path / "pg.toml"
    config.write_text(PG_CONFIG, encoding="utf-8")

    result = await run_cli("run", "-c", str(config), cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "source.dsn" in lines[0]
    assert "feeduser:***@" in lines[0]
    assert "s3cr3t" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "journal.db").exists()

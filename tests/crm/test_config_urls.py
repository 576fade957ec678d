"""The CRM URLs and the proxy in the config: https outside this machine, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from syncengine.config import load_config
from syncengine.crm.origin import is_loopback_host, origin
from syncengine.errors import ConfigError

ENV = {"ID": "client-1", "SECRET": "s3cr3t-value", "REFRESH": "1000.refresh-value"}


def config_text(api_domain: str, accounts_url: str, extra: str = "") -> str:
    return f"""
[source]
type = "jsonl"
path = "feed/changes.jsonl"

[crm]
api_domain = "{api_domain}"
accounts_url = "{accounts_url}"
client_id = "${{ID}}"
client_secret = "${{SECRET}}"
refresh_token = "${{REFRESH}}"
{extra}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("api_domain", "accounts_url", "key"),
    [
        ("http://www.zohoapis.com", "https://accounts.zoho.com", "crm.api_domain"),
        ("https://www.zohoapis.com", "http://accounts.zoho.com", "crm.accounts_url"),
        ("http://10.0.0.5:8080", "https://accounts.zoho.com", "crm.api_domain"),
        ("https://www.zohoapis.com", "http://127.example.com", "crm.accounts_url"),
    ],
)
def test_plain_http_to_another_host_is_refused(
    tmp_path: Path, api_domain: str, accounts_url: str, key: str
) -> None:
    with pytest.raises(ConfigError, match=rf"config.toml: {key}: must use https") as caught:
        load_config(write(tmp_path, config_text(api_domain, accounts_url)), environ=ENV)
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://127.8.9.10", "http://localhost:9", "http://[::1]:80"]
)
def test_plain_http_to_loopback_stays_allowed(tmp_path: Path, url: str) -> None:
    config = load_config(write(tmp_path, config_text(url, url)), environ=ENV)
    assert config.crm.api_domain == url
    assert config.crm.accounts_url == url


def test_cli_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, config_text("http://www.zohoapis.com", "https://accounts.zoho.com"))
    done = subprocess.run(
        [sys.executable, "-m", "syncengine", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        env={"ID": "a", "SECRET": "b", "REFRESH": "c", "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "crm.api_domain" in done.stderr
    assert "Traceback" not in done.stderr


def test_proxy_key_is_read_and_checked(tmp_path: Path) -> None:
    good = config_text(
        "https://www.zohoapis.com",
        "https://accounts.zoho.com",
        'proxy = "http://u:pw@proxy.corp:3128"',
    )
    assert (
        load_config(write(tmp_path, good), environ=ENV).crm.proxy == "http://u:pw@proxy.corp:3128"
    )
    bad = config_text(
        "https://www.zohoapis.com", "https://accounts.zoho.com", 'proxy = "socks5://u:pw@proxy:1"'
    )
    with pytest.raises(ConfigError, match=r"crm\.proxy: must be an http://host:port") as caught:
        load_config(write(tmp_path, bad), environ=ENV)
    assert "pw" not in str(caught.value)


def test_origin_normalizes_scheme_host_and_default_port() -> None:
    assert origin("https://WWW.zohoapis.com/") == origin("https://www.zohoapis.com:443")
    assert origin("http://127.0.0.1:8000") != origin("http://127.0.0.1:8001")
    assert origin("https://www.zohoapis.eu") != origin("https://www.zohoapis.com")
    assert is_loopback_host("::1")
    assert is_loopback_host("localhost")
    assert not is_loopback_host("localhost.example.com")

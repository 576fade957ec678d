"""The committed demo config is the one `syncengine demo` writes."""

from __future__ import annotations

from pathlib import Path

from syncengine.config import load_config
from syncengine.demo import realistic_leads, render_demo_config

REPO = Path(__file__).resolve().parents[2]


def test_configs_demo_toml_matches_the_template() -> None:
    """configs/demo.toml is the rendered template with its defaults, and it loads."""
    committed = (REPO / "configs" / "demo.toml").read_text(encoding="utf-8")
    assert committed == render_demo_config()
    config = load_config(REPO / "configs" / "demo.toml")
    assert config.crm.api_domain == "http://127.0.0.1:8900"


def test_demo_feed_plants_a_few_bad_rows() -> None:
    """About one line in 500 is a bad row of each planted kind; the rest are leads."""
    lines = list(realistic_leads(1000))
    assert len(lines) == 1000
    assert sum(1 for line in lines if not line.endswith(b"}")) == 2
    assert sum(1 for line in lines if b"not-an-email" in line) == 2

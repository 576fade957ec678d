"""The Python surface stays small: the contract is the CLI and the TOML file."""

from __future__ import annotations

import syncengine


def test_the_package_exports_only_its_version() -> None:
    """Adding a public name is a decision: this test makes it a visible one."""
    assert syncengine.__all__ == ["__version__"]
    assert isinstance(syncengine.__version__, str)

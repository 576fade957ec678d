"""The demo's report opened in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import REPO

#: `.ci/run` installs chromium when absent; under CI its absence is then a fault.
_CI_INSTALLS_CHROMIUM = "apt-get install -y -qq chromium" in (REPO / ".ci" / "run").read_text()


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is not None:
        return found
    if os.environ.get("CI") == "true" and _CI_INSTALLS_CHROMIUM:
        pytest.fail("chromium is missing although .ci/run installs it")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def _headless(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # tests may run as root, where the sandbox refuses to start
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
    )


def test_the_demo_report_renders_in_chromium(tmp_path: Path) -> None:
    chromium = _chromium()
    demo = subprocess.run(
        [sys.executable, "-m", "syncengine", "demo", "--records", "1500", "--dir", "out"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stderr.decode()[-2000:]
    url = (tmp_path / "out" / "report.html").resolve().as_uri()

    dom = _headless(chromium, tmp_path / "profile", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "CONSOLE" not in dom.stderr, dom.stderr  # no script error, no failed load
    rendered = dom.stdout
    assert rendered.count("<svg") == 4
    assert "Records per second" in rendered
    assert '<td class="n">1,491</td>' in rendered  # the run's synced count, as parsed
    assert "INVALID_DATA" in rendered
    assert "MANDATORY_NOT_FOUND" in rendered

    shot = tmp_path / "report.png"
    drawn = _headless(
        chromium, tmp_path / "profile", "--window-size=1200,2000", f"--screenshot={shot}", url
    )
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    assert "CONSOLE" not in drawn.stderr, drawn.stderr
    image = shot.read_bytes()
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(image) > 20_000  # tables and plots drawn, not a blank page

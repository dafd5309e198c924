"""A failing browser test leaves a screenshot and the page's HTML behind, and says where."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

FAILING_TEST = """
import pytest

@pytest.mark.e2e
def test_sees_the_wrong_title(page):
    page.goto("/accounts/login/")
    assert page.title() == "Something else"
"""


def test_failure_saves_screenshot_and_html(tmp_path, chromium_executable):
    (tmp_path / "test_failing.py").write_text(FAILING_TEST)
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.e2e.conftest"]\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    e2e: browser\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DEBUG": "1",
        # Its own in-memory database: never the one this run is using.
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        "REDIS_URL": "",
        "PORTAL_E2E_CHROMIUM": chromium_executable,
    }
    result = subprocess.run(
        # Its database is built from the models (--no-migrations): the login page needs the tables, not
        # the migrations, which this run checks elsewhere.
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-migrations"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed" in result.stdout
    folder = tmp_path / "test-output" / "e2e" / "test_failing.py_test_sees_the_wrong_title"
    screenshot, html = folder / "context1-page1.png", folder / "context1-page1.html"
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    assert "Sign in" in html.read_text()
    assert "e2e failure artefacts" in result.stdout
    assert str(screenshot) in result.stdout

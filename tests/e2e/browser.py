"""Find and launch the Chromium that the browser tests and `make screenshots` drive."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

INSTALL_HINT = "install it with `apt-get install -y chromium` (or set PORTAL_E2E_CHROMIUM=/path/to/chromium)"

# Flags for a quiet, reproducible headless Chromium in containers and CI: no sandbox (we
# usually run as root), no GPU, /tmp instead of a small /dev/shm, and no calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

_CANDIDATES = ["/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]


def find_chromium() -> str | None:
    """Return the path of a Chromium executable, or None when there is none."""
    configured = os.environ.get("PORTAL_E2E_CHROMIUM", "").strip()
    if configured:
        return configured if Path(configured).is_file() else None
    for candidate in _CANDIDATES:
        found = candidate if Path(candidate).is_file() else shutil.which(candidate)
        if found and os.access(found, os.X_OK):
            return found
    return None


def launch_chromium(playwright, executable: str):
    """Launch Chromium with the flags above: headless, unless PORTAL_E2E_HEADED=1 (to watch a test)."""
    headless = os.environ.get("PORTAL_E2E_HEADED") != "1"
    return playwright.chromium.launch(executable_path=executable, headless=headless, args=CHROMIUM_ARGS)

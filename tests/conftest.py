"""Shared fixtures: Debian's Chromium driven by Playwright for the browser tests.

Needs /usr/bin/chromium (Debian package ``chromium``: ``apt-get install -y chromium``; scripts/test.sh
installs it); Playwright's own browser download cannot work offline. Set HYPERINFLAM_SKIP_BROWSER=1
to skip the browser tests (never skipped silently otherwise: a missing browser fails).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Flags for headless Chromium as root on a machine without network (stack notes; machine notes):
# no sandbox (root), no GPU, and no background connections to Google services.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def require_chromium(path: Path = CHROMIUM) -> None:
    """Skip when HYPERINFLAM_SKIP_BROWSER=1; otherwise FAIL (never skip silently) when Debian's
    Chromium is not installed."""
    if os.environ.get("HYPERINFLAM_SKIP_BROWSER") == "1":
        pytest.skip("HYPERINFLAM_SKIP_BROWSER=1 is set")
    if not path.exists():
        pytest.fail(f"{path} is missing: install Debian's chromium "
                    "(apt-get update && apt-get install -y chromium), or set "
                    "HYPERINFLAM_SKIP_BROWSER=1 to skip the browser tests", pytrace=False)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test of the session."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()

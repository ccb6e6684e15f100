"""report.html in a real browser: Debian's Chromium, headless, driven by Playwright.

Asserts that the page makes no network request (every request stays on file: or data:), logs no
console error, shows the marker table, and saves a full-page screenshot.

Needs /usr/bin/chromium (Debian package ``chromium``: ``apt-get install -y chromium``); Playwright's
own browser download cannot work offline. Set HYPERINFLAM_SKIP_BROWSER=1 to skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from test_report import make_results  # tests/ is on sys.path (rootdir import mode)

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


def test_missing_chromium_fails_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("HYPERINFLAM_SKIP_BROWSER", raising=False)
    with pytest.raises(pytest.fail.Exception, match="install Debian's chromium"):
        require_chromium(tmp_path / "no-chromium")
    monkeypatch.setenv("HYPERINFLAM_SKIP_BROWSER", "1")
    with pytest.raises(pytest.skip.Exception, match="HYPERINFLAM_SKIP_BROWSER=1"):
        require_chromium(tmp_path / "no-chromium")


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.mark.browser
def test_report_opens_offline_without_requests_or_errors(browser, tmp_path):
    from hyperinflam.report import write_report

    path = write_report(make_results(), tmp_path)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests, errors = [], []
    page.on("request", lambda req: requests.append(req.url))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(path.as_uri(), wait_until="load")

    assert requests, "the page itself should have been requested"
    external = [u for u in requests if not u.startswith(("file://", "data:"))]
    assert external == [], f"network requests from report.html: {external}"
    assert errors == [], f"console errors: {errors}"
    table = page.locator("#marker-table")
    assert table.is_visible()
    assert "206.0 ± 50.0" in table.inner_text()
    # every marker's two plots are laid out with a real size
    for marker in ("crp", "ferritin"):
        box = page.locator(f"#fig-{marker} svg").first.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.close()

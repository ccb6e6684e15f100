"""report.html in a real browser: Debian's Chromium, headless, driven by Playwright.

Asserts that the page makes no network request (every request stays on file: or data:), logs no
console error, shows the marker table, and saves a full-page screenshot.

Needs /usr/bin/chromium (Debian package ``chromium``: ``apt-get install -y chromium``); Playwright's
own browser download cannot work offline. Set HYPERINFLAM_SKIP_BROWSER=1 to skip.
"""

from __future__ import annotations


import pytest

from conftest import require_chromium
from test_report import make_results  # tests/ is on sys.path (rootdir import mode)

def test_missing_chromium_fails_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("HYPERINFLAM_SKIP_BROWSER", raising=False)
    with pytest.raises(pytest.fail.Exception, match="install Debian's chromium"):
        require_chromium(tmp_path / "no-chromium")
    monkeypatch.setenv("HYPERINFLAM_SKIP_BROWSER", "1")
    with pytest.raises(pytest.skip.Exception, match="HYPERINFLAM_SKIP_BROWSER=1"):
        require_chromium(tmp_path / "no-chromium")


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

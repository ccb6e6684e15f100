"""report.html in a real browser: Debian's Chromium, headless, driven by Playwright.

Asserts that the page makes no network request (every request stays on file: or data:), logs no
console error, lays the tables and figures out with a real size, and that every text of the
flow diagram fits inside its box; saves screenshots of the flow, the per-patient listing, a
multi-timepoint figure and the recognition-to-treatment section (in the test's temporary folder).

Needs /usr/bin/chromium (Debian package ``chromium``: ``apt-get install -y chromium``); Playwright's
own browser download cannot work offline. Set HYPERINFLAM_SKIP_BROWSER=1 to skip.
"""

from __future__ import annotations

import pytest

from conftest import require_chromium
from hyperinflam.study.definition import parse_study
from hyperinflam.study.run import run_study
from studydata import build_database, three_timepoint_study

#: For each box (rect) of the flow SVG, the texts whose baseline lies inside it must fit in it.
FLOW_FIT_JS = """
() => {
  const svg = document.querySelector('svg.flow-svg');
  const rects = [...svg.querySelectorAll('rect')].map(r => r.getBBox());
  const bad = [];
  for (const t of svg.querySelectorAll('text')) {
    const b = t.getBBox();
    const y = parseFloat(t.getAttribute('y'));
    const box = rects.find(r => y > r.y && y < r.y + r.height
                                 && b.x + b.width / 2 > r.x && b.x + b.width / 2 < r.x + r.width);
    if (!box) { bad.push('outside every box: ' + t.textContent); continue; }
    if (b.x < box.x + 1 || b.x + b.width > box.x + box.width - 1)
      bad.push('overflows its box: ' + t.textContent);
  }
  return bad;
}
"""


def test_missing_chromium_fails_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("HYPERINFLAM_SKIP_BROWSER", raising=False)
    with pytest.raises(pytest.fail.Exception, match="install Debian's chromium"):
        require_chromium(tmp_path / "no-chromium")
    monkeypatch.setenv("HYPERINFLAM_SKIP_BROWSER", "1")
    with pytest.raises(pytest.skip.Exception, match="HYPERINFLAM_SKIP_BROWSER=1"):
        require_chromium(tmp_path / "no-chromium")


def _open(browser, path):
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
    return page


@pytest.mark.browser
@pytest.mark.parametrize("study", ["founding", "three_timepoints"])
def test_report_opens_offline_and_lays_out(browser, tmp_path, study):
    from hyperinflam.report import write_report

    if study == "founding":
        results = run_study(build_database(), "rajasekaran2014")
    else:
        results = run_study(build_database("dexamethasone"),
                            parse_study(three_timepoint_study()))
    path = write_report(results, tmp_path)
    page = _open(browser, path)
    table = page.locator("#marker-table")
    assert table.is_visible()
    assert "±" in table.inner_text()
    # the marker table, Table 1 and the listing are no wider than the page's text column
    main_width = page.locator("main").bounding_box()["width"]
    for selector in ("#marker-table", "#table-baseline"):
        assert page.locator(selector).bounding_box()["width"] <= main_width + 1, selector
    listing = page.locator("#patient-listing")
    assert listing.is_visible() and listing.locator("tbody tr").count() == 8
    # every figure is laid out with a real size
    figure = page.locator("#fig-crp svg").first.bounding_box()
    assert figure is not None and figure["width"] > 300 and figure["height"] > 120
    assert page.evaluate(FLOW_FIT_JS) == []
    # the secondary analysis: its per-patient delay figure is laid out with a real size
    delay = page.locator("#fig-delay svg").first.bounding_box()
    assert delay is not None and delay["width"] > 300 and delay["height"] > 100
    shots = {"flow": "#flow", "listing": "#patients", "figure": "#fig-crp",
             "delay": "#recognition"}
    for name, selector in shots.items():
        shot = tmp_path / f"report-{study}-{name}.png"
        page.locator(selector).screenshot(path=str(shot))
        assert shot.stat().st_size > 5_000
    page.close()

"""Issue 14 in a real browser (Debian's Chromium, headless, Playwright) against uvicorn on
loopback, one test per numbered item: privacy and sessions, one "meets" rule with the groups
apart, recognition to treatment on the census and the time axis, validated ages, labels and
time zones. Screenshots of the census and a patient page go to a temporary folder (-s prints
it)."""

from __future__ import annotations

import re

import pytest

from test_recognition import _untreated
from test_web_app import PASSWORD, make_app
from test_web_browser import live_server


def _adult(raw) -> None:
    """A 30-year-old in the PICU: the pediatric scores are outside their validated ages."""
    _untreated(raw)
    raw.execute("INSERT INTO person VALUES ('MRN-55508', DATE '1994-01-01', 'female')")
    raw.execute("INSERT INTO stay VALUES ('ENC-90008', 'MRN-55508', TIMESTAMP '2024-03-05 02:00', "
                "NULL, 'trauma', 60.0)")
    raw.execute("INSERT INTO measurement VALUES ('MRN-55508', NULL, TIMESTAMP '2024-03-05 03:00', "
                "'platelets', 150.0, '10*3/uL', '150', '10*3/uL', NULL)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app = make_app(tmp_path_factory, extra=_adult)
    with live_server(app) as base:
        yield base, app


def _sign_in(page, base, user):
    page.goto(f"{base}/login")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(f"{base}/census", timeout=120_000)


def _row(page, text):
    return page.locator("#census tbody tr", has_text=text)


@pytest.mark.browser
def test_item1_researcher_frame_and_sign_out_ends_the_session(server, browser):
    base, _ = server
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, base, "rita")
    body = page.inner_text("body")
    assert "MRN-" not in body and "2024-03" not in body
    page.locator("a.patient-link").first.click()
    page.wait_for_load_state()
    text = page.inner_text("body")
    assert "2000-01-0" in text and "2024-03" not in text and "(stay frame)" in text
    cookies = context.cookies()
    page.goto(f"{base}/census")
    page.click("text=Sign out")
    page.wait_for_url(f"{base}/login")
    thief = browser.new_context()
    thief.add_cookies(cookies)
    stolen = thief.new_page()
    stolen.goto(f"{base}/census")
    assert stolen.url.endswith("/login")  # the copied cookie's session was ended
    context.close()
    thief.close()


@pytest.mark.browser
def test_items2_3_4_5_census_and_patient_page(server, browser, tmp_path_factory):
    base, _ = server
    shots = tmp_path_factory.mktemp("issue14-screenshots")
    page = browser.new_page(viewport={"width": 1500, "height": 900})
    _sign_in(page, base, "alice")
    headers = page.inner_text("#census thead")
    assert "Phenotype" in headers and "Organ dysfunction, severity" in headers  # item 2
    untreated = _row(page, "MRN-55507")
    assert "meets HScore >= 169" in untreated.inner_text()
    assert "HScore >= 169 for 22 h, no anakinra" in untreated.inner_text()  # item 3
    adult = _row(page, "MRN-55508")
    assert re.search(r"outside validated ages: .*Phoenix", adult.inner_text())  # item 4
    assert "UTC" in page.inner_text(".bar")  # item 5: the census time has its zone
    page.screenshot(path=str(shots / "census.png"), full_page=True)
    assert "hscore" not in page.inner_text("#census tbody").replace("HScore", "")
    assert "not_met" not in page.inner_text("#census tbody")
    page.check("input[value=meets]")
    page.wait_for_url("**filter=meets**")
    assert page.locator("#census tbody tr").count() == 2
    _row(page, "MRN-55507").locator("a.patient-link").click()
    page.wait_for_load_state()
    assert page.locator("svg.timeline g.event.met").count() >= 1  # item 3 on the time axis
    assert "Recognition to treatment: HScore >= 169 for 22 h" in page.inner_text("#recognition")
    svg = page.inner_html("#timeline")
    assert "×10³/µL" in svg and "10*3/uL" not in svg  # item 5: human units
    assert "UTC" in page.inner_text(".meta")
    page.screenshot(path=str(shots / "patient-untreated.png"), full_page=True)
    page.goto(f"{base}/census")
    _row(page, "MRN-55501").locator("a.patient-link").click()
    page.wait_for_load_state()
    assert page.locator("svg.timeline g.event.dose").count() == 1
    page.screenshot(path=str(shots / "patient-treated.png"), full_page=True)
    print(f"screenshots in {shots}")

"""The bedside application in a real browser: Debian's Chromium, headless, driven by Playwright,
against uvicorn on loopback. Sign in, census, filter, open a patient, read the timeline, sign out;
a researcher never sees an identifier; signed-out requests are refused. Screenshots of the census
and a patient page are written to a temporary folder (printed with -s)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from test_web_app import PASSWORD, PERSONS, STAYS, shared_app  # noqa: E402


@contextlib.contextmanager
def live_server(app):
    """``app`` served by uvicorn on a free loopback port in a thread: yields the base URL. The
    live census snapshot and its patient tables are computed first (as ``serve`` warms them at
    start), so that no page waits for the first build of the queries on a loaded machine."""
    import uvicorn

    database = app.state.database
    database.patient_tables(database.snapshot())

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(400):
        if srv.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server():
    app = shared_app()
    with live_server(app) as base:
        yield base, app


def _sign_in(page, base, user):
    page.goto(f"{base}/census")
    assert page.url.endswith("/login")  # signed out: sent to sign in
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(f"{base}/census")


@pytest.mark.browser
def test_clinician_workflow(server, browser, tmp_path_factory):
    base, app = server
    shots = tmp_path_factory.mktemp("screenshots")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    _sign_in(page, base, "alice")
    assert page.locator("#census tbody tr").count() == 2
    page.screenshot(path=str(shots / "census.png"), full_page=True)
    page.check("input[value=meets]")  # filters apply on change
    page.wait_for_url("**filter=meets**")
    rows = page.locator("#census tbody tr")
    assert rows.count() == 1 and "MRN-55501" in rows.first.inner_text()
    rows.first.locator("a.patient-link").click()
    page.wait_for_selector("#timeline svg")
    assert "MRN-55501" in page.inner_text("#patient-title")
    svg_text = page.inner_text("#timeline")
    for label in ("Ferritin", "Anakinra", "Invasive ventilation", "HScore"):
        assert label in svg_text
    assert "up to 35 HScore points unknown" in page.inner_text("#missing")
    assert "160" in page.inner_text("#anakinra")
    page.screenshot(path=str(shots / "patient.png"), full_page=True)
    page.click("#sign-out")
    page.wait_for_url(f"{base}/login")
    page.goto(f"{base}/census")
    assert page.url.endswith("/login")
    assert all(u.startswith(base) for u in requests)  # nothing from a CDN
    print(f"\nscreenshots: {shots}")
    views = app.state.store.audit_rows(action="view_patient", user="alice")
    assert views and views[0]["person_id"] == "MRN-55501"


@pytest.mark.browser
def test_researcher_sees_no_identifier(server, browser, tmp_path_factory):
    base, _ = server
    page = browser.new_page()
    _sign_in(page, base, "rita")
    texts = [page.content()]
    page.locator("a.patient-link").first.click()
    page.wait_for_selector("#timeline svg")
    texts.append(page.content())
    page.screenshot(path=str(tmp_path_factory.mktemp("screenshots") / "researcher.png"),
                    full_page=True)
    for text in texts:
        for ident in PERSONS + STAYS:
            assert ident not in text
    response = page.request.get(f"{base}/api/census")  # same browser session
    assert response.ok and "MRN-" not in response.text()

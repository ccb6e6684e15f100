"""The bedside web application: sign-in, roles, CSRF, sign-in limits, audit, log hygiene.

The database is built from canonical rows inserted here (identifiers chosen to be easy to search
for in every response body and log line).
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import logging
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hyperinflam.engine import connect

NOW = dt.datetime(2024, 3, 5, 12, 0)
PASSWORD = "correct horse battery staple"
PERSONS = ("MRN-55501", "MRN-55502", "MRN-55503")
STAYS = ("ENC-90001", "ENC-90002", "ENC-90003")
CRITERIA = ["hlh2004", "hscore", "phoenix", "psofa"]


def build_web_db(path, extra=None) -> None:
    """Three children: ENC-90001 open with rising ferritin and anakinra 2 mg/kg q6h (20 kg),
    HScore by hand (§2.2) 49 (39.6 °C) + 34 (3 lineages) + 50 (ferritin > 6000) + 30 (fibrinogen
    1.2 g/L) + 19 (AST 150) = 182 >= 169, so it meets HScore;
    ENC-90002 open with few data, ENC-90003 discharged before NOW."""
    con = connect(path)
    raw = con.con
    raw.execute("INSERT INTO person VALUES ('MRN-55501', DATE '2016-05-01', 'female'), "
                "('MRN-55502', DATE '2020-01-10', 'male'), ('MRN-55503', DATE '2012-07-07', 'male')")
    raw.execute("INSERT INTO stay VALUES "
                "('ENC-90001', 'MRN-55501', TIMESTAMP '2024-03-02 08:00', NULL, 'sepsis', 20.0), "
                "('ENC-90002', 'MRN-55502', TIMESTAMP '2024-03-04 20:00', NULL, 'asthma', 12.0), "
                "('ENC-90003', 'MRN-55503', TIMESTAMP '2024-02-01 08:00', "
                "TIMESTAMP '2024-02-03 08:00', 'trauma', 40.0)")
    meas = [("MRN-55501", "2024-03-02 10:00", "ferritin", 3000.0, "ng/mL"),
            ("MRN-55501", "2024-03-04 10:00", "ferritin", 12000.0, "ng/mL"),
            ("MRN-55501", "2024-03-04 10:00", "platelets", 80.0, "10*3/uL"),
            ("MRN-55501", "2024-03-04 10:00", "fibrinogen", 120.0, "mg/dL"),
            ("MRN-55501", "2024-03-04 10:00", "hemoglobin", 8.0, "g/dL"),
            ("MRN-55501", "2024-03-04 10:00", "wbc", 3.0, "10*3/uL"),
            ("MRN-55501", "2024-03-04 10:00", "ast", 150.0, "U/L"),
            ("MRN-55501", "2024-03-04 11:00", "temperature", 39.6, "Cel"),
            ("MRN-55501", "2024-03-04 10:00", "crp", 180.0, "mg/L"),
            ("MRN-55502", "2024-03-05 06:00", "ferritin", 300.0, "ng/mL"),
            ("MRN-55503", "2024-02-02 06:00", "ferritin", 90.0, "ng/mL")]
    for person, time, var, value, unit in meas:
        raw.execute("INSERT INTO measurement VALUES (?, NULL, ?, ?, ?, ?, ?, ?, NULL)",
                    [person, time, var, value, unit, str(value), unit])
    for i in range(9):  # 40 mg q6h from 2024-03-03 08:00 (2 mg/kg x 20 kg)
        raw.execute("INSERT INTO drug_administration VALUES ('MRN-55501', NULL, 'anakinra', "
                    "'il1_blocker', 40, 'mg', 'sc', ?, NULL, 20.0)",
                    [dt.datetime(2024, 3, 3, 8) + dt.timedelta(hours=6 * i)])
    raw.execute("INSERT INTO organ_support VALUES ('MRN-55501', NULL, 'invasive_ventilation', "
                "TIMESTAMP '2024-03-02 09:00', NULL, NULL, NULL)")
    if extra is not None:  # more rows for one test (a function of the raw connection)
        extra(raw)
    con.disconnect()


def make_app(tmp_path_factory, extra=None, **kw):
    from hyperinflam.web import WebSettings, create_app

    folder = tmp_path_factory.mktemp("web")
    db = folder / "site.duckdb"
    build_web_db(db, extra)
    app = create_app(WebSettings(db=db, state=folder / "state.sqlite", pinned_now=NOW,
                                 criteria=CRITERIA, warm=False, **kw))
    app.state.store.add_user("alice", "clinician", PASSWORD)
    app.state.store.add_user("rita", "researcher", PASSWORD)
    return app


@functools.lru_cache(maxsize=None)
def shared_app():
    """One application over one database for the whole session (this module, the browser tests
    and the schemathesis tests): its census snapshot is computed once."""
    from hyperinflam.web import WebSettings, create_app

    folder = Path(tempfile.mkdtemp(prefix="hyperinflam-web-test-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    build_web_db(folder / "site.duckdb")
    app = create_app(WebSettings(db=folder / "site.duckdb", state=folder / "state.sqlite",
                                 pinned_now=NOW, criteria=CRITERIA, warm=False))
    app.state.store.add_user("alice", "clinician", PASSWORD)
    app.state.store.add_user("rita", "researcher", PASSWORD)
    return app


@pytest.fixture(scope="session")
def app():
    return shared_app()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client: TestClient, user: str, password: str = PASSWORD):
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"username": user, "password": password,
                                       "csrf_token": token}, follow_redirects=False)


def patient_keys(html: str) -> list[str]:
    return re.findall(r'href="/patient/([^"]+)"', html)


def test_signed_out_requests_are_refused(app):
    client = TestClient(app)
    page = client.get("/census", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert client.get("/api/census").status_code == 401
    assert client.get("/census.csv", follow_redirects=False).status_code == 303
    assert client.get("/api/patients/kabc/timeline").status_code == 401


def test_sign_in_sets_a_hardened_session_cookie_and_requires_csrf(app):
    client = TestClient(app)
    client.get("/login")
    no_token = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert no_token.status_code == 403
    ok = sign_in(client, "alice")
    assert ok.status_code == 303 and ok.headers["location"] == "/census"
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie  # plain http on loopback; --https adds it
    assert client.get("/api/me").json() == {"user": "alice", "role": "clinician"}
    # Signing out needs the session's CSRF token too.
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 403
    out = client.post("/logout", data={"csrf_token": csrf_of(client.get("/census").text)},
                      follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/api/me").status_code == 401


def test_secure_cookie_with_https(tmp_path_factory):
    client = TestClient(make_app(tmp_path_factory, https=True), base_url="https://testserver")
    assert "secure" in sign_in(client, "alice").headers["set-cookie"].lower()


def test_sign_in_attempts_are_limited_per_user(tmp_path_factory):
    from hyperinflam.web.auth import SIGN_IN_MAX_FAILURES_PER_USER

    app = make_app(tmp_path_factory)
    client = TestClient(app)
    for _ in range(SIGN_IN_MAX_FAILURES_PER_USER):
        assert sign_in(client, "alice", "wrong password!!").status_code == 401
    refused = sign_in(client, "alice")  # right password, but locked for the window
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.text
    assert sign_in(TestClient(app), "rita").status_code == 303  # other users unaffected
    actions = [r["action"] for r in app.state.store.audit_rows(user="alice")]
    assert actions.count("sign_in_failed") == SIGN_IN_MAX_FAILURES_PER_USER
    assert "sign_in_refused_rate_limit" in actions


def test_clinician_sees_identifiers_and_every_patient_view_is_audited(app):
    client = TestClient(app)
    sign_in(client, "alice")
    census = client.get("/census").text
    assert "MRN-55501" in census and "ENC-90002" in census
    assert "MRN-55503" not in census  # discharged before NOW: not a current stay
    meets = client.get("/census?filter=meets").text
    assert "MRN-55501" in meets and "MRN-55502" not in meets
    key = patient_keys(meets)[0]
    before = len(app.state.store.audit_rows(action="view_patient", limit=1000))
    page = client.get(f"/patient/{key}")
    assert page.status_code == 200 and "Anakinra course" in page.text
    assert "up to 35 HScore points unknown" in page.text  # marrow not examined
    for endpoint in ("timeline", "criteria", "anakinra"):
        assert client.get(f"/api/patients/{key}/{endpoint}").status_code == 200
    views = app.state.store.audit_rows(action="view_patient", limit=1000)
    assert len(views) == before + 1
    assert (views[0]["user"], views[0]["stay_id"], views[0]["person_id"], views[0]["address"]) \
        == ("alice", "ENC-90001", "MRN-55501", "testclient")
    api_actions = {r["action"] for r in app.state.store.audit_rows(limit=10)}
    assert {"api_patient_timeline", "api_patient_criteria", "api_patient_anakinra"} <= api_actions
    export = client.get("/census.csv")
    assert export.status_code == 200 and "MRN-55501" in export.text
    assert app.state.store.audit_rows(limit=1)[0]["action"] == "export_census"


def test_anakinra_api_values(app):
    # 40 mg q6h with a 20 kg dosing weight from 2024-03-03 08:00: 160 mg = 8 mg/kg per full
    # 24-h period (§12 row 39), not above the labelled maximum (> 8, §9.1).
    client = TestClient(app)
    sign_in(client, "alice")
    key = patient_keys(client.get("/census?filter=meets").text)[0]
    course = client.get(f"/api/patients/{key}/anakinra").json()
    first = course["daily"][0]
    assert first["dose_mg"] == pytest.approx(160.0) and first["dose_mg_per_kg"] == pytest.approx(8.0)
    assert first["dose_flag"] == "" and first["weight_kg"] == 20.0
    # NOW = 2024-03-05 12:00 is 2 days 4 h after the first dose; doses at +48 h and at +54 h?
    # no: the 9th dose is at +48 h (08:00), so period 2 holds one dose of 40 mg so far.
    assert [d["dose_mg"] for d in course["daily"]] == pytest.approx([160.0, 160.0, 40.0])
    assert course["summary"]["days_since_first_dose"] == pytest.approx(52 / 24)
    assert course["summary"]["running"] is True


def test_researcher_never_sees_an_identifier(app):
    client = TestClient(app)
    sign_in(client, "rita")
    bodies = [client.get("/census").text, client.get("/api/census").text,
              client.get("/census.csv").text]
    keys = patient_keys(bodies[0])
    assert len(keys) == 2
    for key in keys:
        bodies.append(client.get(f"/patient/{key}").text)
        for endpoint in ("timeline", "criteria", "anakinra"):
            bodies.append(client.get(f"/api/patients/{key}/{endpoint}").text)
    for body in bodies:
        for ident in PERSONS + STAYS:
            assert ident not in body
        assert "2016-05-01" not in body  # birth date
        assert "2024-03-02 08:00" not in body  # real admission time: dates are shifted
    assert "P-" in bodies[0] and "S-" in bodies[0]
    rows = client.get("/api/census").json()["rows"]
    assert all(r["admit_time"] != "2024-03-02 08:00" for r in rows)


def test_access_log_holds_no_identifier(app, caplog):
    client = TestClient(app)
    sign_in(client, "alice")
    with caplog.at_level(logging.INFO, logger="hyperinflam.web.access"):
        key = patient_keys(client.get("/census").text)[0]
        client.get(f"/patient/{key}")
        client.get(f"/api/patients/{key}/timeline")
        client.get("/api/patients/no-such-key/criteria")
    lines = [r.getMessage() for r in caplog.records if r.name == "hyperinflam.web.access"]
    assert any("GET /patient/{key} 200" in line for line in lines)
    assert any("GET /api/patients/{key}/criteria 404" in line for line in lines)
    text = "\n".join(lines)
    for ident in PERSONS + STAYS + (key, "no-such-key"):
        assert ident not in text


def test_bearer_token_for_scripts(app):
    token = app.state.store.create_token("alice", "test")
    client = TestClient(app)
    ok = client.get("/api/census", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json()["n_stays"] == 2
    assert client.get("/api/census", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_long_marker_names_fit_the_label_gutter():
    # "Absolute neutrophil count" is wider than the gutter left of the plot: the vocabulary's
    # short label is drawn and the full one kept as the tooltip; a label that fits is unchanged.
    from hyperinflam.web import charts

    assert not charts.fits("Absolute neutrophil count")
    assert charts.row_label("Absolute neutrophil count", "ANC") == "ANC"
    assert charts.row_label("Ferritin", "Ferritin") == "Ferritin"
    cut = charts.row_label("A very long label without a short form at all")
    assert cut.endswith("…") and charts.fits(cut)


def test_patient_timeline_labels_and_cached_views(app):
    client = TestClient(app)
    sign_in(client, "alice")
    key = patient_keys(client.get("/census?filter=meets").text)[0]
    first = client.get(f"/patient/{key}").text
    assert "<title>Absolute neutrophil count</title>ANC</text>" in first
    # A second view is served from the snapshot's cached views, identical, and audited again.
    before = len(app.state.store.audit_rows(action="view_patient", limit=1000))
    assert client.get(f"/patient/{key}").text == first
    assert len(app.state.store.audit_rows(action="view_patient", limit=1000)) == before + 1


def test_the_census_says_which_domains_the_site_does_not_record(tmp_path_factory):
    """A domain record saying organ support and diagnoses are not recorded (issue 12 item 1):
    the census names them, and ENC-90001's ventilation reads unknown, not "yes" or "no"."""
    def record(raw):
        raw.execute("INSERT INTO source_domains VALUES "
                    "(1, 'csv', 'site', 'support:invasive_ventilation', 'support', false, "
                    "'declared absent', 1), "
                    "(1, 'csv', 'site', 'vasoactive', 'support', false, 'no rows', 0), "
                    "(1, 'csv', 'site', 'conditions', 'condition', false, 'no rows', 0), "
                    "(1, 'csv', 'site', 'drugs', 'drug', true, 'rows', 9)")

    client = TestClient(make_app(tmp_path_factory, extra=record))
    sign_in(client, "alice")
    html = client.get("/census").text
    note = re.search(r'<p class="warn" id="not-recorded">([^<]*)</p>', html).group(1)
    # the words of vocabulary/domain.py's catalogue, in its order
    assert note.endswith(": invasive ventilation, vasoactive agents (as organ support or "
                         "drugs), diagnoses and clinical findings.")
    assert client.get("/api/census").json()["not_recorded"] == [
        "invasive ventilation", "vasoactive agents (as organ support or drugs)",
        "diagnoses and clinical findings"]
    shared = TestClient(shared_app())  # no domain record: no note
    sign_in(shared, "alice")
    assert 'id="not-recorded"' not in shared.get("/census").text

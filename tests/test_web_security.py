"""The bedside application's privacy and session findings (issue 14), one API test each:

* the researcher view accepts and returns only shifted times and never reveals the shift
  (``?at=`` with a real time, a relative time, hours in the PICU against the clock);
* sign-out, a password or role change and ``users remove`` end every session and token at once;
* an out-of-range time parameter is a 422 with a message, carrying the security headers, logged;
* ``X-Forwarded-For`` is ignored unless ``serve --forwarded-allow-ips`` names the proxy;
* ``census.csv`` neutralises spreadsheet formulas;
* a password typed into the user-name field is never stored in clear;
* ``at=now`` under ``--as-of`` is the pinned time and nothing after it is shown.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from test_web_app import (NOW, PASSWORD, csrf_of, make_app, patient_keys, shared_app, sign_in)

from hyperinflam.engine import connect

SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options",
                    "referrer-policy")
# Real admission of ENC-90001 (test_web_app.build_web_db).
REAL_ADMIT = dt.datetime(2024, 3, 2, 8, 0)


def _signed_in(app, user):
    client = TestClient(app)
    assert sign_in(client, user).status_code == 303
    return client


def _first_key(client) -> str:
    return patient_keys(client.get("/census?filter=meets").text)[0]


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# -- the researcher's times ----------------------------------------------------------------------


def test_researcher_real_time_in_at_does_not_reveal_the_shift():
    rita = _signed_in(shared_app(), "rita")
    key = _first_key(rita)
    # A real time sent in ?at= is read as a time in the stay's own frame (admission day =
    # 2000-01-01): 2024-03-04 is then decades after now, refused, and the message names now in
    # that frame only; no real date comes back.
    real = "2024-03-04T12:00:00"
    got = rita.get(f"/api/patients/{key}/criteria", params={"at": real})
    assert got.status_code == 422
    assert "2000-01-04 12:00" in got.json()["detail"]  # NOW (2024-03-05 12:00) in the frame
    for real_date in ("2024-03-05", "2024-03-02"):  # real now, real admission
        assert real_date not in got.text
    # A time in the frame comes back unchanged, never as the image of a real time.
    framed = rita.get(f"/api/patients/{key}/criteria", params={"at": "2000-01-03T12:00:00"})
    assert framed.status_code == 200
    assert _ts(framed.json()["evaluated_at"]) == dt.datetime(2000, 1, 3, 12, 0)
    # The census refuses a chosen time for researchers (one frame per stay: none for a list).
    census = rita.get("/api/census", params={"at": real})
    assert census.status_code == 422 and "researcher" in census.json()["detail"]
    assert rita.get("/census", params={"at": real}).status_code == 422


def test_researcher_relative_time_and_hours_in_picu_reveal_no_real_date():
    rita = _signed_in(shared_app(), "rita")
    key = _first_key(rita)
    row = next(r for r in rita.get("/api/census").json()["rows"] if r["key"] == key)
    # Hours in the PICU against the (pinned) clock give the real admission time ...
    real_admit = NOW - dt.timedelta(hours=row["hours_since_admit"])
    assert real_admit == REAL_ADMIT
    # ... but no time the researcher sees is on the real calendar: the census shows no admission
    # time, and the patient's frame starts on a fixed day, so real - shown names no real date.
    assert row["admit_time"] is None
    timeline = rita.get(f"/api/patients/{key}/timeline").json()
    shown = [_ts(m["time"]) for m in timeline["measurements"]]
    assert shown and all(t.year == 2000 for t in shown)
    for at in ("now", "today"):
        resp = rita.get(f"/api/patients/{key}/criteria", params={"at": at})
        if resp.status_code == 200:
            assert _ts(resp.json()["evaluated_at"]).year == 2000
        else:
            assert resp.status_code == 422
    # Another stay (another person admitted on another day) has the same frame origin: knowing
    # one stay's real admission says nothing of another's dates.
    other = [r for r in rita.get("/api/census").json()["rows"] if r["key"] != key][0]
    other_times = [_ts(m["time"]) for m in
                   rita.get(f"/api/patients/{other['key']}/timeline").json()["measurements"]]
    assert all(t.year == 2000 for t in other_times)


def test_researcher_at_round_trips_in_the_shifted_frame():
    app = shared_app()
    rita, alice = _signed_in(app, "rita"), _signed_in(app, "alice")
    key = _first_key(rita)
    live = rita.get(f"/api/patients/{key}/criteria").json()
    # The shown live time sent back as ?at= is the same evaluation (same values).
    again = rita.get(f"/api/patients/{key}/criteria", params={"at": live["evaluated_at"]})
    assert again.status_code == 200
    assert again.json()["evaluated_at"] == live["evaluated_at"]
    assert again.json()["current"] == live["current"]
    # And it is the clinician's evaluation at the real time.
    assert alice.get(f"/api/patients/{key}/criteria").json()["current"] == live["current"]


# -- sessions ------------------------------------------------------------------------------------


def test_sign_out_ends_a_copied_session_cookie(tmp_path_factory):
    app = make_app(tmp_path_factory)
    client = _signed_in(app, "alice")
    copied = dict(client.cookies)
    out = client.post("/logout", data={"csrf_token": csrf_of(client.get("/census").text)},
                      follow_redirects=False)
    assert out.status_code == 303
    thief = TestClient(app, cookies=copied)
    assert thief.get("/api/me").status_code == 401
    assert thief.get("/census", follow_redirects=False).status_code == 303


def test_password_or_role_change_and_removal_end_sessions_and_tokens(tmp_path_factory):
    app = make_app(tmp_path_factory)
    store = app.state.store
    client = _signed_in(app, "alice")
    token = store.create_token("alice", "script")
    bearer = {"Authorization": f"Bearer {token}"}
    assert TestClient(app).get("/api/me", headers=bearer).status_code == 200
    store.add_user("alice", "clinician", "a brand new password", replace=True)  # password change
    assert client.get("/api/me").status_code == 401
    assert TestClient(app).get("/api/me", headers=bearer).status_code == 401

    rita = _signed_in(app, "rita")
    token = store.create_token("rita", "script")
    store.add_user("rita", "clinician", PASSWORD, replace=True)  # role change
    assert rita.get("/api/me").status_code == 401
    me = TestClient(app).get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401  # never a token carrying the old role

    again = _signed_in(app, "rita")
    assert again.get("/api/me").json()["role"] == "clinician"
    store.remove_user("rita")
    assert again.get("/api/me").status_code == 401


# -- out-of-range times ----------------------------------------------------------------------------


@pytest.mark.parametrize("at", ["-1", "-2024-01-01", "0001-01-01", "99999-01-01", "yesterday"])
def test_out_of_range_at_is_a_422_with_headers_and_an_access_log_line(at, caplog):
    client = _signed_in(shared_app(), "alice")
    key = _first_key(client)
    with caplog.at_level(logging.INFO, logger="hyperinflam.web.access"):
        for path in ("/census", "/census.csv", f"/patient/{key}", "/api/census",
                     f"/api/patients/{key}/criteria"):
            resp = client.get(path, params={"at": at}, follow_redirects=False)
            assert resp.status_code == 422, (path, resp.status_code)
            assert "at" in resp.text and ("ISO 8601" in resp.text or "between" in resp.text)
            for header in SECURITY_HEADERS:
                assert header in resp.headers, (path, header)
    lines = [r.getMessage() for r in caplog.records if r.name == "hyperinflam.web.access"]
    assert any("GET /census 422" in line for line in lines)
    assert any("GET /patient/{key} 422" in line for line in lines)


def test_a_server_error_carries_the_security_headers_and_is_logged(tmp_path_factory, caplog):
    app = make_app(tmp_path_factory)
    client = TestClient(app, raise_server_exceptions=False)
    sign_in(client, "alice")

    def broken(*args, **kwargs):
        raise RuntimeError("boom")
    app.state.database.snapshot = broken
    with caplog.at_level(logging.INFO, logger="hyperinflam.web.access"):
        resp = client.get("/census")
    assert resp.status_code == 500 and "boom" not in resp.text
    for header in SECURITY_HEADERS:
        assert header in resp.headers
    assert any("GET /census 500" in r.getMessage() for r in caplog.records
               if r.name == "hyperinflam.web.access")


# -- pinned now -----------------------------------------------------------------------------------


def test_at_now_under_as_of_is_the_pinned_time_and_nothing_later_is_shown(tmp_path_factory):
    app = make_app(tmp_path_factory, extra=_discharged_after_now)
    alice = _signed_in(app, "alice")
    census = alice.get("/api/census", params={"at": "now"})
    assert census.status_code == 200
    assert census.json()["evaluated_at"] == "2024-03-05 12:00"  # NOW, not the real clock
    assert "MRN-55509" in alice.get("/census?at=now").text
    row = next(r for r in census.json()["rows"] if r["patient"] == "MRN-55509")
    page = alice.get(f"/patient/{row['key']}").text
    timeline = alice.get(f"/api/patients/{row['key']}/timeline").json()
    assert "2024-03-07" not in page  # the discharge and the end of support are after NOW
    assert all(s["end_time"] is None for s in timeline["organ_support"])
    assert all(d["end_time"] is None or d["end_time"] <= "2024-03-05 12:00"
               for d in timeline["drugs"])


def _discharged_after_now(raw) -> None:
    raw.execute("INSERT INTO person VALUES ('MRN-55509', DATE '2015-01-01', 'female')")
    raw.execute("INSERT INTO stay VALUES ('ENC-90009', 'MRN-55509', TIMESTAMP '2024-03-04 08:00', "
                "TIMESTAMP '2024-03-07 08:00', 'pneumonia', 25.0)")
    raw.execute("INSERT INTO organ_support VALUES ('MRN-55509', NULL, 'invasive_ventilation', "
                "TIMESTAMP '2024-03-04 09:00', TIMESTAMP '2024-03-07 07:00', NULL, NULL)")
    raw.execute("INSERT INTO drug_administration VALUES ('MRN-55509', NULL, 'dexamethasone', "
                "'corticosteroid', 5, 'mg', 'iv', TIMESTAMP '2024-03-05 10:00', "
                "TIMESTAMP '2024-03-07 10:00', 25.0)")


# -- exports and sign-in records -------------------------------------------------------------------


FORMULA_ID = '=HYPERLINK("http://evil.example","open")'


def _formula_ids(raw) -> None:
    raw.execute("INSERT INTO person VALUES (?, DATE '2015-01-01', 'female')", [FORMULA_ID])
    raw.execute("INSERT INTO stay VALUES ('+cmd|calc', ?, TIMESTAMP '2024-03-04 08:00', NULL, "
                "'@SUM(A1)', 25.0)", [FORMULA_ID])


def test_census_csv_neutralises_spreadsheet_formulas(tmp_path_factory):
    app = make_app(tmp_path_factory, extra=_formula_ids)
    alice = _signed_in(app, "alice")
    export = alice.get("/census.csv")
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.text)))
    row = next(r for r in rows if "HYPERLINK" in r["Patient"])
    assert row["Patient"] == "'" + FORMULA_ID
    assert row["Stay"] == "'+cmd|calc"
    for r in rows:
        for value in r.values():
            assert not value or value[0] not in "=+@\t\r" or value.startswith("'")
            # numbers stay numbers (a negative number is not a formula to neutralise)
            assert not (value[:1] == "-" and not _is_number(value))


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def test_unknown_user_names_of_failed_sign_ins_are_stored_as_a_short_hash(tmp_path_factory):
    app = make_app(tmp_path_factory)
    client = TestClient(app)
    typed = "correct-horse-typed-in-the-name-field"
    assert sign_in(client, typed, "whatever password").status_code == 401
    assert sign_in(client, "alice", "wrong password!!").status_code == 401
    store = app.state.store
    with store._lock:
        dump = "\n".join(store._db.iterdump())
    assert typed not in dump
    audit = store.audit_rows(action="sign_in_failed")
    assert {r["user"] for r in audit} >= {"alice"}
    hashed = [r["user"] for r in audit if r["user"] != "alice"]
    assert hashed and all(len(u) <= 24 and u.startswith("unknown:") for u in hashed)


# -- forwarded headers (a real server on loopback) -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path, *extra):
    from test_web_app import build_web_db

    db, state = tmp_path / "site.duckdb", tmp_path / "state.sqlite"
    build_web_db(db)
    from hyperinflam.web.state import StateStore
    StateStore(state).add_user("alice", "clinician", PASSWORD)
    port = _free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("hyperinflam")), "serve", "--db", str(db), "--state", str(state),
         "--port", str(port), "--as-of", NOW.isoformat(), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/login", timeout=2).status_code == 200:
                return proc, base, state
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("the server did not start")


def _failed_sign_in(base: str, forwarded: str) -> None:
    with httpx.Client(base_url=base, timeout=120) as client:  # a loaded 2-core machine
        token = csrf_of(client.get("/login").text)
        client.post("/login", data={"username": "alice", "password": "wrong password!!",
                                    "csrf_token": token},
                    headers={"X-Forwarded-For": forwarded})


@pytest.mark.parametrize("allow", [None, "127.0.0.1"])
def test_forwarded_for_is_ignored_unless_the_proxy_is_named(tmp_path, allow):
    from hyperinflam.web.state import StateStore

    proc, base, state = _serve(tmp_path, *(("--forwarded-allow-ips", allow) if allow else ()))
    try:
        _failed_sign_in(base, "203.0.113.7")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    row = StateStore(state).audit_rows(action="sign_in_failed")[0]
    assert row["address"] == ("203.0.113.7" if allow else "127.0.0.1")


# -- the command line ------------------------------------------------------------------------------


def test_serve_without_the_web_extra_is_one_line_naming_the_pip_command(monkeypatch, tmp_path):
    import importlib.util

    from typer.testing import CliRunner

    from hyperinflam.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fastapi" else real(name, *a))
    for args in (["serve", "--db", str(tmp_path / "x.duckdb")], ["users", "list", "--db",
                                                                 str(tmp_path / "x.duckdb")]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code != 0
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "pip install 'hyperinflam[web]'" in lines[0]
        assert "Traceback" not in result.output


def test_password_stdin_is_documented():
    root = Path(__file__).resolve().parents[1]
    for doc in ("README.md", "docs/web.md"):
        assert "--password-stdin" in (root / doc).read_text(encoding="utf-8"), doc

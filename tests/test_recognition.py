"""Time from recognition to treatment (issue 14, item 3), against values worked by hand from
test_web_app.build_web_db and clinical reference §2.2 (HScore points):

ENC-90001: every HScore input but temperature is drawn 2024-03-04 10:00 (133 points: 34 + 50 +
30 + 19); temperature 39.6 °C at 11:00 adds 49 -> 182 >= 169. So HScore >= 169 is first met
exactly at 2024-03-04 11:00 and, on the 24-h grid from admission (2024-03-02 08:00), first at
2024-03-05 08:00. Anakinra started 2024-03-03 08:00: the delay is 08:00 - 11:00 the day after =
-27 h (treated before the score was reached), -48 h on the grid.

ENC-90007 (added here): the same values drawn 2024-03-04 12:00, temperature 14:00, no anakinra:
at NOW (2024-03-05 12:00) "HScore >= 169 for 22 h, no anakinra".
"""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from test_web_app import build_web_db, make_app, patient_keys, sign_in

NOW = dt.datetime(2024, 3, 5, 12, 0)


def _untreated(raw) -> None:
    raw.execute("INSERT INTO person VALUES ('MRN-55507', DATE '2017-02-02', 'male')")
    raw.execute("INSERT INTO stay VALUES ('ENC-90007', 'MRN-55507', TIMESTAMP '2024-03-04 00:00', "
                "NULL, 'fever', 18.0)")
    for var, value, unit in (("ferritin", 12000.0, "ng/mL"), ("platelets", 80.0, "10*3/uL"),
                             ("fibrinogen", 120.0, "mg/dL"), ("hemoglobin", 8.0, "g/dL"),
                             ("wbc", 3.0, "10*3/uL"), ("ast", 150.0, "U/L")):
        raw.execute("INSERT INTO measurement VALUES ('MRN-55507', NULL, "
                    "TIMESTAMP '2024-03-04 12:00', ?, ?, ?, ?, ?, NULL)",
                    [var, value, unit, str(value), unit])
    raw.execute("INSERT INTO measurement VALUES ('MRN-55507', NULL, TIMESTAMP '2024-03-04 14:00', "
                "'temperature', 39.6, 'Cel', '39.6', 'Cel', NULL)")


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    from hyperinflam.engine import connect

    path = tmp_path_factory.mktemp("rt") / "rt.duckdb"
    build_web_db(path, _untreated)
    con = connect(path, read_only=True)
    yield con
    con.disconnect()


@pytest.mark.parametrize("exact, first, delay", [
    (True, dt.datetime(2024, 3, 4, 11, 0), -27.0),
    (False, dt.datetime(2024, 3, 5, 8, 0), -48.0)])
def test_first_met_and_delay_by_hand(con, exact, first, delay):
    from hyperinflam.screening.recognition import recognition_to_treatment

    rt = recognition_to_treatment(con, until=NOW, exact=exact).to_pandas().set_index("stay_id")
    row = rt.loc["ENC-90001"]
    assert row["hscore_first_met"] == first and row["phenotype_first_met"] == first
    assert row["first_dose_time"] == dt.datetime(2024, 3, 3, 8, 0)
    assert row["recognition_to_treatment_hours"] == pytest.approx(delay)
    untreated = rt.loc["ENC-90007"]
    # on the grid too: an open stay's grid ends at its last data time (14:00, before +24 h)
    assert untreated["hscore_first_met"] == dt.datetime(2024, 3, 4, 14, 0)
    assert untreated["first_dose_time"] != untreated["first_dose_time"]  # NaT: never treated
    assert rt.loc["ENC-90002"]["phenotype_first_met"] != rt.loc["ENC-90002"]["phenotype_first_met"]


def test_census_and_patient_page_show_recognition_to_treatment(tmp_path_factory):
    app = make_app(tmp_path_factory, extra=_untreated)
    client = TestClient(app)
    sign_in(client, "alice")
    rows = {r["stay"]: r for r in client.get("/api/census").json()["rows"]}
    assert rows["ENC-90007"]["recognition"] == "HScore >= 169 for 22 h, no anakinra"
    assert rows["ENC-90001"]["recognition"] == "anakinra 27 h before HScore >= 169"
    assert rows["ENC-90001"]["recognition_to_treatment_hours"] == pytest.approx(-27.0)
    assert rows["ENC-90002"]["recognition"] == ""
    census = client.get("/census").text
    assert "HScore &gt;= 169 for 22 h, no anakinra" in census
    page = client.get(f"/patient/{rows['ENC-90007']['key']}").text
    assert "HScore &gt;= 169 first met" in page and 'class="event met"' in page
    treated = client.get(f"/patient/{rows['ENC-90001']['key']}").text
    assert "first anakinra dose" in treated

"""Human labels and units on the bedside pages and exports (issue 14 item 5): census.csv headers
in words with units and its values in words; missing inputs named as people name them; the
criteria cards by their labels; the recognition-to-treatment labels on the patient time axis never
overlap each other, a marker row or the tick labels.

Expected values are worked out by hand from the rows of tests/test_web_app.build_web_db.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import xml.etree.ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from test_web_app import CRITERIA, NOW, PASSWORD, build_web_db, patient_keys, sign_in

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from hyperinflam.web import WebSettings, create_app

    folder = tmp_path_factory.mktemp("labels")
    build_web_db(folder / "site.duckdb")
    app = create_app(WebSettings(db=folder / "site.duckdb", state=folder / "state.sqlite",
                                 pinned_now=NOW, warm=False,
                                 criteria=CRITERIA + ["mas2016", "hyperferritinemic_sepsis"]))
    app.state.store.add_user("alice", "clinician", PASSWORD)
    c = TestClient(app)
    assert sign_in(c, "alice").status_code == 303
    return c


def test_census_csv_headers_and_values_are_in_words(client):
    text = client.get("/census.csv").text
    rows = list(csv.DictReader(io.StringIO(text)))
    headers = list(rows[0])
    for header in headers:
        assert "_" not in header, header
    for expected in ("Patient", "Stay", "Admitted (UTC)", "Hours in PICU", "Age (years)",
                     "HScore (points)", "HScore >= 169", "HLH-2004 criteria met (of 8)",
                     "Ferritin, last value", "Ferritin unit", "Anakinra running",
                     "Meets a hyperinflammatory phenotype criterion"):
        assert expected in headers, expected
    row = next(r for r in rows if r["Stay"] == "ENC-90001")
    # admitted 2024-03-02 08:00, census at 2024-03-05 12:00: 3 days 4 h
    assert row["Hours in PICU"] == "76.0" and row["Admitted (UTC)"] == "2024-03-02 08:00"
    # born 2016-05-01: 2865 days = 94.13 months of 30.4375 days (§11.1) = 7.8 years
    assert row["Age (years)"] == "7.8"
    # HScore 182 by hand (build_web_db): met; ferritin 12,000 ng/mL after 3,000
    assert row["HScore >= 169"] == "met" and row["HScore (points)"] == "182"
    assert row["Ferritin, last value"] == "12000.0" and row["Ferritin unit"] == "ng/mL"
    assert row["Ferritin trend"] == "up"
    # 40 mg q6h, the last dose at 08:00 on the census day: running
    assert row["Anakinra running"] == "yes"
    assert row["Meets a hyperinflammatory phenotype criterion"] == "yes"
    other = next(r for r in rows if r["Stay"] == "ENC-90002")
    assert other["Anakinra running"] == "no" and other["HScore >= 169"] != "not_met"
    assert not re.search(r"\b(not_met|True|False|10\*3/uL)\b", text)


def test_missing_inputs_and_cards_are_named_by_their_labels(client):
    census = client.get("/census").text
    for key in patient_keys(census):
        page = client.get(f"/patient/{key}").text
        missing = re.search(r'<table class="missing" id="missing">(.*?)</table>', page, re.S)
        assert missing, "no missing-input table"
        names = re.findall(r"<tr><td>[^<]*</td><td>([^<]*)</td>", missing.group(1))
        assert names
        for name in names:
            assert "_" not in name, name
        # Phoenix neurologic: no pupil examination recorded in build_web_db
        assert "pupil reaction (bilaterally fixed pupils)" in names
        cards = re.findall(r'<div class="k">([^<]*)</div>', page)
        assert "MAS-2016" in cards and "Hyperferritinaemic sepsis" in cards
        assert not {"mas2016", "hyperferritinemic_sepsis"} & set(cards)


def _event_boxes(svg: str):
    root = ET.fromstring(svg)
    boxes = []
    for g in root.iter(f"{SVG}g"):
        if "event" not in g.get("class", ""):
            continue
        t = g.find(f"{SVG}text")
        x, y = float(t.get("x")), float(t.get("y"))
        # a 10-px label (the stylesheet's size): at most 6.2 px per character, 10 px high
        width = 6.2 * len(t.text)
        left = x - width if t.get("text-anchor") == "end" else x
        boxes.append((left, y - 10, left + width, y + 2, t.text))
    return root, boxes


def test_event_labels_on_the_time_axis_never_overlap():
    from hyperinflam.web import charts

    lo, hi = dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 6)
    axis = charts.Axis(lo, hi)
    marker = {"label": "Ferritin", "unit": "ng/mL",
              "points": [(dt.datetime(2024, 3, 2), 3000.0), (dt.datetime(2024, 3, 5), 9000.0)]}
    # four moments within 40 minutes, two of them at the very end of the axis
    events = [(dt.datetime(2024, 3, 5, 23, 30), "first anakinra dose"),
              (dt.datetime(2024, 3, 5, 23, 50), "Hyperferritinaemic sepsis first met"),
              (dt.datetime(2024, 3, 5, 23, 10), "HScore >= 169 first met"),
              (dt.datetime(2024, 3, 5, 23, 20), "HLH-2004 first met")]
    svg = charts.timeline_svg(axis, [marker], [], [], events)
    root, boxes = _event_boxes(svg)
    assert len(boxes) == 4
    for i, a in enumerate(boxes):
        assert a[0] >= 0 and a[2] <= charts.WIDTH, a
        for b in boxes[i + 1:]:
            overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
            assert not overlap, (a, b)
    # below the top tick labels (y = 14) and above the first marker row
    first_row = min(float(r.get("y")) for r in root.iter(f"{SVG}rect")
                    if r.get("class") == "band")
    for box in boxes:
        assert box[1] > 14 and box[3] <= first_row, (box, first_row)
    # in time order, top to bottom
    assert [b[4] for b in sorted(boxes, key=lambda b: b[1])] == [
        "HScore >= 169 first met", "HLH-2004 first met", "first anakinra dose",
        "Hyperferritinaemic sepsis first met"]

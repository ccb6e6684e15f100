"""Outputs of a study (report/): terminal tables, CSV/JSON files, the offline HTML report.

The StudyResults is built by hand: marker values are the founding paper's abstract (clinical
reference §10.1: CRP 206 ± 50 → 68 ± 36 mg/L, −67.1%, p = 0.03; ferritin day 7 3210 ± 1178 ng/mL,
−63.8%, p = 0.30; baseline ferritin 8867 ng/mL from §10.3). The renderers must show exactly these
looked-up values, formatted.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from rich.console import Console

from hyperinflam.report import read_results, render_terminal, write_outputs, write_results
from hyperinflam.report.html import render_html, write_report
from hyperinflam.report.views import fmt_num, fmt_p, fmt_pct
from hyperinflam.study.results import OBSERVATIONS_COLUMNS, RESULTS_COLUMNS, StudyResults

T = "paired t-test, two-sided (scipy.stats.ttest_rel)"
W = "Wilcoxon signed-rank, exact, zero_method=wilcox (scipy.stats.wilcoxon)"


def _row(section, variable, statistic, value, *, label=None, level=None, timepoint=None,
         unit=None, method=None, group="cohort"):
    return {"study": "rajasekaran2014", "section": section, "group": group, "variable": variable,
            "label": label or variable, "level": level, "timepoint": timepoint,
            "statistic": statistic, "value": value, "unit": unit, "method": method}


def make_results() -> StudyResults:
    R = []
    for var, label, n in (("stays", "PICU stays", 412), ("stays_with_index_drug", "Stays with anakinra", 11),
                          ("cohort", "Study cohort", 8), ("analysable_crp", "analysable_crp", 8),
                          ("analysable_ferritin", "analysable_ferritin", 7)):
        R.append(_row("flow", var, "count", n, label=label))
    R += [
        _row("baseline", "age_years", "median", 14.0, label="Age", unit="years"),
        _row("baseline", "age_years", "q1", 9.5, label="Age", unit="years"),
        _row("baseline", "age_years", "q3", 16.25, label="Age", unit="years"),
        _row("baseline", "sex", "count", 3, label="Sex", level="female"),
        _row("baseline", "sex", "percent", 37.5, label="Sex", level="female", unit="%"),
        _row("baseline", "sex", "count", 5, label="Sex", level="male"),
        _row("baseline", "sex", "percent", 62.5, label="Sex", level="male", unit="%"),
        _row("baseline", "invasive_ventilation", "count", 5, label="Invasive ventilation"),
        _row("baseline", "invasive_ventilation", "percent", 62.5, label="Invasive ventilation", unit="%"),
    ]
    crp = dict(label="C-reactive protein", unit="mg/L")
    R += [
        _row("marker", "crp", "mean", 206.0, timepoint="baseline", **crp),
        _row("marker", "crp", "sem", 50.0, timepoint="baseline", **crp),
        _row("marker", "crp", "mean", 68.0, timepoint="day7", **crp),
        _row("marker", "crp", "sem", 36.0, timepoint="day7", **crp),
        _row("marker", "crp", "n", 8, timepoint="change", label="C-reactive protein"),
        _row("marker", "crp", "pct_change_of_means", -67.1, timepoint="change", label="C-reactive protein", unit="%"),
        _row("marker", "crp", "median_pct_change", -70.25, timepoint="change", label="C-reactive protein", unit="%"),
        _row("marker", "crp", "p_value", 0.03, timepoint="change", label="C-reactive protein", method=T),
        _row("marker", "crp", "p_value", 0.0078125, timepoint="change", label="C-reactive protein", method=W),
    ]
    fer = dict(label="Ferritin", unit="ng/mL")
    R += [
        _row("marker", "ferritin", "mean", 8867.0, timepoint="baseline", **fer),
        _row("marker", "ferritin", "sem", 4321.0, timepoint="baseline", **fer),
        _row("marker", "ferritin", "mean", 3210.0, timepoint="day7", **fer),
        _row("marker", "ferritin", "sem", 1178.0, timepoint="day7", **fer),
        _row("marker", "ferritin", "n", 7, timepoint="change", label="Ferritin"),
        _row("marker", "ferritin", "n_excluded", 1, timepoint="change", label="Ferritin"),
        _row("marker", "ferritin", "pct_change_of_means", -63.8, timepoint="change", label="Ferritin", unit="%"),
        _row("marker", "ferritin", "median_pct_change", float("nan"), timepoint="change", label="Ferritin", unit="%"),
        _row("marker", "ferritin", "p_value", 0.30, timepoint="change", label="Ferritin", method=T),
        _row("marker", "ferritin", "p_value", 0.0005, timepoint="change", label="Ferritin", method=W),
        _row("cotherapy", "corticosteroids", "count", 6, label="Systemic corticosteroids", level="-24 h to day 7"),
        _row("cotherapy", "corticosteroids", "percent", 75.0, label="Systemic corticosteroids", level="-24 h to day 7", unit="%"),
        _row("safety", "death", "count", 1, label="Deaths in stay"),
        _row("safety", "death", "days_from_index", 41.5, label="Deaths in stay", unit="days"),
    ]
    results = pd.DataFrame(R, columns=RESULTS_COLUMNS)
    O = []
    for patient, pts in {
        "P01": [(-30, 250.0, ""), (-2, 240.0, "baseline"), (50, 150.0, ""), (170, 60.0, "day7"), (230, 40.0, "")],
        "P02": [(1, 180.0, "baseline"), (160, 40.0, "day7")],
        "P03": [(-10, 120.0, "baseline"), (96, 100.0, ""), (175, 90.0, "day7")],
    }.items():
        for h, v, role in pts:
            O.append({"study": "rajasekaran2014", "patient": patient, "variable": "crp",
                      "hours_from_index": float(h), "value": v, "unit": "mg/L", "role": role or None})
        O.append({"study": "rajasekaran2014", "patient": patient, "variable": "ferritin",
                  "hours_from_index": 0.0, "value": 9000.0, "unit": "ng/mL", "role": "baseline"})
        O.append({"study": "rajasekaran2014", "patient": patient, "variable": "ferritin",
                  "hours_from_index": 168.0, "value": 3000.0, "unit": "ng/mL", "role": "day7"})
    observations = pd.DataFrame(O, columns=OBSERVATIONS_COLUMNS)
    definition = {
        "study": {"id": "rajasekaran2014", "title": "Anakinra in critically ill children with sHLH/MAS",
                  "reference": "Rajasekaran S et al. Pediatr Crit Care Med 2014;15(5):401-8"},
        "windows": {"baseline_from_hours": -24, "baseline_to_hours": 12, "day7_target_hours": 168,
                    "day7_half_width_hours": 24, "trajectory_from_days": -2, "trajectory_to_days": 10},
        "markers": {"variables": ["crp", "ferritin"]},
    }
    provenance = {"versions": {"hyperinflam": "0.1.0", "scipy": "1.17.0"},
                  "run_at": pd.Timestamp("2026-11-02 10:00:00"), "ratio": float("nan")}
    return StudyResults(results, observations, definition, provenance)


# --- number formatting (hand-checked) ------------------------------------------------------

@pytest.mark.parametrize("p, expected", [(0.03, "0.030"), (0.30, "0.30"), (0.0518, "0.0518"),
                                          (0.0781, "0.078"), (0.0009, "< 0.001"), (0.001, "0.0010"),
                                          (1.0, "1.0"), (0.125, "0.12")])
def test_p_values_two_or_three_significant_digits(p, expected):
    assert fmt_p(p) == expected


def test_numbers_and_percentages():
    assert fmt_num(8867.0, 0) == "8,867"
    assert fmt_num(-5.25, 2) == "\u22125.25"
    assert fmt_pct(-67.1, signed=True) == "\u221267.1%"
    assert fmt_p(float("nan")) == "–"


# --- terminal ------------------------------------------------------------------------------

def test_terminal_shows_the_looked_up_numbers():
    console = Console(record=True, width=220, color_system=None)
    render_terminal(make_results(), console)
    out = console.export_text()
    assert "206.0 ± 50.0" in out and "68.0 ± 36.0" in out
    assert "8,867 ± 4,321" in out and "3,210 ± 1,178" in out
    assert "\u221267.1%" in out and "\u221270.2%" in out  # % of means, median per patient
    assert "0.030" in out and "0.0078" in out and "< 0.001" in out
    assert "CRP (mg/L)" in out  # short label from vocabulary/variables.csv
    assert "14.0 (9.5–16.2) years" in out  # median (Q1–Q3) from the table
    assert "5 (62.5%)" in out
    assert "412" in out and "Study cohort" in out
    assert "days from index: 41.5" in out


# --- files ---------------------------------------------------------------------------------

def test_csv_and_json_round_trip(tmp_path):
    sr = make_results()
    paths = write_results(sr, tmp_path)
    back = read_results(tmp_path)
    pd.testing.assert_frame_equal(back.results.astype(object).where(back.results.notna(), None),
                                  sr.results.astype(object).where(sr.results.notna(), None),
                                  check_dtype=False)
    pd.testing.assert_frame_equal(back.observations.astype(object).where(back.observations.notna(), None),
                                  sr.observations.astype(object).where(sr.observations.notna(), None),
                                  check_dtype=False)
    raw = paths["results_json"].read_text()
    assert "NaN" not in raw
    doc = json.loads(raw)
    assert set(doc) == {"study", "provenance", "results", "observations"}
    assert doc["study"] == sr.definition
    assert doc["provenance"] == {"versions": {"hyperinflam": "0.1.0", "scipy": "1.17.0"},
                                 "run_at": "2026-11-02T10:00:00", "ratio": None}
    assert len(doc["results"]) == len(sr.results)
    assert doc["results"][0] == {"study": "rajasekaran2014", "section": "flow", "group": "cohort",
                                 "variable": "stays", "label": "PICU stays", "level": None,
                                 "timepoint": None, "statistic": "count", "value": 412,
                                 "unit": None, "method": None}
    fer_median = [r for r in doc["results"] if r["variable"] == "ferritin"
                  and r["statistic"] == "median_pct_change"]
    assert fer_median[0]["value"] is None
    obs = pd.DataFrame(doc["observations"])
    assert obs["value"].tolist() == sr.observations["value"].tolist()


# --- HTML report ---------------------------------------------------------------------------

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    """report.html of make_results(), rendered once for the read-only tests."""
    path = write_report(make_results(), tmp_path_factory.mktemp("report"))
    assert path.name == "report.html"
    return path.read_text(encoding="utf-8")


def test_report_is_self_contained_and_complete(report_html):
    html = report_html
    assert not EXTERNAL.search(html), "external src/href in the report"
    assert "<script" not in html.lower()
    assert "@import" not in html and "url(http" not in html
    assert "<link" not in html.lower() and "<img" not in html.lower()
    assert "<!DOCTYPE svg" not in html and "<?xml" not in html
    for marker in ("crp", "ferritin"):  # a trajectory and a waterfall per marker
        assert f'id="fig-{marker}"' in html
        assert f'id="traj-{marker}-title"' in html and f'id="wf-{marker}-title"' in html
    assert html.count("<svg") == 2 * 2 + 1  # + the flow diagram
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "duplicate element ids across inline SVGs"
    assert "206.0 ± 50.0" in html and "3,210 ± 1,178" in html
    assert "Rajasekaran S et al." in html
    assert T in html and W in html  # tests named in the methods/notes
    assert "from -24 h to 12 h" in html.replace("\u2212", "-")
    assert "Database: not stated" in html  # missing provenance keys are said, not guessed
    assert len(html.encode()) < 1_500_000


def test_report_reads_the_results_table(report_html):
    sr = make_results()
    before = report_html
    r = sr.results
    r.loc[(r["variable"] == "crp") & (r["statistic"] == "mean") & (r["timepoint"] == "baseline"),
          "value"] = 321.5
    after = render_html(sr)
    assert "206.0 ± 50.0" in before and "206.0 ± 50.0" not in after
    assert "321.5 ± 50.0" in after


def test_waterfall_shows_per_patient_changes_from_observations(report_html):
    html = report_html
    # CRP: P01 240→60 (−75%), P02 180→40 (−77.8%), P03 120→90 (−25%): 3 patients, all fell
    block = html[html.index('id="wf-crp-desc"'):]
    assert "3 patients with both values; 3 fell" in block[:300]


def test_write_outputs_writes_every_file(tmp_path):
    paths = write_outputs(make_results(), tmp_path / "out")
    assert set(paths) == {"results_csv", "observations_csv", "results_json", "report_html"}
    assert all(p.exists() and p.stat().st_size > 0 for p in paths.values())


def test_missing_definition_keys_say_not_stated(tmp_path):
    sr = make_results()
    sr = StudyResults(sr.results, sr.observations.iloc[0:0], {}, {})
    html = render_html(sr)
    assert "not stated" in html
    assert "206.0 ± 50.0" in html
    assert html.count("<svg") == 2 * 2 + 1  # plots still drawn (empty) for every marker

"""Outputs of a study (report/): terminal tables, CSV/JSON files, the offline HTML report.

The studies run on the small database of tests/studydata.py (eight children, values chosen
there), so every expected number is computed here from those values with numpy/scipy, and the
per-patient listing is checked against the database with SQL of its own. A second study with
another index drug (dexamethasone) and three timepoints checks that every word of the outputs
comes from the study definition.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from scipy import stats

from hyperinflam.engine import connect_memory
from hyperinflam.report import read_results, render_terminal, write_outputs, write_results
from hyperinflam.report.html import render_html, write_report
from hyperinflam.report.views import (cited_sections, fmt_count, fmt_num, fmt_p, fmt_pct,
                                      own_decimals)
from hyperinflam.study.definition import parse_study
from hyperinflam.study.results import PATIENTS_COLUMNS, RESULTS_COLUMNS
from hyperinflam.study.run import run_study
from studydata import (ADMISSION_TO_DOSE_H, CRP, DOSE_DAYS, build_database,
                       three_timepoint_study)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "clinical-reference.md"
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def terminal_text(results, width=140) -> str:
    console = Console(record=True, width=width, color_system=None)
    render_terminal(results, console)
    return console.export_text()


@pytest.fixture(scope="module")
def founding():
    """The founding study (rajasekaran2014) on the eight children."""
    return run_study(build_database(), "rajasekaran2014")


@pytest.fixture(scope="module")
def founding_html(founding, tmp_path_factory):
    return write_report(founding, tmp_path_factory.mktemp("founding")).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def other():
    """Dexamethasone as the index drug, three timepoints (day 3, "one week", day 14)."""
    return run_study(build_database("dexamethasone"), parse_study(three_timepoint_study()))


@pytest.fixture(scope="module")
def other_html(other, tmp_path_factory):
    return write_report(other, tmp_path_factory.mktemp("other")).read_text(encoding="utf-8")


def visible(html: str) -> str:
    """The text of the page (tags removed, entities kept as written)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- number formatting (hand-checked) ------------------------------------------------------

@pytest.mark.parametrize("p, expected", [(0.03, "0.030"), (0.30, "0.30"), (0.0518, "0.052"),
                                          (0.0496, "0.050"), (0.0781, "0.078"),
                                          (0.0009, "< 0.001"), (0.001, "0.0010"), (1.0, "1.0"),
                                          (0.125, "0.12"), (0.0064515, "0.0065")])
def test_p_values_to_two_significant_digits(p, expected):
    assert fmt_p(p) == expected


def test_numbers_per_statistic():
    assert fmt_num(8867.0, 0) == "8,867"
    assert fmt_num(-5.25, 2) == "\u22125.25"
    assert fmt_pct(-67.1, signed=True) == "\u221267.1%"
    assert fmt_p(float("nan")) == "–"
    assert fmt_count(1000.0) == "1,000" and fmt_count(3.0) == "3"
    # scores at their own precision: whole values without decimals, a median between two
    # scores with the decimals it needs
    assert [own_decimals([v]) for v in (4.0, 2.5, 217.25)] == [0, 1, 2]


def test_counts_and_scores_in_the_tables(founding):
    out = terminal_text(founding)
    # counts are integers with their percent; ages median (Q1–Q3); PRISM points whole
    assert "5 (62.5%)" in out  # invasive ventilation: children 0, 1, 3, 4, 6
    prism = founding.results
    prism = prism[(prism.variable == "prism3_points") & (prism.stat_name == "median")]
    assert float(prism.value.iloc[0]).is_integer() or float(prism.value.iloc[0] * 2).is_integer()
    assert float(prism.value.iloc[0]) == 0.0  # PRISM III-24 0, 3, 0, 3, 0, 0, 3, 0 (potassium)
    line = next(li for li in out.splitlines() if "PRISM III-24" in li and "points" in li)
    assert not re.search(r"\d\.\d\d\b", line), line  # never "4.00 (2.00–6.00)"


# --- the founding study: numbers -----------------------------------------------------------

def test_founding_numbers_from_the_data(founding):
    b = np.array([c[0] for c in CRP])
    d7 = np.array([c[2] for c in CRP])
    s = lambda stat, tp=None: founding.stat("marker", "crp", stat, comparison="day7",  # noqa: E731
                                            timepoint=tp)
    assert s("n") == 8
    assert s("mean", "baseline") == pytest.approx(b.mean())
    assert s("sem", "baseline") == pytest.approx(stats.sem(b))
    assert s("mean", "day7") == pytest.approx(d7.mean())
    assert s("pct_change_of_means") == pytest.approx(100 * (d7.mean() - b.mean()) / b.mean())
    assert s("p_paired_t") == pytest.approx(stats.ttest_rel(b, d7).pvalue)
    assert s("p_wilcoxon") == pytest.approx(stats.wilcoxon(d7 - b, method="exact").pvalue)
    assert list(founding.results.columns) == RESULTS_COLUMNS
    # one timepoint: no mixed model (the founding design)
    assert founding.results[founding.results.comparison == "all_timepoints"].empty


def test_terminal_shows_the_looked_up_numbers_and_the_flow(founding):
    out = terminal_text(founding)
    b = np.array([c[0] for c in CRP])
    d7 = np.array([c[2] for c in CRP])
    assert f"{b.mean():.1f} ± {stats.sem(b):.1f}" in out  # 205.6 ± 29.5
    assert f"{d7.mean():.1f} ± {stats.sem(d7):.1f}" in out  # 64.4 ± 8.8
    assert "\u221268.7%" in out and "0.0065" in out and "0.016" in out
    assert "CRP (mg/L)" in out  # short label from vocabulary/variables.csv
    # the flow: each step with the exclusion before it and its reason
    assert re.search(r"excluded: No anakinra started during the PICU stay\s+1\b", out)
    assert re.search(r"excluded: Age at PICU admission outside 0–21 completed years\s+1\b", out)
    assert re.search(r"Patients in the study \(first qualifying stay each\)\s+8\b", out)
    assert "Ferritin (excluded: 1 no day 7 value)" in out
    assert "calendar" not in out.lower().split("limitations")[0]  # a step the study does not apply


# --- another index drug, three timepoints ----------------------------------------------------

FORBIDDEN = re.compile(r"anakinra|day[\s\-_]?7\b|kineret", re.I)


def test_another_index_drug_and_three_timepoints_use_only_the_definitions_words(other,
                                                                                other_html):
    out = terminal_text(other)
    for where, text in (("terminal", out), ("report.html", other_html)):
        found = [text[max(0, m.start() - 60):m.end() + 20] for m in FORBIDDEN.finditer(text)]
        assert not found, f"{where}: {found}"
        for word in ("dexamethasone", "day 3", "one week", "day 14"):
            assert word in text.lower() if word == "dexamethasone" else word in text, (where, word)
    page = visible(other_html).replace("&#8209;", "-")
    # Methods state the real windows in plain sentences
    for sentence in (
            "Baseline: the value closest to time 0 from −24 h to +12 h, both edges included",
            "Day 3: the value closest to 72 h after time 0 within ± 12 h (60 h to 84 h)",
            "One week: the value closest to 168 h after time 0 within ± 24 h (144 h to 192 h)",
            "Day 14: the value closest to 336 h after time 0 within ± 48 h (288 h to 384 h)",
            "no calendar limit; no entry requirement",
            "Time 0 is the first administration of dexamethasone started during the PICU stay"):
        assert sentence in page, sentence
    assert "Days from the first dexamethasone dose" in other_html  # the figures' axes
    assert "Markers at the first dexamethasone dose and at day 3, one week and day 14" in page


def test_three_timepoints_are_each_compared_with_baseline(other):
    r = other
    for name, k in (("day3", 1), ("week1", 2), ("day14", 3)):
        pairs = [(c[0], c[k]) for c in CRP if c[0] is not None and c[k] is not None]
        b, later = np.array(pairs).T
        assert r.stat("marker", "crp", "n", comparison=name) == len(pairs)
        assert r.stat("marker", "crp", "mean", comparison=name, timepoint="baseline") == \
            pytest.approx(b.mean())
        assert r.stat("marker", "crp", "mean", comparison=name, timepoint=name) == \
            pytest.approx(later.mean())
        assert r.stat("marker", "crp", "p_paired_t", comparison=name) == pytest.approx(
            stats.ttest_rel(b, later).pvalue)
    # the repeated-measures model over all timepoints
    assert r.stat("marker", "crp", "n_patients", comparison="all_timepoints") == 8
    assert r.stat("marker", "crp", "n_observations", comparison="all_timepoints") == sum(
        v is not None for c in CRP for v in c)
    p = r.stat("marker", "crp", "p_mixed_overall", comparison="all_timepoints")
    assert p is not None and 0 <= p < 0.05
    # ferritin has no day-3 and no day-14 value: n = 0 there, a reason, no crash
    row = r.row("marker", "ferritin", "p_paired_t", comparison="day3")
    assert math.isnan(row["value"]) and "n = 0" in row["error"]


# --- files ---------------------------------------------------------------------------------

def test_csv_and_json_round_trip(founding, tmp_path):
    paths = write_results(founding, tmp_path)
    assert set(paths) == {"results_csv", "observations_csv", "patients_csv", "results_json"}
    back = read_results(tmp_path)

    def norm(df):
        return df.astype(object).where(df.notna(), None)

    pd.testing.assert_frame_equal(norm(back.results), norm(founding.results), check_dtype=False)
    pd.testing.assert_frame_equal(norm(back.observations), norm(founding.observations),
                                  check_dtype=False)
    assert back.patients["patient"].tolist() == founding.patients["patient"].tolist()
    raw = paths["results_json"].read_text()
    assert "NaN" not in raw
    doc = json.loads(raw)
    assert set(doc) == {"study", "provenance", "results", "observations"}
    assert doc["study"]["timepoints"] == [{"name": "day7", "label": "day 7",
                                          "target_hours": 168.0, "tolerance_hours": 24.0}]
    first = doc["results"][0]
    assert list(first) == RESULTS_COLUMNS
    assert first["stat_name"] == "count" and first["stat_label"] == "Count"
    p_rows = [r for r in doc["results"] if r["variable"] == "crp"
              and r["stat_name"] in ("p_paired_t", "p_wilcoxon")]
    assert [r["stat_label"] for r in p_rows] == ["p, paired t-test", "p, Wilcoxon signed-rank test"]
    assert all(r["method"] and "scipy" not in r["method"] for r in p_rows)


# --- the HTML report -----------------------------------------------------------------------

def test_report_is_self_contained_and_complete(founding_html):
    html = founding_html
    assert not EXTERNAL.search(html), "external src/href in the report"
    assert "<script" not in html.lower()
    assert "@import" not in html and "url(http" not in html
    assert "<link" not in html.lower() and "<img" not in html.lower()
    assert "<!DOCTYPE svg" not in html and "<?xml" not in html
    for marker in ("crp", "ferritin", "fibrinogen", "anc", "alc"):
        assert f'id="fig-{marker}"' in html
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "duplicate element ids across inline SVGs"
    for section in ("summary", "flow", "baseline", "published", "exposure", "markers",
                    "figures", "patients", "cotherapy", "safety", "outcome", "limitations",
                    "methods", "references"):
        assert f'<section id="{section}">' in html, section
    # markers without any value are a "no data" panel, not an empty axis
    assert html.count("class=\"no-data-svg\"") == 2 * 3  # fibrinogen, ANC, ALC
    assert len(html.encode()) < 2_000_000


def test_report_reads_the_results_table(founding):
    before = render_html(founding)
    r = founding.results.copy()
    mask = ((r["variable"] == "crp") & (r["stat_name"] == "mean")
            & (r["timepoint"] == "baseline"))
    r.loc[mask, "value"] = 321.5
    changed = type(founding)(r, founding.observations, founding.definition,
                             founding.provenance, founding.patients)
    after = render_html(changed)
    assert "205.6 ± 29.5" in before and "205.6 ± 29.5" not in after
    assert "321.5 ± 29.5" in after


def test_methods_define_sem_and_name_the_software_once(founding_html):
    page = visible(founding_html)
    assert "SEM = SD / √n, with SD the sample standard deviation (divisor n − 1)" in page
    assert "paired t-test" in page and "Wilcoxon signed-rank test" in page
    assert founding_html.count("scipy.stats.ttest_rel") == 1  # the footnote, once
    assert founding_html.count("scipy.stats.wilcoxon") == 1
    methods = page[page.index("Methods Time 0"):page.index("Paired t-test: scipy")]
    assert "scipy.stats" not in methods and "statsmodels MixedLM" not in methods
    words = re.sub(r'<ol class="footnotes">.*?</ol>', "", founding_html, flags=re.S)
    for raw in ("pct_change_of_means", "zero_method", "not_met", "day7_half_width",
                "admitted from: ;", "not stated h", ">corticosteroid<", ">ivig<"):
        assert raw not in words, raw
    for label in ("Systemic corticosteroids", "Intravenous immunoglobulin (IVIG)",
                  "not met", "Invasive mechanical ventilation"):
        assert label in founding_html, label


def test_published_vs_this_site(founding_html, founding):
    page = visible(founding_html)
    assert "Published vs this site" in page
    b = np.array([c[0] for c in CRP])
    d7 = np.array([c[2] for c in CRP])
    # the paper's CRP (§10.1) beside this site's, each formatted the same way
    assert re.search(r"CRP at the start of anakinra, mean ± SEM \(mg/L\) 206 ± 50 "
                     + re.escape(f"{b.mean():.1f} ± {stats.sem(b):.1f}"), page)
    assert re.search(r"CRP 7 days later, mean ± SEM \(mg/L\) 68 ± 36 "
                     + re.escape(f"{d7.mean():.1f} ± {stats.sem(d7):.1f}"), page)
    assert "Patients 8 8" in page


def test_every_citation_in_the_report_names_a_heading_of_the_clinical_reference(founding_html,
                                                                               other_html):
    headings = set()
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#{2,4}\s+(\d+(?:\.\d+)*)\.?\s", line)
        if m:
            headings.add(m.group(1))
    for html in (founding_html, other_html):
        cited = cited_sections([visible(html)])
        assert {"10.4", "12.1", "12.6"} <= set(cited)
        assert not set(cited) - headings, set(cited) - headings
        refs = html[html.index('<section id="references">'):]
        for section in cited:  # each listed in the references, with its heading
            assert f"§{section}</span>" in refs, section
    assert "Definition." in founding_html  # §2.1's heading, under its chapter's title


def test_limitations_come_from_the_data(founding_html, other_html, tmp_path):
    page = visible(founding_html)
    lim = page[page.index("Limitations Observational"):page.index("Methods Time 0")]
    assert "Only 8 patients (fewer than 10)" in lim
    assert "HScore was derived and validated in adults" in lim
    assert "The source records no" not in lim  # every domain is recorded here
    # a source without ventilation, vasoactive, condition and event records says so
    con = build_database()
    for table in ("organ_support", "condition", "event"):
        con.con.execute(f"DELETE FROM {table}")
    html = render_html(run_study(con, "rajasekaran2014"))
    lim = visible(html)[visible(html).index("Limitations Observational"):]
    assert ("The source records no diagnoses (underlying disease), invasive mechanical "
            "ventilation, vasoactive infusions, infections, deaths") in lim
    assert "not recorded" in visible(html)[visible(html).index("Patients at PICU admission"):]


def test_an_empty_database_completes_with_the_flow_and_no_data(tmp_path):
    results = run_study(connect_memory(), "rajasekaran2014")
    out = terminal_text(results)
    assert re.search(r"PICU stays in the database\s+0\b", out)
    assert "No patient met the study's rules" in out
    paths = write_outputs(results, tmp_path)
    html = paths["report_html"].read_text(encoding="utf-8")
    assert "no data" in html and "Patient flow" in html
    assert "Traceback" not in out
    assert pd.read_csv(paths["patients_csv"]).empty


# --- the per-patient listing ---------------------------------------------------------------

def test_the_listing_equals_the_patients_data(founding):
    """Each listing row against the database, with SQL written here (not the study's code)."""
    con = build_database()
    expected = con.con.execute("""
        WITH first_dose AS (
            SELECT s.stay_id, s.person_id, min(d.start_time) AS index_time
            FROM stay s JOIN drug_administration d
              ON d.person_id = s.person_id AND d.drug = 'anakinra'
             AND d.start_time BETWEEN s.admit_time AND s.discharge_time
            GROUP BY 1, 2)
        SELECT f.person_id,
               date_diff('second', p.birth_date::TIMESTAMP, s.admit_time) / 86400.0 / 365.25
                   AS age_years,
               p.sex,
               date_diff('second', s.admit_time, f.index_time) / 3600.0 AS hours_to_dose,
               (SELECT count(DISTINCT floor(date_diff('second', f.index_time, d.start_time)
                                             / 86400.0))
                  FROM drug_administration d
                 WHERE d.person_id = f.person_id AND d.drug = 'anakinra'
                   AND d.start_time BETWEEN s.admit_time AND s.discharge_time) AS days,
               (SELECT string_agg(DISTINCT d.route, ',') FROM drug_administration d
                 WHERE d.person_id = f.person_id AND d.drug = 'anakinra'
                   AND d.start_time >= s.admit_time) AS route,
               EXISTS (SELECT 1 FROM organ_support o WHERE o.person_id = f.person_id
                        AND o.support = 'invasive_ventilation') AS ventilated,
               EXISTS (SELECT 1 FROM condition c WHERE c.person_id = f.person_id
                        AND c.is_underlying) AS underlying,
               EXISTS (SELECT 1 FROM drug_administration d WHERE d.person_id = f.person_id
                        AND d.drug_class = 'corticosteroid'
                        AND date_diff('second', f.index_time, d.start_time)
                            BETWEEN -86400 AND 168 * 3600) AS steroid,
               (SELECT min(date_diff('second', f.index_time, e.time)) / 86400.0 FROM event e
                 WHERE e.person_id = f.person_id AND e.event_type = 'death') AS death_day,
               date_diff('second', s.admit_time, s.discharge_time) / 86400.0 AS picu_days,
               s.admission_reason
        FROM first_dose f JOIN stay s USING (stay_id) JOIN person p ON p.person_id = f.person_id
        WHERE p.birth_date > DATE '2000-01-01'  -- the one adult of the database is not in it
        ORDER BY f.index_time, f.person_id
    """).df()
    listing = founding.patients
    assert list(listing.columns)[:2] == PATIENTS_COLUMNS[:2]
    assert len(listing) == len(expected) == 8
    assert listing["patient"].tolist() == [f"P0{i}" for i in range(1, 9)]
    np.testing.assert_allclose(listing["age_years"], expected["age_years"], rtol=1e-9)
    assert listing["sex"].tolist() == expected["sex"].tolist()
    np.testing.assert_allclose(listing["hours_admission_to_index"], expected["hours_to_dose"])
    np.testing.assert_allclose(listing["hours_admission_to_index"], ADMISSION_TO_DOSE_H)
    assert listing["index_drug_days"].astype(int).tolist() == expected["days"].tolist() \
        == DOSE_DAYS
    words = {"iv": "intravenous", "sc": "subcutaneous"}
    assert listing["index_drug_route"].tolist() == [words[r] for r in expected["route"]]
    np.testing.assert_allclose(listing["index_drug_mg_kg_day"], 2.0)  # 2 mg/kg once a day
    assert listing["invasive_ventilation"].tolist() == expected["ventilated"].tolist()
    assert (listing["health_status"] == "underlying disease").tolist() == \
        expected["underlying"].tolist()
    assert listing["cotherapy_corticosteroid"].tolist() == expected["steroid"].tolist()
    assert listing["admission_reason"].tolist() == expected["admission_reason"].tolist()
    np.testing.assert_allclose(listing["picu_days"], expected["picu_days"])
    died = expected["death_day"].notna()
    assert listing.loc[died.to_numpy(), "outcome"].tolist() == ["discharged alive, died later"]
    np.testing.assert_allclose(listing.loc[died.to_numpy(), "death_days_from_index"],
                               expected.loc[died, "death_day"])
    assert (listing.loc[~died.to_numpy(), "outcome"] == "discharged alive").all()
    assert listing["prism3_source"].eq("computed").all()


def test_the_index_drug_is_not_its_own_cotherapy(other, other_html):
    """Dexamethasone is a corticosteroid: the co-therapy 'corticosteroids' counts the others
    (none in this database: its children get no methylprednisolone with dexamethasone)."""
    rows = other.results[(other.results["section"] == "cotherapy")
                         & (other.results["variable"] == "corticosteroid")
                         & (other.results["stat_name"] == "count")]
    assert rows["value"].tolist() == [0.0, 0.0]
    assert set(rows["label"]) == {"Systemic corticosteroids other than dexamethasone"}
    assert "Systemic corticosteroids other than dexamethasone" in other_html
    assert not other.patients["cotherapy_corticosteroid"].any()

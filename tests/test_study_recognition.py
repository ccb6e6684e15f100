"""The study's secondary analysis "time from recognition to treatment" (study.recognition,
clinical reference §12.40), against times designed here by hand.

The eight children of tests/studydata.py get, for five of them, every HScore input but the
temperature one hour before a chosen time R (ferritin 12,000 ng/mL: 50 points, haemoglobin 8 g/dL
+ platelets 80 ×10³/µL + WBC 3 ×10³/µL: three lineages, 34; fibrinogen 120 mg/dL: 30; AST
150 U/L: 19 = 133 points, clinical reference §2.2) and a temperature of 39.6 °C at R (+49 = 182
≥ 169). So HScore ≥ 169 is first met exactly at R, and no phenotype criterion before; at R
MAS-2016 is met too (§3.1: febrile, ferritin > 684 ng/mL and two of platelets ≤ 181 ×10³/µL,
AST > 48 U/L, fibrinogen ≤ 360 mg/dL: all three here) for child 1, the one with known sJIA that
MAS-2016 requires: both are "met first" for child 1. The first
dose is ADMISSION_TO_DOSE_H after admission, so the delay is ADMISSION_TO_DOSE_H − R:

child  R (h after admission)  first dose  delay   cut 10 h
0      2                      4           2       early
1      36                     30          −6      early (treated before recognition)
2      0.5                    12.5        12      late
3      20                     50          30      late
5      40                     72          32      late
4      (no HScore inputs)     8           −166    early (treated before recognition)
6, 7: no HScore inputs: never recognised, not classified.

Child 4 is recognised by studydata's own values: hyperferritinaemic sepsis (§4.3: a documented
infection with ferritin > 500 ng/mL in the preceding 24 h) is first met when its day-7 ferritin
(2,000 ng/mL, drawn 166 h after the first dose) follows its infection (132 h): −166 h.

Patients are labelled by time of the first dose, and the children's doses are in child order
(admissions 3 days apart), so child i is P0(i+1). The markers by group are checked against
scipy's Mann–Whitney U test on the CRP changes of studydata.CRP.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from scipy import stats

from hyperinflam.report import render_terminal
from hyperinflam.report.html import render_html
from hyperinflam.study.definition import load_study, parse_study
from hyperinflam.study.run import run_study
from studydata import ADMISSION_TO_DOSE_H, CRP, T0, build_database

RECOGNISED_AT_H = {0: 2.0, 1: 36.0, 2: 0.5, 3: 20.0, 5: 40.0}
DELAY_H = {**{i: ADMISSION_TO_DOSE_H[i] - r for i, r in RECOGNISED_AT_H.items()}, 4: -166.0}
FIRST = {i: "HScore ≥ 169" for i in RECOGNISED_AT_H} | {
    1: "HScore ≥ 169 and MAS-2016", 4: "Hyperferritinaemic sepsis"}
CUT_H = 10.0
EARLY = [i for i, d in DELAY_H.items() if d <= CUT_H]
LATE = [i for i, d in DELAY_H.items() if d > CUT_H]

HSCORE_INPUTS = (("ferritin", 12000.0, "ng/mL"), ("platelets", 80.0, "10*3/uL"),
                 ("fibrinogen", 120.0, "mg/dL"), ("hemoglobin", 8.0, "g/dL"),
                 ("wbc", 3.0, "10*3/uL"), ("ast", 150.0, "U/L"))


def database():
    con = build_database()
    raw = con.con
    for i, r in RECOGNISED_AT_H.items():
        admit = T0 + timedelta(days=3 * i)
        for variable, value, unit in HSCORE_INPUTS:
            raw.execute("INSERT INTO measurement VALUES (?,?,?,?,?,?,?,?,?)",
                        [f"src-{i}", f"stay-{i}", admit + timedelta(hours=r - 1), variable,
                         value, unit, str(value), unit, None])
        raw.execute("INSERT INTO measurement VALUES (?,?,?,?,?,?,?,?,?)",
                    [f"src-{i}", f"stay-{i}", admit + timedelta(hours=r), "temperature", 39.6,
                     "Cel", "39.6", "Cel", None])
    return con


def study(**recognition):
    data = load_study("rajasekaran2014").model_dump(mode="json", exclude_none=True)
    data.pop("timepoints")  # the founding study's one timepoint, from [windows]
    data["recognition"] = {"early_start_cut_hours": CUT_H, **recognition}
    return parse_study(data)


@pytest.fixture(scope="module")
def results():
    return run_study(database(), study())


def _patient(i: int) -> str:
    return f"P0{i + 1}"


def test_recognition_and_delay_per_patient(results):
    p = results.patients.set_index("patient")
    for i in range(8):
        row = p.loc[_patient(i)]
        if i in DELAY_H:
            assert row["hours_recognition_to_index"] == pytest.approx(DELAY_H[i])
            assert row["first_phenotype_criterion"] == FIRST[i]
            group = "early" if i in EARLY else "late"
            assert row["start_group"] == f"{group} start: {'≤' if i in EARLY else '>'} 10 h " \
                                         f"from recognition"
        else:
            assert np.isnan(row["hours_recognition_to_index"])
            assert row["start_group"].startswith("not classified")


def test_the_distribution_of_delays(results):
    delays = np.array(list(DELAY_H.values()))
    s = lambda stat, var="hours_recognition_to_index", **kw: results.stat(  # noqa: E731
        "recognition", var, stat, **kw)
    assert s("n") == 6
    assert s("median") == pytest.approx(np.median(delays))  # (2 + 12) / 2 = 7
    assert s("q1") == pytest.approx(np.quantile(delays, 0.25))
    assert s("q3") == pytest.approx(np.quantile(delays, 0.75))
    assert s("min") == -166 and s("max") == 32
    assert s("count", "phenotype_met_in_stay") == 6
    assert s("percent", "phenotype_met_in_stay") == pytest.approx(75.0)
    assert s("count", "treated_before_recognition") == 2  # children 1 and 4
    assert s("count", "first_phenotype_criterion", level="HScore ≥ 169") == 4
    assert s("count", "first_phenotype_criterion", level="HScore ≥ 169 and MAS-2016") == 1
    assert s("count", "first_phenotype_criterion", level="Hyperferritinaemic sepsis") == 1
    assert s("count", "first_phenotype_criterion", level="none met in the PICU stay") == 2
    assert s("count", "start_group", level="early start: ≤ 10 h from recognition") == 3
    assert s("count", "start_group", level="late start: > 10 h from recognition") == 3
    hscore = [DELAY_H[i] for i in RECOGNISED_AT_H]
    assert s("median", "hours_hscore_to_index") == pytest.approx(np.median(hscore))
    assert s("median", "hours_mas2016_to_index") == pytest.approx(DELAY_H[1])
    assert s("median", "hours_hyperferritinemic_sepsis_to_index") == pytest.approx(-166.0)
    # HLH-2004 is never met (4 of 8 criteria known at most): no rows of its own
    assert results.results.query("variable == 'hours_hlh2004_to_index'").empty


def test_markers_by_early_and_late_start_against_scipy(results):
    change = {g: np.array([CRP[i][2] - CRP[i][0] for i in ids])
              for g, ids in (("early_start", EARLY), ("late_start", LATE))}
    s = lambda stat, group, tp=None: results.stat(  # noqa: E731
        "recognition_markers", "crp", stat, comparison="day7", timepoint=tp, group=group)
    for group, ids in (("early_start", EARLY), ("late_start", LATE)):
        base = np.array([CRP[i][0] for i in ids])
        later = np.array([CRP[i][2] for i in ids])
        assert s("n", group) == len(ids)
        assert s("mean", group, "baseline") == pytest.approx(base.mean())
        assert s("sem", group, "baseline") == pytest.approx(stats.sem(base))
        assert s("mean", group, "day7") == pytest.approx(later.mean())
        assert s("median_pct_change", group) == pytest.approx(
            np.median(100 * (later - base) / base))
    expected = stats.mannwhitneyu(change["early_start"], change["late_start"],
                                  alternative="two-sided", method="exact")
    assert s("p_mann_whitney", "early_vs_late") == pytest.approx(expected.pvalue)
    assert s("u_statistic", "early_vs_late") == pytest.approx(expected.statistic)
    row = results.row("recognition_markers", "crp", "p_mann_whitney", comparison="day7",
                      group="early_vs_late")
    assert row["method"] == "Mann–Whitney U test, two-sided, exact distribution"
    # ferritin has one early patient with both values only: not computed, with the reason
    row = results.row("recognition_markers", "ferritin", "p_mann_whitney", comparison="day7",
                      group="early_vs_late")
    n_early = results.stat("recognition_markers", "ferritin", "n", comparison="day7",
                           group="early_start")
    n_late = results.stat("recognition_markers", "ferritin", "n", comparison="day7",
                          group="late_start")
    if min(n_early, n_late) < 2:
        assert np.isnan(row["value"]) and "fewer than 2 patients" in row["error"]


def test_groups_cut_from_picu_admission():
    r = run_study(database(), study(early_start_from="picu_admission"))
    p = r.patients.set_index("patient")
    for i in range(8):  # every patient is classified, by the hours from admission to the dose
        early = ADMISSION_TO_DOSE_H[i] <= CUT_H
        assert p.loc[_patient(i), "start_group"].startswith("early" if early else "late"), i
    assert r.stat("recognition", "start_group", "count",
                  level="early start: ≤ 10 h from PICU admission") == sum(
        h <= CUT_H for h in ADMISSION_TO_DOSE_H)


def test_disabled_leaves_no_rows_and_no_section():
    r = run_study(database(), study(enabled=False))
    assert not r.results["section"].str.startswith("recognition").any()
    assert "hours_recognition_to_index" in r.patients.columns  # the listing keeps its columns
    html = render_html(r)
    assert 'id="recognition"' not in html and "§12.40" not in html


def test_the_report_section_methods_and_terminal(results):
    from rich.console import Console

    html = render_html(results)
    section = html[html.index('<section id="recognition">'):html.index('<section id="limitations">')]
    assert 'id="fig-delay"' in section and "<svg" in section
    assert 'id="recognition-markers"' in section
    assert "Early start (≤ 10 h)" in section and "Late start (&gt; 10 h)" in section
    p = stats.mannwhitneyu([CRP[i][2] - CRP[i][0] for i in EARLY],
                           [CRP[i][2] - CRP[i][0] for i in LATE], method="exact").pvalue
    from hyperinflam.report.views import fmt_p

    assert fmt_p(p) in section
    methods = html[html.index('<section id="methods">'):]
    assert "Secondary analysis, time from recognition to treatment (§12.40)" in methods
    assert "at most 10 h" in methods
    assert methods.count("scipy.stats.mannwhitneyu") == 1  # the footnote, once
    refs = html[html.index('<section id="references">'):]
    assert "§12.40</span>" in refs and "Early vs late start of the index drug" in refs
    console = Console(record=True, width=160, color_system=None)
    render_terminal(results, console)
    out = console.export_text()
    assert "Secondary analysis: time from recognition to the first anakinra dose" in out
    assert "Markers by early or late start of anakinra" in out

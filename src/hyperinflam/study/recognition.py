"""Secondary analysis: time from recognition to treatment (clinical reference §12.40).

The founding paper's conclusion is that the phenotype is under-recognised; the delay from meeting
a phenotype criterion to the first dose of the index drug is the number that shows it. For every
patient of the study:

* **recognition**: the first time a criterion of the hyperinflammatory phenotype group (the one
  "meets" rule, :mod:`hyperinflam.screening.meets`) was met in the PICU stay, from the screen
  evaluated at PICU admission and at every data time of the stay
  (:func:`hyperinflam.screening.recognition.first_met`, exact: the first qualifying
  measurement), and which criterion it was;
* **delay** = first dose of the index drug − recognition, in hours (negative: the drug came
  first);
* **early / late start**: the delay (or, with ``[recognition] early_start_from =
  "picu_admission"``, the hours from PICU admission to the first dose) at most
  ``early_start_cut_hours`` (default 120 h, 5 days: Eloseily 2020, §9.1), else late; a patient
  without a phenotype criterion met in the stay is not classified.

Results (docs/results-format.md): section ``recognition`` (the distribution of delays, group
``cohort``) and section ``recognition_markers`` (each marker and timepoint by group
``early_start`` / ``late_start``, and group ``early_vs_late`` for the Mann–Whitney U test of the
change between them). The per-patient columns go to the listing. The screen is one ibis
expression over the cohort's stays (executed once); the statistics are on the small per-patient
frame.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from hyperinflam.criteria import label as criterion_label
from hyperinflam.screening import recognition as screening_recognition
from hyperinflam.study import labels as words
from hyperinflam.study.definition import StudyDefinition
from hyperinflam.vocabulary import Vocabulary

SECTION = "recognition"
MARKERS_SECTION = "recognition_markers"
EARLY, LATE, BETWEEN = "early_start", "late_start", "early_vs_late"
#: Mann–Whitney U: the exact distribution when the smaller group has at most this many patients
#: and no values are tied (scipy's own rule for method="auto", made explicit here).
MANN_WHITNEY_EXACT_MAX_N = 8
#: The listing's columns added by this analysis (docs/results-format.md §4).
PATIENT_COLUMNS = ["hours_recognition_to_index", "first_phenotype_criterion", "start_group"]


def criterion_words(name: str) -> str:
    """A criterion's label as printed ("HScore ≥ 169")."""
    return criterion_label(name).replace(">=", "≥").replace("<=", "≤")


def first_met_frame(con, cohort: pd.DataFrame) -> pd.DataFrame:
    """Per cohort stay: ``stay_id``, ``<criterion>_first_met`` for every phenotype criterion and
    ``phenotype_first_met`` (NaT: never met in the stay)."""
    names = screening_recognition.phenotype_criteria()
    columns = ["stay_id", *(f"{n}_first_met" for n in names), "phenotype_first_met"]
    if cohort.empty:
        return pd.DataFrame(columns=columns)
    ids = sorted(cohort["stay_id"].astype(str).unique().tolist())
    stay = con.table("stay")
    stays = stay.filter(stay.stay_id.cast("string").isin(ids))
    frame = screening_recognition.first_met(con, stays).to_pandas()
    frame = frame.rename(columns={"r_stay": "stay_id"})
    frame["stay_id"] = frame["stay_id"].astype(str)
    for c in columns[1:]:
        frame[c] = pd.to_datetime(frame[c]) if c in frame else pd.NaT
    return frame[columns]


def per_patient(cohort: pd.DataFrame, first_met: pd.DataFrame,
                study: StudyDefinition) -> pd.DataFrame:
    """stay_id, hours_recognition_to_index, first_phenotype_criterion, start_group (words),
    group (``early_start`` / ``late_start`` / None), the delay's anchor value."""
    r = study.recognition
    c = cohort[["stay_id", "index_time", "hours_admission_to_index"]].copy()
    c["stay_id"] = c["stay_id"].astype(str)
    m = c.merge(first_met, on="stay_id", how="left")
    recognised = pd.to_datetime(m["phenotype_first_met"])
    index_time = pd.to_datetime(m["index_time"])
    m["hours_recognition_to_index"] = (index_time - recognised).dt.total_seconds() / 3600.0
    names = screening_recognition.phenotype_criteria()
    first = pd.Series("", index=m.index, dtype=object)
    for name in names:  # the criteria met at the recognition time itself (ties: all of them)
        hit = pd.to_datetime(m[f"{name}_first_met"]).eq(recognised) & recognised.notna()
        first = first.where(~hit, first + " and " + criterion_words(name))
    first = first.str.removeprefix(" and ")
    m["first_phenotype_criterion"] = first.where(first != "", None)
    anchor = (m["hours_recognition_to_index"] if r.early_start_from == "recognition"
              else pd.to_numeric(m["hours_admission_to_index"], errors="coerce"))
    anchor = anchor.where(recognised.notna()) if r.early_start_from == "recognition" else anchor
    m["group"] = np.where(anchor.isna(), None,
                          np.where(anchor <= r.early_start_cut_hours, EARLY, LATE))
    early_w, late_w, none_w = group_words(study)
    m["start_group"] = m["group"].map({EARLY: early_w, LATE: late_w}).where(
        m["group"].notna(), none_w)
    return m


def anchor_words(study: StudyDefinition) -> str:
    return ("recognition (the first phenotype criterion met)"
            if study.recognition.early_start_from == "recognition" else "PICU admission")


def group_words(study: StudyDefinition) -> tuple[str, str, str]:
    """The levels of the start group, in words from the study's cut."""
    cut = f"{study.recognition.early_start_cut_hours:g} h"
    start = "recognition" if study.recognition.early_start_from == "recognition" else (
        "PICU admission")
    none = ("not classified: no phenotype criterion met in the PICU stay"
            if study.recognition.early_start_from == "recognition" else "not classified")
    return (f"early start: ≤ {cut} from {start}", f"late start: > {cut} from {start}", none)


def group_labels(study: StudyDefinition) -> dict[str, str]:
    """Group name -> column heading."""
    cut = f"{study.recognition.early_start_cut_hours:g} h"
    return {EARLY: f"Early start (≤ {cut})", LATE: f"Late start (> {cut})",
            BETWEEN: "Early vs late"}


def _mann_whitney(early: np.ndarray, late: np.ndarray) -> dict:
    """U (of the early group), p (two-sided) and the method in words, or the reason it was not
    computed."""
    if len(early) < 2 or len(late) < 2:
        return {"error": "not computed: fewer than 2 patients with both values in the early or "
                         "the late start group"}
    both = np.concatenate([early, late])
    if np.ptp(both) == 0:
        return {"error": "not computed: every change is the same (no variance)"}
    tied = len(np.unique(np.round(both, 9))) < len(both)
    exact = min(len(early), len(late)) <= MANN_WHITNEY_EXACT_MAX_N and not tied
    test = stats.mannwhitneyu(early, late, alternative="two-sided",
                              method="exact" if exact else "asymptotic", use_continuity=False)
    how = ("exact distribution" if exact else
           "normal approximation without continuity correction"
           + (" (tied values)" if tied else ""))
    return {"u": float(test.statistic), "p": float(test.pvalue),
            "method": f"{words.MANN_WHITNEY}, two-sided, {how}"}


def results_rows(rows, study: StudyDefinition, patients: pd.DataFrame, chosen: pd.DataFrame,
                 total: int, units: dict[str, str]) -> None:
    """Add the two sections to ``rows`` (analysis._Rows). ``patients`` is :func:`per_patient`;
    ``chosen`` the cohort's chosen marker values (stay_id, variable, role, value)."""
    from hyperinflam.study.analysis import (_categorical, _complete_pairs, _flag, _numeric,
                                             describe)

    drug = study.index_drug
    recognised = patients["hours_recognition_to_index"].notna()
    method_first = ("first time a criterion of the hyperinflammatory phenotype group was met, "
                    "the screen evaluated at PICU admission and at every measurement, drug "
                    "start and condition onset of the stay")
    _flag(rows, SECTION, "phenotype_met_in_stay",
          "A criterion of the hyperinflammatory phenotype group met in the PICU stay",
          recognised, total, method=method_first)
    _numeric(rows, SECTION, "hours_recognition_to_index",
             f"Hours from recognition (the first phenotype criterion met) to the first {drug} "
             f"dose", patients["hours_recognition_to_index"], "h",
             method=f"first {drug} dose − recognition; negative: {drug} given first")
    _flag(rows, SECTION, "treated_before_recognition",
          f"{words.capitalised(drug)} started before a phenotype criterion was met",
          recognised & (patients["hours_recognition_to_index"] < 0), total,
          method="negative delay (includes patients whose criteria were met only after the "
                 "first dose)")
    _categorical(rows, SECTION, "first_phenotype_criterion",
                 "The phenotype criterion met first",
                 patients["first_phenotype_criterion"].fillna("none met in the PICU stay")
                 .astype(object), [], total, method="ties: every criterion met at that time")
    early_w, late_w, none_w = group_words(study)
    _categorical(rows, SECTION, "start_group",
                 f"Start of {drug}, early or late: cut at "
                 f"{study.recognition.early_start_cut_hours:g} h from "
                 f"{'recognition' if study.recognition.early_start_from == 'recognition' else 'PICU admission'}"
                 f" (§12.40)",
                 patients["start_group"].astype(object), [early_w, late_w], total)
    for name in screening_recognition.phenotype_criteria():
        first = pd.to_datetime(patients[f"{name}_first_met"])
        hours = (pd.to_datetime(patients["index_time"]) - first).dt.total_seconds() / 3600.0
        if hours.notna().any():
            _numeric(rows, SECTION, f"hours_{name}_to_index",
                     f"{criterion_words(name)}: hours from first met to the first {drug} dose",
                     hours, "h", statistics=("n", "median", "q1", "q3", "min", "max"))

    # -- markers by early vs late start ----------------------------------------------------
    vocab = Vocabulary()
    group_of = patients.set_index(patients["stay_id"].astype(str))["group"]
    pairs_by_timepoint = {}
    for t in study.timepoints:
        wide = _complete_pairs(chosen, t.name)
        pairs_by_timepoint[t.name] = wide.assign(
            group=wide["stay_id"].astype(str).map(group_of) if len(wide) else None)
    for marker in study.markers.variables:
        var = vocab.variables[marker]
        unit = units.get(marker, var.canonical_unit)
        for t in study.timepoints:
            wide = pairs_by_timepoint[t.name]
            wide = wide[wide["variable"] == marker]
            pairs = wide[wide["baseline"].notna() & wide[t.name].notna()]
            change = {}
            for group in (EARLY, LATE):
                g = pairs[pairs["group"] == group]
                change[group] = (g[t.name] - g["baseline"]).to_numpy(dtype="float64")
                rows.add(MARKERS_SECTION, marker, var.label, "n", len(g), comparison=t.name,
                         group=group, method=f"patients with a baseline value and a value at "
                                             f"{t.label}")
                for tp, column in (("baseline", "baseline"), (t.name, t.name)):
                    summary = describe(g[column].to_numpy(dtype="float64"),
                                       ddof=study.analysis.sem_ddof)
                    for stat_name in ("mean", "sem", "median"):
                        value = summary.get(stat_name)
                        bad = value is None or (isinstance(value, float) and math.isnan(value))
                        rows.add(MARKERS_SECTION, marker, var.label, stat_name,
                                 None if bad else value, comparison=t.name, timepoint=tp,
                                 unit=unit, group=group,
                                 error=("no patient has both values" if len(g) == 0 else
                                        f"not defined for n = {len(g)}") if bad else None)
                base = g["baseline"].to_numpy(dtype="float64")
                ok = base != 0
                pct = 100.0 * (g[t.name].to_numpy(dtype="float64")[ok] - base[ok]) / base[ok]
                rows.add(MARKERS_SECTION, marker, var.label, "median_pct_change",
                         float(np.median(pct)) if len(pct) else None, comparison=t.name,
                         unit="%", group=group,
                         method=f"median of each patient's % change from baseline to {t.label}",
                         error=None if len(pct) else "no patient has both values",
                         warning=(f"{int((~ok).sum())} with a baseline of 0 left out"
                                  if (~ok).any() else None))
            test = _mann_whitney(change[EARLY], change[LATE])
            rows.add(MARKERS_SECTION, marker, var.label, "u_statistic", test.get("u"),
                     comparison=t.name, group=BETWEEN, method=test.get("method"),
                     error=test.get("error"))
            rows.add(MARKERS_SECTION, marker, var.label, "p_mann_whitney", test.get("p"),
                     comparison=t.name, group=BETWEEN, method=test.get("method"),
                     error=test.get("error"))


def methods_sentence(study: StudyDefinition) -> str:
    """The Methods paragraph of the secondary analysis."""
    r = study.recognition
    drug = study.index_drug
    names = [criterion_words(n) for n in screening_recognition.phenotype_criteria()]
    listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)
    anchor = ("the delay from recognition" if r.early_start_from == "recognition"
              else "the time from PICU admission")
    return (f"Secondary analysis, time from recognition to treatment (§12.40): recognition is "
            f"the first time a criterion of the hyperinflammatory phenotype group ({listed}) was "
            f"met in the PICU stay, with the criteria evaluated at PICU admission and at every "
            f"measurement, drug start and condition onset of the stay; the delay is the first "
            f"{drug} dose minus recognition, in hours, negative when {drug} came first. Patients "
            f"started early when {anchor} to the first dose was at most "
            f"{r.early_start_cut_hours:g} h (the 5 days of Eloseily 2020, who measured from "
            f"hospital admission), late otherwise; patients without a phenotype criterion "
            f"met are not classified. For each marker and timepoint the change from baseline "
            f"(value at the timepoint − baseline) is compared between early and late start by "
            f"the {words.MANN_WHITNEY} (two-sided; the exact distribution when the smaller group "
            f"has at most {MANN_WHITNEY_EXACT_MAX_N} patients and no value is tied, else the "
            f"normal approximation). The analysis is descriptive: the groups are not "
            f"randomised, so a difference between them may reflect how ill the patients were.")

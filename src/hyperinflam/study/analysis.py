"""Statistics of a case-series study: the ``results``, ``observations`` and ``patients``
tables (docs/results-format.md) from the executed cohort frames (hyperinflam.study.cohort).

Conventions (clinical reference §10.3, §10.4 and §12.3-§12.6), for each timepoint of the study
compared with baseline (the ``comparison``):

* Complete cases per marker and comparison: a patient without both a baseline value and a value
  at the timepoint is left out of that comparison only and counted in ``n_excluded``.
* Mean, SD, SEM = SD / sqrt(n) with the sample SD (divisor n - 1; ``sem_ddof``), median and
  quartiles (numpy linear interpolation), min, max, at baseline and at the timepoint over the
  complete cases of the comparison.
* % change of group means, 100 x (mean at the timepoint - mean at baseline) / mean at baseline
  (the founding paper's apparent method, §10.3) and the median of per-patient % changes
  (patients with a baseline of 0 have no % change and are left out of that median; ``warning``
  says how many).
* ``mean_difference`` = mean of per-patient (value at the timepoint - baseline).
* Paired t-test (scipy.stats.ttest_rel(baseline, later): t > 0 when values fall, as printed in the
  toy check of §10.4) and Wilcoxon signed-rank test (scipy.stats.wilcoxon on later - baseline,
  with ``method``, ``zero_method`` and ``correction`` passed explicitly: exact when n <= 25 and
  there are no zero or tied absolute differences, else the normal approximation, named in
  ``warning``), both two-sided. A statistic that cannot be computed (n < 2, all differences
  equal) has an empty ``value`` and its reason in ``error``.
* With two or more timepoints, a linear mixed model over baseline and every timepoint
  (hyperinflam.study.mixed), comparison ``all_timepoints``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from hyperinflam.study import labels as words
from hyperinflam.study import mixed
from hyperinflam.study.cohort import DOMAIN_LABELS, CohortFrames
from hyperinflam.study.definition import AnalysisSection, StudyDefinition
from hyperinflam.study.results import OBSERVATIONS_COLUMNS, PATIENTS_COLUMNS, RESULTS_COLUMNS
from hyperinflam.vocabulary import Vocabulary

SEM_METHOD = "standard error of the mean: the sample SD (divisor n − 1) divided by √n"
SEM_METHOD_DDOF0 = "standard error of the mean: the population SD (divisor n) divided by √n"
QUANTILE_METHOD = "quartiles by linear interpolation between order statistics"


def pct_change_of_means_method(later: str) -> str:
    return f"100 × (mean at {later} − mean at baseline) / mean at baseline"


def median_pct_change_method(later: str) -> str:
    return f"median of per-patient 100 × (value at {later} − baseline) / baseline"
#: Relative precision at which two absolute differences count as tied for the Wilcoxon rule.
TIE_DECIMALS = 9


def patient_labels(cohort: pd.DataFrame) -> dict[str, str]:
    """Pseudonymous labels P01, P02, ... by index time (then person_id), never a source id."""
    ordered = cohort.sort_values(["index_time", "person_id", "stay_id"])["stay_id"].tolist()
    width = max(2, len(str(len(ordered))))
    return {stay: f"P{i:0{width}d}" for i, stay in enumerate(ordered, start=1)}


class _Rows:
    def __init__(self, study_id: str):
        self.study_id = study_id
        self.rows: list[dict] = []

    def add(self, section, variable, label, stat_name, value, *, level=None, comparison=None,
            timepoint=None, unit=None, method=None, warning=None, error=None, group="cohort",
            stat_label=None):
        self.rows.append({
            "study": self.study_id, "section": section, "group": group, "variable": variable,
            "label": label, "level": level, "comparison": comparison, "timepoint": timepoint,
            "stat_name": stat_name, "stat_label": stat_label or words.stat_label(stat_name),
            "value": float(value) if value is not None else math.nan, "unit": unit,
            "method": method, "warning": warning or None, "error": error or None,
        })

    def frame(self) -> pd.DataFrame:
        return results_frame(self.rows)


def results_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows -> the results table: the documented columns in order, text columns as objects
    (None for empty), ``value`` float64 (NaN for empty)."""
    frame = pd.DataFrame(rows, columns=RESULTS_COLUMNS)
    frame = frame.astype({c: "object" for c in RESULTS_COLUMNS if c != "value"})
    frame = frame.where(frame.notna(), None)
    frame["value"] = frame["value"].astype("float64")
    return frame


def describe(values: np.ndarray, *, ddof: int = 1) -> dict[str, float]:
    """n, mean, sd, sem, median, q1, q3, min, max (clinical reference §10.4, §12.6)."""
    values = np.asarray(values, dtype="float64")
    n = values.size
    if n == 0:
        return {"n": 0}
    sd = float(np.std(values, ddof=ddof)) if n > ddof else math.nan
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    return {"n": n, "mean": float(values.mean()), "sd": sd, "sem": sd / math.sqrt(n),
            "median": float(median), "q1": float(q1), "q3": float(q3),
            "min": float(values.min()), "max": float(values.max())}



DESCRIPTIVE = ("n", "mean", "sd", "sem", "median", "q1", "q3", "min", "max")


def wilcoxon_options(differences: np.ndarray, analysis: AnalysisSection) -> tuple[str, str]:
    """The scipy ``method`` for these differences and the reason (clinical reference §10.4):
    'exact' when n <= wilcoxon_exact_max_n with no zero and no tied |differences|, else
    'approx' (normal approximation)."""
    d = np.asarray(differences, dtype="float64")
    n = d.size
    absolute = np.round(np.abs(d), TIE_DECIMALS)
    if n > analysis.wilcoxon_exact_max_n:
        return "approx", f"n = {n} > {analysis.wilcoxon_exact_max_n}"
    if np.any(absolute == 0):
        return "approx", "zero differences present"
    if np.unique(absolute).size < n:
        return "approx", "tied absolute differences present"
    return "exact", f"n = {n} <= {analysis.wilcoxon_exact_max_n}, no zero or tied differences"


def paired_t_method(analysis: AnalysisSection) -> str:
    return f"{words.PAIRED_T}, {analysis.alternative}"


ZERO_METHOD_WORDS = {"wilcox": "zero differences dropped",
                     "pratt": "zero differences ranked, then dropped (Pratt)",
                     "zsplit": "zero differences split between the signs"}


def wilcoxon_method(method: str, analysis: AnalysisSection) -> str:
    if method == "exact":
        how = "exact distribution"
    else:
        how = ("normal approximation, " + ("with" if analysis.wilcoxon_correction else "without")
               + " continuity correction")
    return (f"{words.WILCOXON}, {analysis.alternative}, {how}; "
            f"{ZERO_METHOD_WORDS[analysis.wilcoxon_zero_method]}")


def paired_change(baseline: np.ndarray, later: np.ndarray, analysis: AnalysisSection,
                  unit: str | None, later_label: str = "the timepoint") -> list[dict]:
    """The change rows of one marker and comparison: % changes, mean difference and the tests.
    Each item: stat_name, value, and optionally unit, method, warning, error."""
    b = np.asarray(baseline, dtype="float64")
    d7 = np.asarray(later, dtype="float64")
    n = b.size
    out: list[dict] = [{"stat_name": "n", "value": n,
                        "method": f"patients with a baseline value and a value at {later_label}"}]
    diff = d7 - b
    pct_method = pct_change_of_means_method(later_label)
    median_method = median_pct_change_method(later_label)
    tests = []
    if "paired_t" in analysis.tests:
        tests.append(("p_paired_t", paired_t_method(analysis)))
    if "wilcoxon" in analysis.tests:
        tests.append(("p_wilcoxon", f"{words.WILCOXON}, {analysis.alternative}"))
    if n == 0:
        none = "no patient has both values"
        for name, method in (("pct_change_of_means", pct_method),
                             ("median_pct_change", median_method)):
            out.append({"stat_name": name, "value": math.nan, "unit": "%", "method": method,
                        "error": none})
        out.append({"stat_name": "mean_difference", "value": math.nan, "unit": unit,
                    "error": none})
        for name, method in tests:
            out.append({"stat_name": name, "value": math.nan, "method": method,
                        "error": "not computed: n = 0, needs at least 2 pairs"})
        return out
    mean_b = b.mean()
    pct_means = 100.0 * (d7.mean() - mean_b) / mean_b if mean_b != 0 else math.nan
    out.append({"stat_name": "pct_change_of_means", "value": pct_means, "unit": "%",
                "method": pct_method,
                "error": None if mean_b != 0 else "not defined: the mean at baseline is 0"})
    has_pct = b != 0
    per_patient = 100.0 * diff[has_pct] / b[has_pct]
    left_out = int((~has_pct).sum())
    out.append({"stat_name": "median_pct_change",
                "value": float(np.median(per_patient)) if per_patient.size else math.nan,
                "unit": "%", "method": median_method,
                "warning": (f"{left_out} patient(s) with a baseline of 0 left out"
                            if left_out and per_patient.size else None),
                "error": None if per_patient.size else "not defined: every baseline is 0"})
    out.append({"stat_name": "mean_difference", "value": float(diff.mean()), "unit": unit,
                "method": f"mean of per-patient (value at {later_label} − baseline)"})

    if "paired_t" in analysis.tests:
        method = paired_t_method(analysis)
        if n < 2:
            out.append({"stat_name": "p_paired_t", "value": math.nan, "method": method,
                        "error": f"not computed: n = {n}, needs at least 2 pairs"})
        elif np.ptp(diff) == 0:
            out.append({"stat_name": "p_paired_t", "value": math.nan, "method": method,
                        "error": "not computed: all paired differences are equal (no variance)"})
        else:
            res = stats.ttest_rel(b, d7, alternative=analysis.alternative)
            out.append({"stat_name": "t_statistic", "value": float(res.statistic),
                        "method": method})
            out.append({"stat_name": "df", "value": float(res.df), "method": method})
            out.append({"stat_name": "p_paired_t", "value": float(res.pvalue), "method": method})

    if "wilcoxon" in analysis.tests:
        scipy_method, reason = wilcoxon_options(diff, analysis)
        method = wilcoxon_method(scipy_method, analysis)
        # A warning only when zeros or ties force the approximation where the exact
        # distribution was asked for (n above wilcoxon_exact_max_n is the rule, not a caveat).
        warning = (f"normal approximation instead of the exact distribution: {reason}"
                   if scipy_method != "exact" and n <= analysis.wilcoxon_exact_max_n else None)
        nonzero = int(np.count_nonzero(diff))
        if n < 2 or nonzero == 0:
            why = (f"n = {n}, needs at least 2 pairs" if n < 2
                   else "all paired differences are 0")
            out.append({"stat_name": "p_wilcoxon", "value": math.nan, "method": method,
                        "error": f"not computed: {why}"})
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                res = stats.wilcoxon(diff, alternative=analysis.alternative, method=scipy_method,
                                     zero_method=analysis.wilcoxon_zero_method,
                                     correction=analysis.wilcoxon_correction)
            out.append({"stat_name": "w_statistic", "value": float(res.statistic),
                        "method": method, "warning": warning})
            out.append({"stat_name": "p_wilcoxon", "value": float(res.pvalue), "method": method,
                        "warning": warning})
    return out


NOT_RECORDED = "not recorded"


def signed_hours(value: float) -> str:
    """"−24 h", "+168 h", "0 h" (a true minus sign)."""
    return (f"{value:+g}" if value else "0").replace("-", "−") + " h"


def not_recorded_error(domain: str) -> str:
    """The ``error`` of a figure derived from a domain the source does not record."""
    return f"{NOT_RECORDED} at this site: the source has no {DOMAIN_LABELS[domain]}"


def _categorical(rows: _Rows, section, variable, label, levels: pd.Series, order, total: int,
                 method=None, level_words=None):
    counts = levels.value_counts()
    present = list(order)  # always reported, even with a count of 0
    extra = sorted((lvl for lvl in counts.index if lvl not in present),
                   key=lambda lvl: (-counts[lvl], lvl))
    for level in present + extra:
        count = int(counts.get(level, 0))
        shown = (level_words or {}).get(level, level)
        rows.add(section, variable, label, "count", count, level=shown, method=method)
        rows.add(section, variable, label, "percent",
                 100.0 * count / total if total else math.nan, level=shown, unit="%",
                 method=method, error=None if total else "no patients")


def _flag(rows: _Rows, section, variable, label, flags: pd.Series, total: int, *, level=None,
          method=None, missing: str | None = None):
    """Count and percent of patients with a flag; ``missing`` (an error) when the domain it is
    derived from is not recorded: both values empty."""
    if missing:
        rows.add(section, variable, label, "count", None, level=level, method=method,
                 error=missing)
        rows.add(section, variable, label, "percent", None, level=level, unit="%",
                 method=method, error=missing)
        return
    count = int(flags.fillna(False).astype(bool).sum())
    rows.add(section, variable, label, "count", count, level=level, method=method)
    rows.add(section, variable, label, "percent", 100.0 * count / total if total else math.nan,
             level=level, unit="%", method=method, error=None if total else "no patients")


def _numeric(rows: _Rows, section, variable, label, values: pd.Series, unit, method=None,
             statistics=("n", "mean", "sd", "median", "q1", "q3", "min", "max"),
             missing: str | None = None):
    x = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype="float64")
    summary = describe(x)
    for stat_name in statistics:
        value = summary.get(stat_name)
        error = None
        if missing:
            value, error = (0 if stat_name == "n" else None), missing
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            error = "no values" if x.size == 0 else f"not defined for n = {x.size}"
        rows.add(section, variable, label, stat_name, value,
                 unit=None if stat_name == "n" else unit,
                 method=QUANTILE_METHOD if stat_name in ("q1", "q3") else method, error=error)


def flow_rows(rows: _Rows, flow: dict[str, int], study: StudyDefinition) -> None:
    """The CONSORT-style flow: each step's count, and before it the stays or patients excluded
    with the reason (docs/results-format.md). Every step is written; a step the study does not
    apply (no calendar window, no requirement) excludes no one, its ``method`` says
    "not applied", and the flow views leave it out."""
    c = study.cohort
    drug = study.index_drug
    if c.admitted_from or c.admitted_to:
        window = (f"{c.admitted_from.isoformat() if c.admitted_from else 'any date'} to "
                  f"{c.admitted_to.isoformat() if c.admitted_to else 'any date'}")
        calendar = (f"Admitted {window}", f"Admitted outside {window}", None)
    else:
        calendar = ("Admitted at any date", "Admitted outside the calendar window",
                    "not applied: no calendar limit")
    req = c.required_criterion
    if req is not None:
        where = "baseline value" if req.is_marker else f"first {drug} dose"
        requirement = (f"Meeting {req} (at the {where})",
                       f"Not meeting {req} at the {where} (unknown counts as not met)", None)
    else:
        requirement = ("Meeting the entry requirement", "Not meeting the entry requirement",
                       "not applied: no entry requirement")
    steps = [
        ("stays", "PICU stays in the database", None, None),
        ("stays_with_index_drug", f"Stays with {drug} started in the PICU",
         ("excluded_no_index_drug", f"No {drug} started during the PICU stay"), None),
        ("stays_in_age_range", f"Aged {c.age_min_years}–{c.age_max_years} years at PICU admission",
         ("excluded_age", f"Age at PICU admission outside {c.age_min_years}–{c.age_max_years} "
                          f"completed years"), None),
        ("stays_in_calendar_window", calendar[0], ("excluded_calendar", calendar[1]), calendar[2]),
        ("stays_meeting_requirement", requirement[0], ("excluded_requirement", requirement[1]),
         requirement[2]),
        ("cohort", "Patients in the study (first qualifying stay each)"
         if c.first_qualifying_stay_only else "Stays in the study (every qualifying stay)",
         ("excluded_later_stay", "Later qualifying stay of a patient already included"),
         None if c.first_qualifying_stay_only else "not applied: every qualifying stay is kept"),
    ]
    previous = None
    for key, label, exclusion, not_applied in steps:
        value = int(flow.get(key, 0))
        if exclusion is not None and previous is not None:
            ex_key, ex_label = exclusion
            rows.add("flow", ex_key, ex_label, "count", previous - value,
                     method=not_applied or "excluded at this step")
        rows.add("flow", key, label, "count", value, method=not_applied)
        previous = value
    rows.add("flow", "prior_index_drug_exposure",
             f"Of whom had {drug} before the PICU stay (counted, not excluded)", "count",
             int(flow.get("prior_index_drug_exposure", 0)))


def _complete_pairs(chosen: pd.DataFrame, timepoint: str) -> pd.DataFrame:
    """stay_id, variable, baseline, <timepoint> for every stay and marker with both values."""
    sub = chosen[chosen["role"].isin(["baseline", timepoint])]
    wide = sub.pivot_table(index=["stay_id", "variable"], columns="role", values="value",
                           aggfunc="first")
    for role in ("baseline", timepoint):
        if role not in wide.columns:
            wide[role] = np.nan
    return wide.reset_index()


def marker_rows(rows: _Rows, chosen: pd.DataFrame, labels: dict[str, str], total: int,
                study: StudyDefinition, units: dict[str, str]) -> None:
    """Flow counts per marker and comparison, the descriptive statistics, the change and the
    tests of each comparison, and the mixed model over all timepoints."""
    vocab = Vocabulary()
    a = study.analysis
    sem_method = SEM_METHOD if a.sem_ddof == 1 else SEM_METHOD_DDOF0
    stat_methods = {"sem": sem_method, "sd": f"sample SD (divisor n − {a.sem_ddof})"
                    if a.sem_ddof else "population SD (divisor n)",
                    "q1": QUANTILE_METHOD, "q3": QUANTILE_METHOD}
    pairs = {t.name: _complete_pairs(chosen, t.name) for t in study.timepoints}
    for t in study.timepoints:
        wide = pairs[t.name]
        for marker in study.markers.variables:
            w = wide[wide["variable"] == marker]
            has_base = int(w["baseline"].notna().sum())
            complete = int((w["baseline"].notna() & w[t.name].notna()).sum())
            label = vocab.variables[marker].label
            rows.add("flow", f"missing_baseline_{marker}",
                     f"{label}: no baseline value", "count", total - has_base,
                     comparison=t.name, method="excluded from this marker only")
            rows.add("flow", f"missing_timepoint_{marker}",
                     f"{label}: no value at {t.label}", "count", has_base - complete,
                     comparison=t.name, method="excluded from this marker only")
            rows.add("flow", f"analysable_{marker}", f"{label}: baseline and {t.label}",
                     "count", complete, comparison=t.name,
                     method=f"patients with a baseline value and a value at {t.label}")

    for marker in study.markers.variables:
        var = vocab.variables[marker]
        unit = units.get(marker, var.canonical_unit)
        for t in study.timepoints:
            w = pairs[t.name]
            m = w[(w["variable"] == marker) & w["baseline"].notna() & w[t.name].notna()]
            n = len(m)
            for timepoint, column in (("baseline", "baseline"), (t.name, t.name)):
                x = m[column].to_numpy(dtype="float64")
                summary = describe(x, ddof=a.sem_ddof)
                for stat_name in DESCRIPTIVE:
                    value = summary.get(stat_name)
                    error = None
                    if value is None or (isinstance(value, float) and math.isnan(value)):
                        value = None
                        error = ("no patient has both values" if n == 0
                                 else f"not defined for n = {n}")
                    rows.add("marker", marker, var.label, stat_name, value, comparison=t.name,
                             timepoint=timepoint, unit=None if stat_name == "n" else unit,
                             method=stat_methods.get(stat_name), error=error)
            for item in paired_change(m["baseline"].to_numpy(), m[t.name].to_numpy(), a, unit,
                                      t.label):
                rows.add("marker", marker, var.label, item["stat_name"], item["value"],
                         comparison=t.name, unit=item.get("unit"), method=item.get("method"),
                         warning=item.get("warning"), error=item.get("error"))
                if item["stat_name"] == "n":
                    rows.add("marker", marker, var.label, "n_excluded", total - n,
                             comparison=t.name,
                             method=f"patients in the study without a baseline value and a "
                                    f"value at {t.label} (left out of this comparison only)")
        if study.fits_mixed_model:
            mixed_rows(rows, chosen, labels, marker, var.label, unit, study)


def mixed_rows(rows: _Rows, chosen: pd.DataFrame, labels: dict[str, str], marker: str,
               label: str, unit: str, study: StudyDefinition) -> None:
    """The repeated-measures model of one marker: comparison ``all_timepoints``."""
    names = [t.name for t in study.timepoints]
    values = chosen[(chosen["variable"] == marker) & chosen["role"].isin(["baseline", *names])]
    frame = pd.DataFrame({"patient": values["stay_id"].map(labels),
                          "timepoint": values["role"], "value": values["value"]})
    result = mixed.fit(frame, names, {t.name: t.label for t in study.timepoints})
    method = (f"{words.MIXED_MODEL}: random intercept per patient, timepoint a fixed factor "
              f"(baseline the reference), restricted maximum likelihood")
    common = dict(comparison="all_timepoints", method=method)
    error, warning = result["error"] or None, result["warning"] or None
    rows.add("marker", marker, label, "n_patients", result["n_patients"], **common)
    rows.add("marker", marker, label, "n_observations", result["n_observations"], **common)
    for name, label_words in [("baseline", "baseline")] + [(t.name, t.label)
                                                         for t in study.timepoints]:
        est = result["means"].get(name)
        for stat_name in ("mixed_mean", "mixed_mean_se"):
            rows.add("marker", marker, label, stat_name, None if est is None else est[stat_name],
                     timepoint=name, unit=unit, warning=warning,
                     error=error or (None if est is not None else f"no values at {label_words}"),
                     **common)
    for t in study.timepoints:
        est = result["per_timepoint"].get(t.name)
        for stat_name in ("mixed_difference", "mixed_se", "mixed_ci_low", "mixed_ci_high",
                          "p_mixed"):
            value = None if est is None else est[stat_name]
            why = error or (None if est is not None else f"no values at {t.label}")
            rows.add("marker", marker, label, stat_name, value, timepoint=t.name,
                     unit=None if stat_name == "p_mixed" else unit, warning=warning, error=why,
                     **common)
    overall_units = {"mixed_var_patient": f"({unit})²" if unit else None,
                     "mixed_var_residual": f"({unit})²" if unit else None}
    for stat_name in ("mixed_wald_chi2", "mixed_wald_df", "p_mixed_overall",
                      "mixed_var_patient", "mixed_var_residual"):
        value = result["overall"].get(stat_name)
        rows.add("marker", marker, label, stat_name, value, unit=overall_units.get(stat_name),
                 warning=warning, error=error or (None if value is not None else
                                                  "not computed"), **common)


def _cotherapy_given(frames: CohortFrames, cohort_ids: set) -> pd.DataFrame:
    cot = frames.cotherapy
    if cot is None or cot.empty:
        return pd.DataFrame(columns=["stay_id", "drug_class", "in_window", "in_stay"])
    return cot[cot["stay_id"].isin(cohort_ids)]


def analyse(frames: CohortFrames, study: StudyDefinition
            ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The ``results``, ``observations`` and ``patients`` tables (docs/results-format.md)."""
    from hyperinflam.study.listing import patient_listing

    rows = _Rows(study.study.id)
    cohort = frames.cohort
    total = len(cohort)
    labels = patient_labels(cohort)
    cohort_ids = set(cohort["stay_id"])
    recorded = {domain: frames.recorded.get(domain, True) for domain in DOMAIN_LABELS}
    missing = {d: (None if ok else not_recorded_error(d)) for d, ok in recorded.items()}
    drug = study.index_drug

    # -- flow ------------------------------------------------------------------------------
    flow_rows(rows, frames.flow, study)
    values = frames.marker_values
    chosen = values[values["role"].notna() & values["stay_id"].isin(cohort_ids)]

    # -- what the source records (issue: "not recorded" is not "no") -----------------------
    for domain, label in DOMAIN_LABELS.items():
        rows.add("domains", domain, words.capitalised(label), "recorded",
                 1 if recorded[domain] else 0,
                 method="recorded when a load recorded the domain (rows of it, or the site's "
                        "declaration: docs/sources.md); in a database without that record, "
                        "when the source holds at least one such record")

    # -- baseline characteristics (clinical reference §10.1) --------------------------------
    _numeric(rows, "baseline", "age_years", "Age at PICU admission", cohort["age_years"], "years",
             method="(admission − birth date) in days / 365.25")
    _categorical(rows, "baseline", "sex", "Sex", cohort["sex"].fillna("unknown"),
                 ["female", "male"], total)
    if missing["conditions"]:
        _categorical(rows, "baseline", "health_status", "Previously healthy or underlying disease",
                     pd.Series([NOT_RECORDED] * total, dtype="object"), [NOT_RECORDED], total,
                     method=missing["conditions"])
    else:
        health = np.where(cohort["underlying_disease"].fillna(False).astype(bool),
                          "underlying disease", "previously healthy")
        _categorical(rows, "baseline", "health_status", "Previously healthy or underlying disease",
                     pd.Series(health, dtype="object"),
                     ["previously healthy", "underlying disease"], total,
                     method="underlying disease: a recorded pre-existing condition not starting "
                            "after PICU discharge")
    _categorical(rows, "baseline", "admission_reason", "Reason for PICU admission",
                 cohort["admission_reason"].fillna(NOT_RECORDED), [], total)
    _flag(rows, "baseline", "invasive_ventilation", "Invasive mechanical ventilation",
          cohort["invasive_ventilation"], total, method="any time during the PICU stay",
          missing=missing["invasive_ventilation"])
    _flag(rows, "baseline", "vasoactive_infusion", "Vasoactive infusion",
          cohort["vasoactive_infusion"], total, method="any time during the PICU stay",
          missing=missing["vasoactive_infusion"])
    _numeric(rows, "baseline", "weight_kg", "Admission weight", cohort["weight_kg"], "kg")

    # -- index-drug exposure (§9.1, §12.34, §12.39) ---------------------------------------
    exposure = frames.exposure if frames.exposure is not None else pd.DataFrame()
    ex = cohort[["stay_id"]].merge(exposure, on="stay_id", how="left") if total else (
        pd.DataFrame(columns=["stay_id", "days_with_dose", "median_mg_kg_day", "max_mg_kg_day",
                              "routes"]))
    _numeric(rows, "exposure", "hours_admission_to_index",
             f"Hours from PICU admission to the first {drug} dose",
             cohort["hours_admission_to_index"], "h")
    _numeric(rows, "exposure", "median_mg_kg_day",
             f"{words.capitalised(drug)} daily dose, each patient's median",
             ex.get("median_mg_kg_day", pd.Series(dtype=float)), "mg/kg/day",
             method="dose per 24-h period from the first dose, weight per §12.34; periods with "
                    "an unknown dose left out")
    _numeric(rows, "exposure", "max_mg_kg_day",
             f"{words.capitalised(drug)} daily dose, each patient's highest",
             ex.get("max_mg_kg_day", pd.Series(dtype=float)), "mg/kg/day")
    _numeric(rows, "exposure", "days_with_dose", f"Days on which {drug} was given",
             ex.get("days_with_dose", pd.Series(dtype=float)), "days",
             method="24-h periods from the first dose with at least one administration")
    routes = ex.get("routes", pd.Series(dtype=object)).fillna("").map(
        lambda r: words.route_label(r) or NOT_RECORDED)
    _categorical(rows, "exposure", "route", f"Route of {drug}", routes.astype(object), [], total)

    # -- markers ---------------------------------------------------------------------------
    marker_rows(rows, chosen, labels, total, study, frames.units)

    # -- co-therapies (§12.8) --------------------------------------------------------------
    ct = study.cotherapies
    cot = _cotherapy_given(frames, cohort_ids)
    index_class = (Vocabulary().drugs.get(drug) or {}).get("drug_class")
    window_words = (f"from {signed_hours(ct.window_from_hours)} to "
                    f"{signed_hours(ct.window_to_hours)} of the first dose")
    for drug_class in ct.classes:
        given = cot[cot["drug_class"] == drug_class]
        label = words.cotherapy_label(drug_class, drug, index_class)
        window = given.loc[given["in_window"].astype(bool), "stay_id"].nunique()
        err = missing["drugs"]
        for level, count, method in (
                (window_words, window, f"any administration {window_words}"),
                *((("any time in the PICU stay",
                    given.loc[given["in_stay"].astype(bool), "stay_id"].nunique(),
                    "any administration during the PICU stay"),) if ct.any_time_in_stay else ())):
            rows.add("cotherapy", drug_class, label, "count", None if err else count,
                     level=level, method=method, error=err)
            rows.add("cotherapy", drug_class, label, "percent",
                     None if err or not total else 100.0 * count / total, level=level, unit="%",
                     error=err or (None if total else "no patients"))

    # -- safety (§12.33) -------------------------------------------------------------------
    o = study.outcomes
    ev = frames.events[frames.events["stay_id"].isin(cohort_ids)]
    followup = f"within {o.followup_days:g} days"
    for event_type, wanted, label in (
            ("infection", o.infections, f"Infection after the first {drug} dose"),
            ("death", o.deaths, f"Death after the first {drug} dose")):
        if not wanted:
            continue
        e = ev[ev["event_type"] == event_type]
        levels = [("in the PICU stay", e["in_stay"].astype(bool)),
                  (followup, e["within_followup"].astype(bool))]
        if event_type == "death":
            levels.append(("any time", pd.Series(True, index=e.index)))
        for level, mask in levels:
            count = e.loc[mask, "stay_id"].nunique()
            err = missing[event_type]
            rows.add("safety", event_type, label, "count", None if err else count, level=level,
                     method="patients with at least one event", error=err)
            rows.add("safety", event_type, label, "percent",
                     None if err or not total else 100.0 * count / total, level=level, unit="%",
                     error=err or (None if total else "no patients"))

    # -- outcome: PICU length of stay, survival --------------------------------------------
    _numeric(rows, "outcome", "picu_days", "PICU length of stay", cohort["picu_days"], "days",
             method="PICU discharge − admission; stays not yet discharged left out")
    deaths = ev[ev["event_type"] == "death"]
    died_in_stay = set(deaths.loc[deaths["in_stay"].astype(bool), "stay_id"])
    died_followup = set(deaths.loc[deaths["within_followup"].astype(bool), "stay_id"])
    still_in = set(cohort.loc[cohort["discharge_time"].isna(), "stay_id"])
    if missing["death"]:
        picu = pd.Series([NOT_RECORDED] * total, dtype=object)
        alive = pd.Series([NOT_RECORDED] * total, dtype=object)
        order_picu, order_alive = [NOT_RECORDED], [NOT_RECORDED]
    else:
        picu = cohort["stay_id"].map(lambda s: "died in the PICU" if s in died_in_stay
                                     else "still in the PICU" if s in still_in
                                     else "discharged alive").astype(object)
        alive = cohort["stay_id"].map(lambda s: "died" if s in died_followup
                                      else "alive (no death recorded)").astype(object)
        order_picu = ["discharged alive", "died in the PICU"]
        order_alive = ["alive (no death recorded)", "died"]
    _categorical(rows, "outcome", "picu_outcome", "Survival to PICU discharge", picu,
                 order_picu, total, method=missing["death"])
    _categorical(rows, "outcome", "alive_at_followup",
                 f"Survival {o.followup_days:g} days after the first {drug} dose", alive,
                 order_alive, total, method=missing["death"])

    # -- observations ----------------------------------------------------------------------
    obs = values[values["stay_id"].isin(cohort_ids)].copy()
    observations = pd.DataFrame({
        "study": study.study.id,
        "patient": obs["stay_id"].map(labels),
        "variable": obs["variable"],
        "hours_from_index": obs["hours_from_index"].astype("float64"),
        "value": obs["value"].astype("float64"),
        "unit": obs["unit"],
        "role": obs["role"].astype(object).where(obs["role"].notna(), None),
    }, columns=OBSERVATIONS_COLUMNS)
    observations = observations.sort_values(["patient", "variable", "hours_from_index"],
                                            kind="stable").reset_index(drop=True)
    patients = patient_listing(frames, study, labels, recorded)
    return rows.frame(), observations, patients

"""Display views of a :class:`~hyperinflam.study.results.StudyResults`, shared by every renderer.

This module only *looks rows up* in the tidy ``results`` table (docs/results-format.md) and the
per-patient ``patients`` listing and formats them; it never computes a statistic. The terminal
renderer (``terminal.py``) and the HTML report (``html.py``) draw the same views, so the numbers
printed in the terminal and in ``report.html`` are formatted identically, and every word comes
from the results (``label``, ``level``, ``stat_label``, ``method``) or from the study definition
(index drug, timepoints, windows) — never from a renderer.

Number formatting, per statistic (project choices; the clinical reference is silent):

* counts (``count``, ``n``, flow steps): whole numbers, thousands grouped ("1,000");
* scores and other whole-number variables (unit ``points``, counts of criteria or days): at
  their own precision — whole values without decimals, a median between two scores with the
  decimals it needs ("2.5 (2–4)");
* mean ± SEM of a marker: the mean and its SEM share the number of decimals, chosen from the
  larger of the two group means: >= 1000 → 0 decimals ("8,867"), >= 10 → 1, >= 1 → 2, below 1 →
  3 (:func:`decimals_for`); other measured quantities likewise from their own size;
* percentages: one decimal, a true minus sign ("−67.1%");
* p-values: two significant digits ("0.30", "0.052"), "< 0.001" below 0.001.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd

from hyperinflam.study import labels as words
from hyperinflam.study.results import StudyResults

MINUS = "\u2212"
NOT_STATED = "not stated"
NOT_RECORDED = "not recorded"
NO_DATA = "no data"
COHORT_GROUP = "cohort"
ALL_TIMEPOINTS = "all_timepoints"

#: Characteristics-style sections ("characteristic | value" tables), in report order, with their
#: titles; ``{drug}`` is the study's index drug. A section of the results that is not listed here
#: is rendered the same way after these, titled from its name (:func:`section_title`).
SUMMARY_SECTIONS: dict[str, str] = {
    "baseline": "Patients at PICU admission",
    "exposure": "{Drug} exposure",
    "cotherapy": "Co-therapies",
    "safety": "Safety after the first {drug} dose",
    "outcome": "PICU stay and survival",
    "phenotype": "Criteria and scores at the first {drug} dose",
}
#: A note under a characteristics table, for the words its levels use.
SUMMARY_NOTES: dict[str, str] = {
    "phenotype": ("met / not met: the criterion's result with the inputs recorded; "
                  "indeterminate: inputs not recorded could change the result; unknown: too few "
                  "inputs recorded to evaluate it."),
}
#: Sections the report draws in their own way (not as characteristics tables).
SPECIAL_SECTIONS = {"flow", "marker", "domains", "recognition", "recognition_markers"}

#: Variables whose values are whole numbers (scores at their own precision); plus every
#: variable in ``points``.
INTEGER_VARIABLES = {"hlh2004_met_count", "days_with_dose", "prism3"}

# UCUM codes (vocabulary/variables.csv canonical_unit) shown the way clinicians write them.
_UCUM_DISPLAY = {
    "10*3/uL": "×10³/µL",
    "10*9/L": "×10⁹/L",
    "10*6/uL": "×10⁶/µL",
    "/uL": "/µL",
    "ug/L": "µg/L",
    "ug/kg/min": "µg/kg/min",
    "mm[Hg]": "mmHg",
    "Cel": "°C",
    "/min": "/min",
    "{INR}": "",
    "1": "",
    "mg/L{FEU}": "mg/L FEU",
}


# --- small lookups --------------------------------------------------------------------------

def get_path(data: Any, *keys: str, default: Any = None) -> Any:
    """``data[k1][k2]...`` for nested dicts, ``default`` when any level is missing or None."""
    for key in keys:
        if not isinstance(data, dict) or data.get(key) is None:
            return default
        data = data[key]
    return data


def is_missing(value: Any) -> bool:
    """True for None, NaN and empty strings (the tidy tables use all three for "empty")."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        if pd.isna(value):
            return True
    except (TypeError, ValueError):
        return False
    return isinstance(value, str) and value.strip() == ""


def text(value: Any, default: str = "") -> str:
    """A cell of a text column as a string ("" for empty)."""
    return default if is_missing(value) else str(value)


def display_unit(unit: Any) -> str:
    """Canonical (UCUM) unit as printed for clinicians: ``10*3/uL`` → ``×10³/µL``."""
    u = text(unit)
    if u in _UCUM_DISPLAY:
        return _UCUM_DISPLAY[u]
    return u.replace("ug", "µg").replace("uL", "µL").replace("umol", "µmol")


# --- the words of the study definition ------------------------------------------------------

@dataclass(frozen=True)
class Timepoint:
    name: str
    label: str
    target_hours: float
    tolerance_hours: float

    @property
    def days(self) -> float:
        return self.target_hours / 24.0


def timepoints(definition: dict) -> list[Timepoint]:
    """The study's timepoints (definition ``timepoints``; an older file without them: the
    ``[windows]`` day-7 keys; none at all: day 7 at 168 ± 24 h, the founding design)."""
    listed = get_path(definition, "timepoints", default=None)
    if listed:
        return [Timepoint(str(t["name"]), str(t.get("label") or t["name"]),
                          float(t["target_hours"]), float(t.get("tolerance_hours") or 0))
                for t in listed]
    w = get_path(definition, "windows", default={}) or {}
    target = float(w.get("day7_target_hours", 168))
    tol = float(w.get("day7_tolerance_hours", w.get("day7_half_width_hours", 24)))
    from hyperinflam.study.definition import default_timepoint_label, default_timepoint_name

    return [Timepoint(default_timepoint_name(target), default_timepoint_label(target), target, tol)]


def index_drug(definition: dict) -> str:
    """The index drug's name ("the index drug" when the definition does not say)."""
    return str(get_path(definition, "cohort", "index_drug", default="the index drug"))


def fill_words(template: str, definition: dict) -> str:
    """``{drug}`` / ``{Drug}`` in a title → the study's index drug."""
    drug = index_drug(definition)
    return template.replace("{drug}", drug).replace("{Drug}", words.capitalised(drug))


def section_title(section: str, definition: dict) -> str:
    if section in SUMMARY_SECTIONS:
        return fill_words(SUMMARY_SECTIONS[section], definition)
    return words.capitalised(section.replace("_", " "))


def timepoint_label(definition: dict, name: str | None) -> str:
    if not name:
        return ""
    if name == "baseline":
        return "baseline"
    for t in timepoints(definition):
        if t.name == name:
            return t.label
    return name.replace("_", " ")


# --- number formatting ----------------------------------------------------------------------

def decimals_for(magnitude: float | None) -> int:
    """Decimals used for a quantity of this size (see the module docstring)."""
    if magnitude is None or not math.isfinite(magnitude):
        return 1
    m = abs(magnitude)
    if m >= 1000:
        return 0
    if m >= 10:
        return 1
    if m >= 1:
        return 2
    return 3


def own_decimals(values: Iterable[float | None], cap: int = 2) -> int:
    """Decimals a set of whole-number-based values needs: 0 when all are whole, else the fewest
    (up to ``cap``) that show them exactly (a median of 2.5, a quartile of 217.25)."""
    need = 0
    for v in values:
        if v is None or not math.isfinite(v):
            continue
        for d in range(cap + 1):
            if abs(round(v, d) - v) < 1e-9:
                need = max(need, d)
                break
        else:
            need = cap
    return need


def fmt_num(value: float | None, decimals: int | None = None) -> str:
    """A number with grouping of thousands and a true minus sign; "–" when absent."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    d = decimals_for(value) if decimals is None else decimals
    s = f"{value:,.{d}f}"
    if d and float(s.replace(",", "")) == 0:
        s = s.lstrip("-")
    return s.replace("-", MINUS)


def fmt_count(value: float | None) -> str:
    """A count (whole number)."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{int(round(value)):,}"


def fmt_pct(value: float | None, *, signed: bool = False) -> str:
    """A percentage with one decimal: "62.5%", or "−67.1%" / "+4.0%" when ``signed``."""
    if value is None or not math.isfinite(value):
        return "–"
    s = f"{value:+.1f}%" if signed else f"{value:.1f}%"
    return s.replace("-", MINUS)


def fmt_p(p: float | None) -> str:
    """A p-value: two significant digits; "< 0.001" below 0.001."""
    if p is None or not math.isfinite(p):
        return "–"
    if p < 0.001:
        return "< 0.001"
    s = f"{p:#.2g}"
    if "e" in s:  # cannot happen for p >= 0.001
        s = f"{p:.3f}"
    return s


def p_phrase(p: str) -> str:
    """"= 0.030" or "< 0.001" (after "p")."""
    return p if p.startswith("<") or p == "–" else f"= {p}"


def fmt_mean_sem(mean: float | None, sem: float | None, decimals: int) -> str:
    """ "206.0 ± 50.0" (mean and SEM with the same decimals)."""
    if mean is None:
        return "–"
    if sem is None:
        return fmt_num(mean, decimals)
    return f"{fmt_num(mean, decimals)} ± {fmt_num(sem, decimals)}"


# --- row lookups ----------------------------------------------------------------------------

TEXT_COLUMNS = ("section", "group", "variable", "label", "level", "comparison", "timepoint",
                "stat_name", "stat_label", "unit", "method", "warning", "error")


class ResultsIndex:
    """Read-only lookups in ``StudyResults.results`` (never computes a statistic)."""

    def __init__(self, results: StudyResults):
        self.sr = results
        r = results.results.copy()
        for col in TEXT_COLUMNS:
            if col not in r.columns:
                r[col] = None
            r[col] = pd.Series([None if is_missing(v) else str(v) for v in r[col]],
                               index=r.index, dtype=object)
        if "value" not in r.columns:
            r["value"] = float("nan")
        r["group"] = r["group"].fillna(COHORT_GROUP)
        self.r = r
        self.definition = results.definition or {}

    def rows(self, section: str, **eq: str | None) -> pd.DataFrame:
        """Rows of a section; keyword filters compare a column to a value (None = empty)."""
        r = self.r[self.r["section"] == section]
        for col, value in eq.items():
            r = r[r[col].isna()] if value is None else r[r[col] == value]
        return r

    def row(self, section: str, variable: str, stat_name: str, **eq: str | None) -> dict | None:
        r = self.rows(section, variable=variable, stat_name=stat_name, **eq)
        return None if r.empty else r.iloc[0].to_dict()

    def value(self, section: str, variable: str, stat_name: str, *,
              comparison: str | None = None, timepoint: str | None = None,
              level: str | None = None, group: str = COHORT_GROUP) -> float | None:
        """One value, or None (absent, or empty because it could not be computed)."""
        r = self.rows(section, variable=variable, stat_name=stat_name, comparison=comparison,
                      timepoint=timepoint, level=level, group=group)
        vals = pd.to_numeric(r["value"], errors="coerce")
        if vals.empty or pd.isna(vals.iloc[0]):
            return None
        return float(vals.iloc[0])

    def first_text(self, section: str, variable: str, column: str, **eq: str | None) -> str:
        r = self.rows(section, variable=variable, **eq)
        vals = r[column].dropna()
        return "" if vals.empty else str(vals.iloc[0])

    def variables(self, section: str) -> list[str]:
        """Variables of a section in the order they first appear in the table."""
        return list(dict.fromkeys(self.rows(section)["variable"].dropna()))

    def sections(self) -> list[str]:
        return list(dict.fromkeys(self.r["section"].dropna()))

    def groups(self, section: str) -> list[str]:
        gs = list(dict.fromkeys(self.rows(section)["group"].dropna()))
        if COHORT_GROUP in gs:  # the whole cohort first
            gs.remove(COHORT_GROUP)
            gs.insert(0, COHORT_GROUP)
        return gs


def _error_cell(error: str | None) -> str:
    """What a cell shows for a statistic that could not be computed."""
    if error and error.startswith(NOT_RECORDED):
        return NOT_RECORDED
    return "–"


# --- markers --------------------------------------------------------------------------------

@dataclass
class MarkerRow:
    """One line of the marker table: a marker compared between baseline and one timepoint
    (clinical reference §10.1, §10.4)."""

    variable: str
    label: str
    short_label: str
    unit: str  # canonical unit as stored (UCUM)
    comparison: str  # the timepoint's name
    comparison_label: str  # its words ("day 7")
    n: float | None
    n_excluded: float | None
    baseline_mean: float | None
    baseline_sem: float | None
    later_mean: float | None
    later_sem: float | None
    pct_change_of_means: float | None
    median_pct_change: float | None
    p_paired_t: float | None
    p_wilcoxon: float | None
    notes: list[str] = field(default_factory=list)  # warnings and errors, in words

    @property
    def decimals(self) -> int:
        means = [abs(m) for m in (self.baseline_mean, self.later_mean) if m is not None]
        return decimals_for(max(means) if means else None)

    @property
    def unit_display(self) -> str:
        return display_unit(self.unit)

    @property
    def label_with_unit(self) -> str:
        return f"{self.label} ({self.unit_display})" if self.unit_display else self.label

    @property
    def cells(self) -> dict[str, str]:
        """The formatted cells (same strings in the terminal and the HTML report)."""
        d = self.decimals
        return {
            "marker": self.label_with_unit,
            "n": fmt_count(self.n),
            "baseline": fmt_mean_sem(self.baseline_mean, self.baseline_sem, d),
            "later": fmt_mean_sem(self.later_mean, self.later_sem, d),
            "pct_change_of_means": fmt_pct(self.pct_change_of_means, signed=True),
            "median_pct_change": fmt_pct(self.median_pct_change, signed=True),
            "p_paired_t": fmt_p(self.p_paired_t),
            "p_wilcoxon": fmt_p(self.p_wilcoxon),
        }


def marker_order(results: StudyResults, idx: ResultsIndex | None = None) -> list[str]:
    """Markers in the order of the definition (``markers.variables``), then any others found in
    the ``marker`` section or in ``observations``."""
    idx = idx or ResultsIndex(results)
    declared = get_path(results.definition, "markers", "variables", default=[]) or []
    found = idx.variables("marker")
    obs = results.observations
    if obs is not None and "variable" in obs.columns:
        found += [v for v in dict.fromkeys(obs["variable"].dropna().astype(str))]
    return list(dict.fromkeys([str(v) for v in declared] + found))


def _short_labels() -> dict[str, str]:
    from hyperinflam.vocabulary import load

    return {name: v.short_label for name, v in load().variables.items()}


def marker_rows(results: StudyResults, idx: ResultsIndex | None = None,
                group: str = COHORT_GROUP) -> list[MarkerRow]:
    """The marker table, one row per marker and timepoint (comparison), looked up in
    ``results`` (section ``marker``)."""
    idx = idx or ResultsIndex(results)
    short = _short_labels()
    out = []
    tps = timepoints(idx.definition)
    for var in marker_order(results, idx):
        mrows = idx.rows("marker", variable=var, group=group)
        obs_unit = ""
        obs = results.observations
        if obs is not None and not obs.empty and "unit" in obs.columns:
            units = obs.loc[obs["variable"] == var, "unit"].dropna()
            obs_unit = str(units.iloc[0]) if not units.empty else ""
        units = mrows.loc[mrows["stat_name"] == "mean", "unit"].dropna()
        label = mrows["label"].dropna()
        for t in tps:
            def v(stat, tp=None):
                return idx.value("marker", var, stat, comparison=t.name, timepoint=tp,
                                 group=group)

            crows = mrows[(mrows["comparison"] == t.name) & mrows["timepoint"].isna()]
            notes = []
            for r in crows.to_dict("records"):
                if r["stat_name"] in ("p_paired_t", "p_wilcoxon"):
                    if text(r["error"]):
                        notes.append(text(r["error"]))  # the same reason for both tests
                    if text(r["warning"]):
                        notes.append(f"{text(r['stat_label'])}: {text(r['warning'])}")
            out.append(MarkerRow(
                variable=var,
                label=str(label.iloc[0]) if not label.empty else var,
                short_label=short.get(var, str(label.iloc[0]) if not label.empty else var),
                unit=str(units.iloc[0]) if not units.empty else obs_unit,
                comparison=t.name, comparison_label=t.label,
                n=v("n"), n_excluded=v("n_excluded"),
                baseline_mean=v("mean", "baseline"), baseline_sem=v("sem", "baseline"),
                later_mean=v("mean", t.name), later_sem=v("sem", t.name),
                pct_change_of_means=v("pct_change_of_means"),
                median_pct_change=v("median_pct_change"),
                p_paired_t=v("p_paired_t"), p_wilcoxon=v("p_wilcoxon"),
                notes=list(dict.fromkeys(notes)),
            ))
    return out


def marker_notes(rows: list[MarkerRow], *, short: bool = False) -> list[str]:
    """The reasons and caveats of the marker table, each once: "CRP (day 2, day 4): not
    computed: n = 0, needs at least 2 pairs"."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        for note in r.notes:
            grouped.setdefault((r.short_label if short else r.label, note), []).append(
                r.comparison_label)
    several = len({r.comparison for r in rows}) > 1
    return [f"{name} ({', '.join(tps)}): {note}" if several else f"{name}: {note}"
            for (name, note), tps in grouped.items()]


def and_join(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    items = [i for i in items if i]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items \
        else ""


@dataclass
class MixedRow:
    """One line of the repeated-measures table: a marker at one timepoint vs baseline."""

    variable: str
    label: str
    unit: str
    timepoint: str
    timepoint_label: str
    n_patients: float | None
    n_observations: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    p_overall: float | None
    warning: str
    error: str

    decimals: int | None = None  # shared by the marker's rows (set by mixed_rows)

    @property
    def cells(self) -> dict[str, str]:
        d = self.decimals if self.decimals is not None else decimals_for(
            max((abs(x) for x in (self.difference, self.ci_low, self.ci_high) if x is not None),
                default=None))
        diff = "–" if self.difference is None else (
            f"{fmt_num(self.difference, d)} ({fmt_num(self.ci_low, d)} to "
            f"{fmt_num(self.ci_high, d)})")
        return {"marker": f"{self.label} ({display_unit(self.unit)})" if display_unit(self.unit)
                else self.label,
                "n": f"{fmt_count(self.n_patients)} / {fmt_count(self.n_observations)}",
                "difference": diff, "p": fmt_p(self.p), "p_overall": fmt_p(self.p_overall)}


def mixed_rows(results: StudyResults, idx: ResultsIndex | None = None) -> list[MixedRow]:
    """The mixed model's rows (comparison ``all_timepoints``), empty when it was not fitted."""
    idx = idx or ResultsIndex(results)
    out = []
    for var in marker_order(results, idx):
        mrows = idx.rows("marker", variable=var, comparison=ALL_TIMEPOINTS)
        if mrows.empty:
            continue
        label = next(iter(mrows["label"].dropna()), var)
        unit = next(iter(mrows.loc[mrows["stat_name"] == "mixed_difference", "unit"].dropna()), "")
        overall = idx.row("marker", var, "p_mixed_overall", comparison=ALL_TIMEPOINTS,
                          timepoint=None) or {}
        for t in timepoints(idx.definition):
            def v(stat, tp=t.name):
                return idx.value("marker", var, stat, comparison=ALL_TIMEPOINTS, timepoint=tp)

            r = idx.row("marker", var, "mixed_difference", comparison=ALL_TIMEPOINTS,
                        timepoint=t.name) or {}
            out.append(MixedRow(
                variable=var, label=label, unit=unit, timepoint=t.name, timepoint_label=t.label,
                n_patients=v("n_patients", None), n_observations=v("n_observations", None),
                difference=v("mixed_difference"), ci_low=v("mixed_ci_low"),
                ci_high=v("mixed_ci_high"), p=v("p_mixed"),
                p_overall=v("p_mixed_overall", None),
                warning=text(r.get("warning") or overall.get("warning")),
                error=text(r.get("error") or overall.get("error"))))
        mine = [m for m in out if m.variable == var]
        biggest = max((abs(x) for m in mine for x in (m.difference, m.ci_low, m.ci_high)
                       if x is not None), default=None)
        for m in mine:
            m.decimals = decimals_for(biggest)
    return out


def mixed_means(results: StudyResults, variable: str,
                idx: ResultsIndex | None = None) -> dict[str, tuple[float, float | None]]:
    """The model's mean ± SE at baseline and each timepoint of a marker (for the figure)."""
    idx = idx or ResultsIndex(results)
    out = {}
    for name in ["baseline", *[t.name for t in timepoints(idx.definition)]]:
        mean = idx.value("marker", variable, "mixed_mean", comparison=ALL_TIMEPOINTS,
                         timepoint=name)
        if mean is not None:
            out[name] = (mean, idx.value("marker", variable, "mixed_mean_se",
                                         comparison=ALL_TIMEPOINTS, timepoint=name))
    return out


# --- flow -----------------------------------------------------------------------------------

@dataclass
class FlowStep:
    variable: str
    label: str
    count: float | None
    excluded: "FlowStep | None" = None  # the exclusion before this step, with its reason


@dataclass
class FlowMarker:
    label: str
    analysable: float | None
    missing_baseline: float | None
    missing_timepoint: float | None


@dataclass
class FlowAnalysed:
    timepoint: str
    label: str
    markers: list[FlowMarker]


@dataclass
class Flow:
    steps: list[FlowStep]
    note: FlowStep | None  # counted, not excluded (prior exposure)
    analysed: list[FlowAnalysed]

    @property
    def empty(self) -> bool:
        return not self.steps


def _count(idx: ResultsIndex, var: str, **eq) -> float | None:
    for stat in ("count", "n"):
        val = idx.value("flow", var, stat, **eq)
        if val is not None:
            return val
    return None


def flow(results: StudyResults, idx: ResultsIndex | None = None) -> Flow:
    """The CONSORT-style flow from section ``flow``: the steps the study applies, each with the
    exclusion before it, the counted-not-excluded note, and the patients analysed per timepoint
    and marker."""
    idx = idx or ResultsIndex(results)
    r = idx.rows("flow", comparison=None)
    steps: list[FlowStep] = []
    pending: FlowStep | None = None
    note = None
    for _, row in r.drop_duplicates("variable").iterrows():
        var = row["variable"]
        if var.startswith(("analysable_", "missing_")):
            continue
        step = FlowStep(var, text(row["label"], var), _count(idx, var, comparison=None))
        if text(row["method"]).startswith("not applied"):
            pending = None
            continue
        if var.startswith("excluded_"):
            pending = step
        elif var == "prior_index_drug_exposure":
            note = step
        else:
            step.excluded = pending
            pending = None
            steps.append(step)
    analysed = []
    markers = marker_order(results, idx)
    for t in timepoints(idx.definition):
        items = []
        for m in markers:
            a = idx.row("flow", f"analysable_{m}", "count", comparison=t.name)
            if a is None:
                continue
            lab = text(idx.first_text("marker", m, "label")) or text(a.get("label")).split(":")[0]
            items.append(FlowMarker(
                lab, _count(idx, f"analysable_{m}", comparison=t.name),
                _count(idx, f"missing_baseline_{m}", comparison=t.name),
                _count(idx, f"missing_timepoint_{m}", comparison=t.name)))
        if items:
            analysed.append(FlowAnalysed(t.name, t.label, items))
    return Flow(steps, note, analysed)


def cohort_size(results: StudyResults, idx: ResultsIndex | None = None) -> float | None:
    idx = idx or ResultsIndex(results)
    return _count(idx, "cohort", comparison=None)


# --- characteristics tables -----------------------------------------------------------------

@dataclass
class SummaryLine:
    """One line of a characteristics-style table: a label and one formatted cell per group."""

    label: str
    cells: list[str]
    indent: bool = False  # a level under its variable
    heading: bool = False  # a variable whose levels follow


@dataclass
class SummaryTable:
    section: str
    title: str
    groups: list[str]
    lines: list[SummaryLine] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_KNOWN_STATS = {"count", "percent", "n", "mean", "sd", "sem", "median", "q1", "q3", "min", "max",
                "recorded"}


def _cell(rows: pd.DataFrame, variable: str) -> str:
    """Format the statistics of one (variable, level, timepoint, group) as one cell."""
    if rows.empty:
        return "–"
    stats: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    unit = ""
    for _, row in rows.iterrows():
        val = pd.to_numeric(row["value"], errors="coerce")
        stats.setdefault(row["stat_name"], None if pd.isna(val) else float(val))
        if row["error"]:
            errors.setdefault(row["stat_name"], row["error"])
        if row["stat_name"] in ("mean", "median") and row["unit"]:
            unit = display_unit(row["unit"])
    if any(e.startswith(NOT_RECORDED) for e in errors.values()):
        return NOT_RECORDED
    integer = variable in INTEGER_VARIABLES or unit == "points"

    def one(s):
        return stats.get(s)

    parts = []
    if "count" in stats:
        c = fmt_count(one("count"))
        parts.append(f"{c} ({fmt_pct(one('percent'))})" if one("percent") is not None else c)
    if "median" in stats:
        if one("median") is None:
            parts.append(NO_DATA if (one("n") in (0, None)) else "–")
        else:
            if integer:  # each number at its own precision: "2.5 (2–4)", "151 (126.5–189.5)"
                def num(x):
                    return fmt_num(x, own_decimals([x]))
            else:
                d = 1 if unit == "h" else decimals_for(one("median"))  # hours: to 6 minutes

                def num(x):
                    return fmt_num(x, d)
            s = num(one("median"))
            if one("q1") is not None and one("q3") is not None:
                # "−23.5 to −7.3", not "−23.5–−7.3"
                dash = " to " if min(one("q1"), one("q3")) < 0 else "–"
                s += f" ({num(one('q1'))}{dash}{num(one('q3'))})"
            elif one("min") is not None and one("max") is not None:
                s += f" (range {num(one('min'))}–{num(one('max'))})"
            parts.append(s + (f" {unit}" if unit else ""))
    if "mean" in stats and one("mean") is not None and one("median") is None:
        # a characteristic summarised both ways is shown as median (quartiles) only
        d = decimals_for(one("mean"))
        spread = one("sd") if "sd" in stats else one("sem")
        sym = "SD" if "sd" in stats else "SEM"
        s = fmt_num(one("mean"), d)
        if spread is not None:
            s += f" ± {fmt_num(spread, d)} ({sym})"
        parts.append(s + (f" {unit}" if unit else ""))
    if "n" in stats and not parts:
        parts.append(f"n = {fmt_count(one('n'))}")
    for s, val in stats.items():  # anything else, named by its stat_label
        if s not in _KNOWN_STATS:
            lab = next(iter(rows.loc[rows["stat_name"] == s, "stat_label"].dropna()), s)
            parts.append(f"{lab} {fmt_p(val) if s.startswith('p_') else fmt_num(val)}")
    return "; ".join(p for p in parts if p) or "–"


def summary_table(results: StudyResults, section: str,
                  idx: ResultsIndex | None = None) -> SummaryTable:
    """A characteristics-style table of a section: categorical variables as "count (percent)"
    per level, continuous ones as "median (Q1–Q3) unit", a domain not recorded as
    "not recorded"; ``notes`` holds each row's warning, once."""
    idx = idx or ResultsIndex(results)
    groups = idx.groups(section)
    table = SummaryTable(section, section_title(section, idx.definition), groups)
    sec = idx.rows(section)
    notes = []
    for var in idx.variables(section):
        vrows = sec[sec["variable"] == var]
        label = next(iter(vrows["label"].dropna()), None) or var.replace("_", " ")
        for w in vrows["warning"].dropna():
            notes.append(f"{label}: {w}")
        keys = list(dict.fromkeys(
            (None if is_missing(lv) else lv, None if is_missing(tp) else tp)
            for lv, tp in zip(vrows["level"], vrows["timepoint"])))
        with_level = [k for k in keys if k[0] is not None]
        plain = [k for k in keys if k[0] is None]

        def cells_for(level, timepoint):
            sub = vrows[(vrows["level"].isna() if level is None else vrows["level"] == level)
                        & (vrows["timepoint"].isna() if timepoint is None
                           else vrows["timepoint"] == timepoint)]
            return [_cell(sub[sub["group"] == g], var) for g in groups]

        for level, tp in plain:
            lab = label if tp is None else f"{label} ({timepoint_label(idx.definition, tp)})"
            table.lines.append(SummaryLine(lab, cells_for(level, tp)))
        if with_level:
            if not plain:
                table.lines.append(SummaryLine(label, ["" for _ in groups], heading=True))
            for level, tp in with_level:
                lab = level if tp is None else f"{level} ({timepoint_label(idx.definition, tp)})"
                table.lines.append(SummaryLine(lab, cells_for(level, tp), indent=True))
    table.notes = list(dict.fromkeys(notes + ([SUMMARY_NOTES[section].rstrip(".")]
                                              if section in SUMMARY_NOTES else [])))
    return table


def summary_sections(results: StudyResults, idx: ResultsIndex | None = None) -> list[str]:
    """The characteristics-style sections present in the results, in report order: the known
    ones (:data:`SUMMARY_SECTIONS`) first, then any other section the results hold (a section
    added by another analysis is shown without a change here)."""
    idx = idx or ResultsIndex(results)
    present = idx.sections()
    known = [s for s in SUMMARY_SECTIONS if s in present]
    return known + [s for s in present if s not in SUMMARY_SECTIONS and s not in SPECIAL_SECTIONS]


# --- the per-patient listing ----------------------------------------------------------------

def _yes_no(value: Any) -> str:
    if is_missing(value):
        return NOT_RECORDED
    if isinstance(value, str):
        return {"true": "yes", "false": "no"}.get(value.lower(), value)
    return "yes" if bool(value) else "no"


def _days(value: Any) -> str:
    return "" if is_missing(value) else f"day {fmt_num(float(value), 1)}"


@dataclass
class Listing:
    headers: list[str]
    rows: list[list[str]]
    note: str


def _cotherapy_header(results: StudyResults, drug_class: str) -> str:
    """The co-therapy's label as the results write it ("... other than dexamethasone")."""
    r = results.results
    rows = r[(r["section"] == "cotherapy") & (r["variable"] == drug_class)]["label"].dropna()
    return str(rows.iloc[0]) if not rows.empty else words.drug_class_label(drug_class)


def _recognition_cell(r: dict) -> str:
    """"15.6 (HScore ≥ 169)", "−12.4 (MAS-2016)", "none met"."""
    if is_missing(r.get("hours_recognition_to_index")):
        return "none met"
    cell = fmt_num(float(r["hours_recognition_to_index"]), 1)
    first = text(r.get("first_phenotype_criterion"))
    return f"{cell} ({first})" if first else cell


def listing(results: StudyResults) -> Listing:
    """The per-patient listing (``StudyResults.patients``) as labelled, formatted cells."""
    d = results.definition or {}
    drug = index_drug(d)
    p = results.patients if results.patients is not None else pd.DataFrame()
    classes = [c.removeprefix("cotherapy_") for c in p.columns if c.startswith("cotherapy_")]
    recognised = "hours_recognition_to_index" in p.columns and "start_group" in p.columns and (
        p["start_group"].notna().any())
    headers = (["Patient", "Age (years)", "Sex", "Underlying disease", "Reason for PICU admission",
                "PRISM III", f"Hours from PICU admission to first {drug}",
                *([f"Hours from recognition to first {drug} (criterion met first)"]
                  if recognised else []),
                f"{words.capitalised(drug)} mg/kg/day, median (highest)", "Route",
                f"Days with {drug}"]
               + [_cotherapy_header(results, c) for c in classes]
               + ["Invasive ventilation", "Vasoactive infusion",
                  f"Infection after first {drug}", "PICU days", "Outcome"])
    rows = []
    for r in p.to_dict("records"):
        health = text(r.get("health_status"))
        prism = (text(r.get("prism3_source")) or "") if is_missing(r.get("prism3")) else (
            fmt_num(float(r["prism3"]), own_decimals([float(r["prism3"])]))
            + (f" ({r['prism3_source']})" if text(r.get("prism3_source")) else ""))
        dose = "" if is_missing(r.get("index_drug_mg_kg_day")) else fmt_num(
            float(r["index_drug_mg_kg_day"]), 1)
        if dose and not is_missing(r.get("index_drug_max_mg_kg_day")) and abs(
                float(r["index_drug_max_mg_kg_day"]) - float(r["index_drug_mg_kg_day"])) > 0.05:
            dose += f" ({fmt_num(float(r['index_drug_max_mg_kg_day']), 1)})"
        infection = _yes_no(r.get("infection_after_index"))
        if infection == "yes" and not is_missing(r.get("infection_days_from_index")):
            infection += f", {_days(r['infection_days_from_index'])}"
        outcome = text(r.get("outcome"))
        if "died" in outcome and not is_missing(r.get("death_days_from_index")):
            outcome += f", {_days(r['death_days_from_index'])} after the first dose"
        rows.append([
            text(r.get("patient")),
            "" if is_missing(r.get("age_years")) else fmt_num(float(r["age_years"]), 1),
            text(r.get("sex")),
            NOT_RECORDED if not health else ("yes" if health == "underlying disease" else
                                             "no (previously healthy)"),
            text(r.get("admission_reason"), NOT_RECORDED),
            prism or NOT_RECORDED,
            "" if is_missing(r.get("hours_admission_to_index")) else fmt_num(
                float(r["hours_admission_to_index"]), 1),
            *([_recognition_cell(r)] if recognised else []),
            dose or "unknown",
            text(r.get("index_drug_route"), NOT_RECORDED),
            "" if is_missing(r.get("index_drug_days")) else fmt_count(float(r["index_drug_days"])),
            *[_yes_no(r.get(f"cotherapy_{c}")) for c in classes],
            _yes_no(r.get("invasive_ventilation")),
            _yes_no(r.get("vasoactive_infusion")),
            infection,
            "" if is_missing(r.get("picu_days")) else fmt_num(float(r["picu_days"]), 1),
            outcome,
        ])
    ct = get_path(d, "cotherapies", default={}) or {}
    lo, hi = ct.get("window_from_hours", -24), ct.get("window_to_hours", 168)
    note = (f"Pseudonymised patients (P01, ... by time of the first {drug} dose). Co-therapies: "
            f"any administration from {fmt_num(float(lo), 0)} h to {fmt_num(float(hi), 0)} h of "
            f"the first {drug} dose. Dose: per 24-hour period from the first dose; \"unknown\" "
            f"when the dose or the weight is not recorded. \"{NOT_RECORDED}\": the source does "
            f"not record it."
            + (f" Recognition: the first time a phenotype criterion was met in the PICU stay; "
               f"negative hours: {drug} was given first." if recognised else ""))
    return Listing(headers, rows, note)


# --- secondary analysis: time from recognition to treatment --------------------------------

RECOGNITION_SECTION = "recognition"
RECOGNITION_MARKERS_SECTION = "recognition_markers"
EARLY_GROUP, LATE_GROUP, BETWEEN_GROUP = "early_start", "late_start", "early_vs_late"


@dataclass
class GroupChange:
    """One group's baseline → timepoint change of a marker (patients with both values)."""

    n: str
    change: str  # "205.6 ± 29.5 → 64.4 ± 8.8"
    median_pct_change: str


@dataclass
class RecognitionMarkerLine:
    label: str  # the marker with its unit, on its first line only
    timepoint_label: str
    early: GroupChange
    late: GroupChange
    p: str
    note: str  # why the test was not computed, in words


@dataclass
class RecognitionView:
    title: str
    table: SummaryTable
    group_titles: dict[str, str]
    lines: list[RecognitionMarkerLine]
    notes: list[str]
    cut_hours: float
    anchor: str  # "recognition" or "picu_admission"

    @property
    def empty(self) -> bool:
        return not self.table.lines


def recognition_title(definition: dict) -> str:
    return (f"Secondary analysis: time from recognition to the first {index_drug(definition)} "
            f"dose")


def recognition_view(results: StudyResults, idx: ResultsIndex | None = None
                     ) -> RecognitionView | None:
    """The secondary analysis's tables (sections ``recognition`` and ``recognition_markers``),
    None when the results hold neither."""
    idx = idx or ResultsIndex(results)
    if idx.rows(RECOGNITION_SECTION).empty:
        return None
    d = idx.definition
    cut = float(get_path(d, "recognition", "early_start_cut_hours", default=120.0) or 120.0)
    anchor = str(get_path(d, "recognition", "early_start_from", default="recognition"))
    table = summary_table(results, RECOGNITION_SECTION, idx)
    table.title = "Recognition, the phenotype criterion met first, and the delay to the first dose"
    titles = {EARLY_GROUP: f"Early start (≤ {fmt_num(cut, own_decimals([cut]))} h)",
              LATE_GROUP: f"Late start (> {fmt_num(cut, own_decimals([cut]))} h)"}
    lines: list[RecognitionMarkerLine] = []
    notes: list[str] = []
    rows = idx.rows(RECOGNITION_MARKERS_SECTION)
    short = _short_labels()
    for var in marker_order(results, idx):
        vrows = rows[rows["variable"] == var]
        if vrows.empty:
            continue
        unit = display_unit(next(iter(vrows.loc[vrows["stat_name"] == "mean", "unit"].dropna()),
                                 ""))
        label = short.get(var, text(next(iter(vrows["label"].dropna()), var)))
        first = True
        for t in timepoints(d):
            def v(stat, group, tp=None):
                return idx.value(RECOGNITION_MARKERS_SECTION, var, stat, comparison=t.name,
                                 timepoint=tp, group=group)

            means = [abs(x) for g in (EARLY_GROUP, LATE_GROUP) for tp in ("baseline", t.name)
                     if (x := v("mean", g, tp)) is not None]
            dec = decimals_for(max(means) if means else None)

            def group_change(g):
                n = v("n", g)
                if not n:
                    return GroupChange(fmt_count(n), "–", "–")
                return GroupChange(
                    fmt_count(n),
                    f"{fmt_mean_sem(v('mean', g, 'baseline'), v('sem', g, 'baseline'), dec)} → "
                    f"{fmt_mean_sem(v('mean', g, t.name), v('sem', g, t.name), dec)}",
                    fmt_pct(v("median_pct_change", g), signed=True))

            test = idx.row(RECOGNITION_MARKERS_SECTION, var, "p_mann_whitney",
                           comparison=t.name, group=BETWEEN_GROUP) or {}
            note = text(test.get("error"))
            if note:
                notes.append(note)
            lines.append(RecognitionMarkerLine(
                label=(f"{label} ({unit})" if unit else label) if first else "",
                timepoint_label=t.label, early=group_change(EARLY_GROUP),
                late=group_change(LATE_GROUP), p=fmt_p(v("p_mann_whitney", BETWEEN_GROUP)),
                note=note))
            first = False
    notes = list(dict.fromkeys(notes))
    if lines and all(line.early.n in ("0", "–") and line.late.n in ("0", "–") for line in lines):
        # nobody with both values in either group: one sentence, not a table of dashes
        lines = []
        notes = ["No patient of the early or the late start group has a baseline value and a "
                 "value at a timepoint of any marker: no comparison by group"]
    return RecognitionView(recognition_title(d), table, titles, lines, notes, cut, anchor)


# --- published vs this site -----------------------------------------------------------------

@dataclass
class PublishedLine:
    label: str
    published: str
    site: str
    note: str


def _site_cell(idx: ResultsIndex, row: dict) -> str:
    where = {k: row.get(k) for k in ("level", "comparison", "timepoint")}
    section, variable, stat = row["section"], row["variable"], row["stat_name"]
    if stat == "mean_sem":
        mean = idx.value(section, variable, "mean", **where)
        sem = idx.value(section, variable, "sem", **where)
        return fmt_mean_sem(mean, sem, decimals_for(mean))
    if stat == "count_percent":
        r = idx.row(section, variable, "count", **where)
        if r is not None and text(r.get("error")).startswith(NOT_RECORDED):
            return NOT_RECORDED
        count = idx.value(section, variable, "count", **where)
        pct = idx.value(section, variable, "percent", **where)
        n = idx.value("flow", "cohort", "count")
        if count is None:
            return "–"
        return f"{fmt_count(count)}/{fmt_count(n)} ({fmt_pct(pct)})" if n else fmt_count(count)
    r = idx.row(section, variable, stat, **where)
    if r is None:
        return "–"
    if text(r.get("error")):
        return _error_cell(r["error"])
    value = idx.value(section, variable, stat, **where)
    if stat.startswith("p_"):
        return fmt_p(value)
    if stat in ("count", "n"):
        return fmt_count(value)
    if stat in ("percent", "pct_change_of_means", "median_pct_change"):
        return fmt_pct(value, signed=stat != "percent")
    integer = variable in INTEGER_VARIABLES or text(r.get("unit")) == "points"
    d = own_decimals([value]) if integer else decimals_for(value)
    unit = display_unit(r.get("unit"))
    return fmt_num(value, d) + (f" {unit}" if unit and unit != "%" else "")


def published(results: StudyResults, idx: ResultsIndex | None = None) -> tuple[str, list[PublishedLine]]:
    """(citation, lines) of "published vs this site", from the definition's ``published``
    section and the results; no lines when the study names no published reference."""
    idx = idx or ResultsIndex(results)
    pub = get_path(idx.definition, "published", default=None)
    if not pub:
        return "", []
    lines = [PublishedLine(text(r.get("label")), text(r.get("published")), _site_cell(idx, r),
                           text(r.get("note"))) for r in pub.get("rows") or []]
    return text(pub.get("citation")), lines


# --- limitations ----------------------------------------------------------------------------

SMALL_STUDY_N = 10


def limitations(results: StudyResults, idx: ResultsIndex | None = None) -> list[str]:
    """The limitations paragraph, sentence by sentence, from the data: the design, the number
    of patients, the domains the source does not record, markers with few pairs, scores whose
    authors count missing inputs as normal, adult-derived scores, approximate tests."""
    idx = idx or ResultsIndex(results)
    d = idx.definition
    drug = index_drug(d)
    n = cohort_size(results, idx)
    out = [f"Observational study without a control group: changes after the first {drug} dose "
           f"cannot be attributed to {drug}, and co-therapies given at the same time may "
           f"contribute."]
    if not n:
        out.append("No patient met the study's rules: there is nothing to estimate.")
    elif n < SMALL_STUDY_N:
        out.append(f"Only {fmt_count(n)} patient{'s' if n != 1 else ''} (fewer than "
                   f"{SMALL_STUDY_N}): estimates are imprecise and the tests have little power; "
                   f"a p-value above 0.05 does not show that nothing changed.")
    absent = [text(r["label"]).lower() for _, r in idx.rows("domains").iterrows()
              if r["stat_name"] == "recorded" and pd.to_numeric(r["value"], errors="coerce") == 0]
    if absent:
        out.append(f"The source records no {', '.join(absent)}: figures derived from them are "
                   f"shown as \"{NOT_RECORDED}\", not as absent.")
    few: dict[str, list[str]] = {}
    for m in marker_rows(results, idx):
        if n and m.n is not None and m.n < n / 2:
            few.setdefault(m.label, []).append(f"{fmt_count(m.n)} at {m.comparison_label}")
    if few:
        out.append(f"Fewer than half of the {fmt_count(n)} patients had a baseline value and a "
                   f"later value for " + "; ".join(f"{k} ({', '.join(v)})"
                                                   for k, v in few.items())
                   + ": those comparisons may not represent the study's patients.")
    prism_warn = idx.first_text("baseline", "prism3_points", "warning")
    if prism_warn:
        out.append(f"PRISM III-24: {prism_warn}; the score may be underestimated.")
    phen = set(idx.variables("phenotype"))
    if phen & {"phoenix_score", "psofa_score"}:
        out.append("Phoenix and pSOFA count unmeasured inputs as normal, as their authors do "
                   "(§5.4, §6.3): with inputs not recorded they can only understate organ "
                   "dysfunction.")
    if phen & {"hscore_points", "hscore_ge_169"}:
        out.append("The HScore was derived and validated in adults (§2.1); its probability and "
                   "the 169-point threshold are not validated in children.")
    exact = idx.rows("marker", stat_name="p_wilcoxon")
    exact = exact[exact["method"].fillna("").str.contains("exact distribution")
                  & pd.to_numeric(exact["value"], errors="coerce").notna()]
    if not exact.empty:
        out.append("With few pairs the exact Wilcoxon signed-rank test can give only a few "
                   "p-values (with 8 pairs, never 0.03; §10.3), so it can miss a change the "
                   "paired t-test detects.")
    outside = idx.rows("phenotype", stat_name="count")
    outside = outside[outside["variable"].str.endswith("_outside_validated_ages")
                      & (pd.to_numeric(outside["value"], errors="coerce") > 0)]
    if not outside.empty:
        flagged = [f"{text(r['label']).split(':')[0]} ({fmt_count(float(r['value']))})"
                   for _, r in outside.iterrows()]
        out.append("Some criteria were evaluated outside the ages their authors validated, "
                   "patients at the first dose: " + ", ".join(flagged)
                   + "; their results for those patients are not validated.")
    if not idx.rows(RECOGNITION_SECTION).empty:
        out.append("Recognition is dated from the data the source records: a criterion met on "
                   "values that were not measured or not loaded is dated later or not at all, so "
                   "the delay to treatment can only be understated; early and late start are "
                   "not randomised.")
    if mixed_rows(results, idx):
        out.append("The mixed model's Wald tests are large-sample approximations; with few "
                   "patients their p-values are optimistic.")
    return out


# --- references -----------------------------------------------------------------------------

CITATION = re.compile(r"§\s?(\d+(?:\.\d+)*)")


def cited_sections(texts: Iterable[str]) -> list[str]:
    """Every § section cited in these texts, in numeric order, once."""
    found = {m.group(1) for t in texts for m in CITATION.finditer(t or "")}
    return sorted(found, key=lambda s: [int(x) for x in s.split(".")])


def reference_headings() -> dict[str, str]:
    """Section number -> heading of the clinical reference shipped with the package
    (docs/clinical-reference.md)."""
    from importlib.resources import files

    path = files("hyperinflam.report").joinpath("clinical-reference.md")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, OSError):
        return {}
    out = {}
    for line in lines:
        m = re.match(r"#{2,4}\s+(\d+(?:\.\d+)*)\.?\s+(.*)$", line)
        if m:  # without the source-status tags ("[P]", "[S — ...]")
            out[m.group(1)] = re.sub(r"\s*\[[PS](?:\s[^\]]*)?\]", "", m.group(2)).strip()
    return out


def methods_paragraphs(results: StudyResults) -> list[str]:
    """The Methods, paragraph by paragraph, as the run wrote them (provenance ``methods``), then
    the PRISM III and phenotype notes when those sections are present, and the software and
    data source. Missing provenance keys read "not stated"."""
    p = results.provenance or {}
    m = get_path(p, "methods", default={}) or {}
    paras = [str(sentence) for _, sentence in (m.get("paragraphs") or [])]
    if not paras:
        paras.append(f"The methods of this run were {NOT_STATED}.")
    idx = ResultsIndex(results)
    if m.get("prism") and not idx.rows("baseline", variable="prism3_points").empty:
        paras.append(str(m["prism"]))
    if m.get("phenotype") and not idx.rows("phenotype").empty:
        paras.append(str(m["phenotype"]))
    versions = get_path(p, "versions", default={}) or {}
    vtext = (", ".join(f"{k} {v}" for k, v in versions.items() if v)
             if isinstance(versions, dict) else _plain(versions))
    source = p.get("data_source")
    if isinstance(source, dict):
        source = ", ".join(f"{k} {fmt_count(v)} rows" for k, v in source.items() if v is not None)
    paras.append(
        f"Software: {vtext or NOT_STATED}. Data: {_plain(source) or NOT_STATED}. Database: "
        f"{_plain(p.get('database')) or NOT_STATED}. Run at "
        f"{_plain(p.get('run_time_utc') or p.get('run_at')) or NOT_STATED} (UTC).")
    return paras


def software_notes(results: StudyResults) -> dict[str, str]:
    """Test name (as written in Methods) -> software call, for one footnote each."""
    return dict(get_path(results.provenance or {}, "methods", "software", default={}) or {})


def _plain(value: Any) -> str:
    """A definition value as readable text (dicts as "k: v", lists comma-separated)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ') if isinstance(k, str) else k}: {_plain(v)}"
                         for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return re.sub(r"\s+", " ", str(value)).strip()

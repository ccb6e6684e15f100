"""Display views of a :class:`~hyperinflam.study.results.StudyResults`, shared by every renderer.

This module only *looks rows up* in the tidy ``results`` table (docs/results-format.md §1) and
formats them; it never computes a statistic. The terminal renderer (``terminal.py``) and the HTML
report (``html.py``) both draw the same views, so the numbers printed in the terminal and in
``report.html`` are formatted identically.

Formatting conventions (project choices, the clinical reference §10 is silent on them):

* mean ± SEM: the mean and its SEM share the number of decimals, chosen per marker from the
  larger of the two group means: >= 1000 → 0 decimals (thousands grouped "8,867"), >= 10 → 1,
  >= 1 → 2, below 1 → 3 (:func:`decimals_for`).
* percentages: one decimal, a true minus sign ("−67.1%").
* p-values: two significant digits ("0.30", "0.052"), three near 0.05 (0.045 <= p < 0.055) so the
  side of the conventional threshold is never hidden by rounding, "< 0.001" below 0.001.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd

from hyperinflam.study.results import StudyResults

MINUS = "\u2212"
NOT_STATED = "not stated"
COHORT_GROUP = "cohort"

#: Sections rendered as "characteristic | value" tables, in report order.
SUMMARY_SECTIONS = ("baseline", "cotherapy", "safety", "phenotype")

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


def fmt_num(value: float | None, decimals: int | None = None) -> str:
    """A number with grouping of thousands and a true minus sign; "–" when absent."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    d = decimals_for(value) if decimals is None else decimals
    s = f"{value:,.{d}f}"
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
    """A p-value: "< 0.001", two significant digits, three when 0.045 <= p < 0.055."""
    if p is None or not math.isfinite(p):
        return "–"
    if p < 0.001:
        return "< 0.001"
    digits = 3 if 0.045 <= p < 0.055 else 2
    s = f"{p:#.{digits}g}"
    if "e" in s:  # cannot happen for p >= 0.001, kept for safety
        s = f"{p:.3f}"
    return s


def fmt_mean_sem(mean: float | None, sem: float | None, decimals: int) -> str:
    """ "206.0 ± 50.0" (mean and SEM with the same decimals)."""
    if mean is None:
        return "–"
    if sem is None:
        return fmt_num(mean, decimals)
    return f"{fmt_num(mean, decimals)} ± {fmt_num(sem, decimals)}"


# --- row lookups ----------------------------------------------------------------------------

class ResultsIndex:
    """Read-only lookups in ``StudyResults.results`` (never computes a statistic)."""

    def __init__(self, results: StudyResults):
        self.sr = results
        r = results.results.copy()
        for col in ("section", "group", "variable", "label", "level", "timepoint", "statistic",
                    "unit", "method"):
            if col not in r.columns:
                r[col] = None
            r[col] = pd.Series([None if is_missing(v) else str(v) for v in r[col]],
                               index=r.index, dtype=object)
        r["group"] = r["group"].fillna(COHORT_GROUP)
        self.r = r

    def rows(self, section: str, **eq: str | None) -> pd.DataFrame:
        """Rows of a section; keyword filters compare a column to a value (None = empty)."""
        r = self.r[self.r["section"] == section]
        for col, value in eq.items():
            r = r[r[col].isna()] if value is None else r[r[col] == value]
        return r

    def value(self, section: str, variable: str, statistic: str, *, timepoint: str | None = None,
              level: str | None = None, group: str = COHORT_GROUP,
              method_contains: Iterable[str] | None = None) -> float | None:
        """One value, or None. ``method_contains`` selects among rows that differ by method
        only (the two p-values of a marker), matching any of the given words, case-insensitive."""
        r = self.rows(section, variable=variable, statistic=statistic, timepoint=timepoint,
                      level=level, group=group)
        if method_contains is not None:
            words = [w.lower() for w in method_contains]
            r = r[r["method"].fillna("").str.lower().map(lambda m: any(w in m for w in words))]
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

    def groups(self, section: str) -> list[str]:
        gs = list(dict.fromkeys(self.rows(section)["group"].dropna()))
        if COHORT_GROUP in gs:  # the whole cohort first
            gs.remove(COHORT_GROUP)
            gs.insert(0, COHORT_GROUP)
        return gs


# --- views ----------------------------------------------------------------------------------

T_TEST_WORDS = ("t-test", "ttest", "t test")
WILCOXON_WORDS = ("wilcoxon",)


@dataclass
class MarkerRow:
    """One line of the founding paper's marker table (clinical reference §10.1, §10.4)."""

    variable: str
    label: str
    unit: str  # canonical unit as stored (UCUM)
    n: float | None
    n_excluded: float | None
    baseline_mean: float | None
    baseline_sem: float | None
    day7_mean: float | None
    day7_sem: float | None
    pct_change_of_means: float | None
    median_pct_change: float | None
    p_t_test: float | None
    p_wilcoxon: float | None
    method_t_test: str
    method_wilcoxon: str

    @property
    def decimals(self) -> int:
        means = [abs(m) for m in (self.baseline_mean, self.day7_mean) if m is not None]
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
            "day7": fmt_mean_sem(self.day7_mean, self.day7_sem, d),
            "pct_change_of_means": fmt_pct(self.pct_change_of_means, signed=True),
            "median_pct_change": fmt_pct(self.median_pct_change, signed=True),
            "p_t_test": fmt_p(self.p_t_test),
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


def marker_rows(results: StudyResults, idx: ResultsIndex | None = None,
                group: str = COHORT_GROUP) -> list[MarkerRow]:
    """The paper-style marker table, looked up row by row in ``results`` (section ``marker``)."""
    idx = idx or ResultsIndex(results)
    out = []
    for var in marker_order(results, idx):
        mrows = idx.rows("marker", variable=var, group=group)
        obs_unit = ""
        obs = results.observations
        if obs is not None and not obs.empty and "unit" in obs.columns:
            units = obs.loc[obs["variable"] == var, "unit"].dropna()
            obs_unit = str(units.iloc[0]) if not units.empty else ""

        def v(stat, tp, **kw):
            return idx.value("marker", var, stat, timepoint=tp, group=group, **kw)

        def v_any(stat, timepoints):
            for tp in timepoints:
                val = v(stat, tp)
                if val is not None:
                    return val
            return None

        units = mrows.loc[mrows["statistic"] == "mean", "unit"].dropna()
        label = mrows["label"].dropna()
        methods = mrows.loc[mrows["statistic"] == "p_value", "method"].dropna().tolist()
        out.append(MarkerRow(
            variable=var,
            label=str(label.iloc[0]) if not label.empty else var,
            unit=str(units.iloc[0]) if not units.empty else obs_unit,
            n=v_any("n", ("change", None, "baseline", "day7")),
            n_excluded=v_any("n_excluded", ("change", None, "baseline", "day7")),
            baseline_mean=v("mean", "baseline"), baseline_sem=v("sem", "baseline"),
            day7_mean=v("mean", "day7"), day7_sem=v("sem", "day7"),
            pct_change_of_means=v_any("pct_change_of_means", ("change", None)),
            median_pct_change=v_any("median_pct_change", ("change", None)),
            p_t_test=v("p_value", "change", method_contains=T_TEST_WORDS),
            p_wilcoxon=v("p_value", "change", method_contains=WILCOXON_WORDS),
            method_t_test=next((m for m in methods if any(w in m.lower() for w in T_TEST_WORDS)), ""),
            method_wilcoxon=next((m for m in methods if "wilcoxon" in m.lower()), ""),
        ))
    return out


@dataclass
class FlowStep:
    variable: str
    label: str
    count: float | None


_FLOW_LABELS = {
    "stays": "PICU stays",
    "stays_with_index_drug": "Stays with anakinra",
    "cohort": "Study cohort",
}


def flow_steps(results: StudyResults, idx: ResultsIndex | None = None) -> tuple[list[FlowStep], list[FlowStep]]:
    """(main chain, analysable per marker) of the flow diagram, from section ``flow``."""
    idx = idx or ResultsIndex(results)
    main, per_marker = [], []
    for var in idx.variables("flow"):
        count = None
        for stat in ("count", "n"):
            count = idx.value("flow", var, stat)
            if count is not None:
                break
        label = idx.first_text("flow", var, "label")
        if var.startswith("analysable_") and (not label or label == var):
            marker = var.removeprefix("analysable_")
            mlabel = idx.first_text("marker", marker, "label") or marker
            label = f"Analysable: {mlabel}"
        label = label or _FLOW_LABELS.get(var, var)
        step = FlowStep(var, label, count)
        (per_marker if var.startswith("analysable_") else main).append(step)
    return main, per_marker


def cohort_size(results: StudyResults, idx: ResultsIndex | None = None) -> float | None:
    idx = idx or ResultsIndex(results)
    for stat in ("count", "n"):
        val = idx.value("flow", "cohort", stat)
        if val is not None:
            return val
    return None


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
    groups: list[str]
    lines: list[SummaryLine] = field(default_factory=list)


_SKIP_IN_CELL = {"count", "percent", "n", "mean", "sd", "sem", "median", "q1", "q3", "min", "max",
                 "days_from_index"}


def _cell(rows: pd.DataFrame) -> str:
    """Format the statistics of one (variable, level, timepoint, group) as one cell."""
    if rows.empty:
        return "–"
    stats: dict[str, list[float]] = {}
    unit = ""
    for _, row in rows.iterrows():
        val = pd.to_numeric(row["value"], errors="coerce")
        stats.setdefault(row["statistic"], []).append(None if pd.isna(val) else float(val))
        if row["statistic"] in ("mean", "median") and row["unit"]:
            unit = display_unit(row["unit"])

    def one(s):
        return stats.get(s, [None])[0]

    parts = []
    if "count" in stats:
        c = fmt_count(one("count"))
        parts.append(f"{c} ({fmt_pct(one('percent'))})" if "percent" in stats else c)
    elif "percent" in stats:
        parts.append(fmt_pct(one("percent")))
    if "median" in stats:
        d = decimals_for(one("median"))
        s = fmt_num(one("median"), d)
        if "q1" in stats and "q3" in stats:
            s += f" ({fmt_num(one('q1'), d)}–{fmt_num(one('q3'), d)})"
        elif "min" in stats and "max" in stats:
            s += f" (range {fmt_num(one('min'), d)}–{fmt_num(one('max'), d)})"
        parts.append(s + (f" {unit}" if unit else ""))
    if "mean" in stats:
        d = decimals_for(one("mean"))
        spread = one("sd") if "sd" in stats else one("sem")
        sym = "SD" if "sd" in stats else "SEM"
        s = fmt_num(one("mean"), d)
        if spread is not None:
            s += f" ± {fmt_num(spread, d)} ({sym})"
        parts.append(s + (f" {unit}" if unit else ""))
    if "days_from_index" in stats:
        days = ", ".join(fmt_num(d, 1) for d in stats["days_from_index"] if d is not None)
        parts.append(f"days from index: {days}" if days else "")
    if "n" in stats and not parts:
        parts.append(f"n = {fmt_count(one('n'))}")
    for s, vals in stats.items():  # anything else, named
        if s not in _SKIP_IN_CELL:
            shown = fmt_p(vals[0]) if s == "p_value" else fmt_num(vals[0])
            parts.append(f"{s.replace('_', ' ')} {shown}")
    return "; ".join(p for p in parts if p) or "–"


def summary_table(results: StudyResults, section: str,
                  idx: ResultsIndex | None = None) -> SummaryTable:
    """A characteristics-style table of a section (baseline, cotherapy, safety, phenotype):
    categorical variables as "count (percent)" per level, continuous ones as
    "median (Q1–Q3) unit" or "mean ± SD unit", safety events with their days from index."""
    idx = idx or ResultsIndex(results)
    groups = idx.groups(section)
    table = SummaryTable(section, groups)
    sec = idx.rows(section)
    for var in idx.variables(section):
        vrows = sec[sec["variable"] == var]
        label = next(iter(vrows["label"].dropna()), None) or var.replace("_", " ")
        keys = list(dict.fromkeys(
            (None if is_missing(lv) else lv, None if is_missing(tp) else tp)
            for lv, tp in zip(vrows["level"], vrows["timepoint"])))
        with_level = [k for k in keys if k[0] is not None]
        plain = [k for k in keys if k[0] is None]

        def cells_for(level, timepoint):
            sub = vrows[(vrows["level"].isna() if level is None else vrows["level"] == level)
                        & (vrows["timepoint"].isna() if timepoint is None
                           else vrows["timepoint"] == timepoint)]
            return [_cell(sub[sub["group"] == g]) for g in groups]

        for level, tp in plain:
            lab = label if tp is None else f"{label} ({tp})"
            table.lines.append(SummaryLine(lab, cells_for(level, tp)))
        if with_level:
            if not plain:
                table.lines.append(SummaryLine(label, ["" for _ in groups], heading=True))
            for level, tp in with_level:
                lab = level if tp is None else f"{level} ({tp})"
                table.lines.append(SummaryLine(lab, cells_for(level, tp), indent=True))
    return table


def methods_used(results: StudyResults) -> list[str]:
    """The distinct ``method`` texts of the results table, in order of appearance."""
    r = results.results
    if "method" not in r.columns:
        return []
    return [m for m in dict.fromkeys(r["method"].map(text)) if m]


def methods_paragraphs(results: StudyResults) -> list[str]:
    """The methods text, sentence by sentence, from the definition, provenance and the
    ``method`` column (clinical reference §10.4, §12.1-§12.6). Missing keys read "not stated".

    Keys read: definition ``study.title``, ``study.reference``, ``cohort`` (every key, shown as
    given), ``cohort.index_drug``, ``windows.baseline_from_hours``, ``baseline_to_hours``,
    ``day7_target_hours``, ``day7_half_width_hours``, ``trajectory_from_days``,
    ``trajectory_to_days``, ``markers.variables``, ``analysis`` (every key); provenance
    ``versions`` (name → version), ``database``, ``data_source`` (dict or text), ``run_at``,
    ``methods.sem``, ``methods.percent_change``, ``methods.tests``.
    """
    d, p = results.definition or {}, results.provenance or {}
    w = get_path(d, "windows", default={}) or {}

    def num(key):
        val = w.get(key)
        return NOT_STATED if val is None else fmt_num(float(val), 0 if float(val).is_integer() else 1)

    index_drug = get_path(d, "cohort", "index_drug", default="anakinra")
    paras = []
    paras.append(
        f"Index event: the first {index_drug} administration in the PICU stay (time 0). "
        f"Baseline value: the value closest to the index time from {num('baseline_from_hours')} h "
        f"to {num('baseline_to_hours')} h, ties resolved in favour of the value before the index. "
        f"Day-7 value: the value closest to {num('day7_target_hours')} h after the index, "
        f"within ± {num('day7_half_width_hours')} h. Patients without both values for a marker are "
        f"excluded from that marker only (complete cases; n is reported per marker)."
    )
    cohort = get_path(d, "cohort", default={}) or {}
    rules = "; ".join(f"{k.replace('_', ' ')}: {_plain(v)}" for k, v in cohort.items()
                      if k != "index_drug")
    paras.append(f"Cohort rules: {rules or NOT_STATED}.")
    sem = get_path(p, "methods", "sem", default=None) or (
        "standard error of the mean, SEM = SD (n − 1) / √n")
    pct = get_path(p, "methods", "percent_change", default=None) or (
        "% change of group means, 100 × (mean day 7 − mean baseline) / mean baseline, as in the "
        "founding paper; and the median of per-patient % changes")
    paras.append(f"Summary statistics: mean ± {sem}. Change: {pct}.")
    tests = get_path(p, "methods", "tests", default=None)
    if tests is None:
        tests = "; ".join(m for m in methods_used(results)
                          if any(w in m.lower() for w in ("test", "wilcoxon"))) or NOT_STATED
    paras.append(f"Tests (both reported for every marker; clinical reference §12.5): "
                 f"{_plain(tests)}.")
    analysis = get_path(d, "analysis", default={}) or {}
    if analysis:
        paras.append("Analysis settings: " + "; ".join(
            f"{k.replace('_', ' ')}: {_plain(v)}" for k, v in analysis.items()) + ".")
    versions = get_path(p, "versions", default={}) or {}
    vtext = ", ".join(f"{k} {v}" for k, v in versions.items()) if isinstance(versions, dict) else _plain(versions)
    paras.append(
        f"Software: {vtext or NOT_STATED}. Data source: {_plain(p.get('data_source')) or NOT_STATED}. "
        f"Database: {_plain(p.get('database')) or NOT_STATED}. Run at: {_plain(p.get('run_time_utc') or p.get('run_at')) or NOT_STATED} (UTC)."
    )
    return paras


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

"""A site's study run as the network package sees it: the ONE place that reads what
``hyperinflam study run`` wrote (``results.json``: the results dataset, the patient-level
observations, the study definition and the provenance; docs/results-format.md).

Everything else in :mod:`hyperinflam.study.network` works on the :class:`SiteRun` returned here,
so a change of the results format (more timepoints, new columns) is adapted in this module only.

What is derived here, and how:

* **Timepoints** come from the data: every non-empty ``role`` of the observations other than
  ``baseline`` is a follow-up timepoint (today ``day7``); its label and window come from the study
  definition (``[[timepoints]]`` entries when the definition has them, else the ``[windows]``
  day-7 keys).
* **Paired values** (patient level, kept in memory, never written): per marker and follow-up
  timepoint, the patients with both a baseline and that timepoint's value.
* **Counts** from the results dataset: the flow, categorical characteristics (levels that add up
  to the cohort), yes/no characteristics (co-therapy, safety, ventilation), and continuous
  characteristics (n, and the sum and centred sum of squares from the site's mean and SD).
  Levels that are text from the site's data (the admission reason) are reduced to
  ``recorded`` / ``not recorded``: free text never leaves the site.
* **Not recorded**: a count the site's source cannot give (a domain it holds no record of:
  deaths, conditions, ventilation) is kept as "not recorded" for each of its levels, never read
  as 0 (not recorded is not "no").
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hyperinflam.errors import NetworkError

RESULTS_JSON = "results.json"

#: The flow steps in their nested order (each a subset of the one before); the difference of
#: two consecutive steps is a count of stays excluded at that step. Source: study.cohort
#: ``flow_counts``.
FLOW_CHAIN: tuple[str, ...] = ("stays", "stays_with_index_drug", "stays_in_age_range",
                               "stays_in_calendar_window", "stays_meeting_requirement",
                               "cohort")
#: Label of the stays excluded between a step and the one before it.
FLOW_EXCLUSIONS: dict[str, str] = {
    "stays_with_index_drug": "Excluded: index drug not given in the PICU stay",
    "stays_in_age_range": "Excluded: outside the age range",
    "stays_in_calendar_window": "Excluded: admitted outside the calendar window",
    "stays_meeting_requirement": "Excluded: required criterion not met",
    "cohort": "Excluded: not the patient's first qualifying stay",
}
#: Flow counts that are yes/no characteristics of the cohort rather than steps.
FLOW_FLAGS: dict[str, str] = {
    "prior_index_drug_exposure": "Exposed to the index drug before the PICU stay",
}

#: Categorical characteristics whose levels are fixed by hyperinflam (not text from the data):
#: every level is shared (0 when absent), so that every site has the same cells.
FIXED_LEVELS: dict[str, tuple[str, ...]] = {
    "sex": ("female", "male", "unknown"),
    "health_status": ("previously healthy", "underlying disease"),
}
#: Levels of the tri-state criteria at the index time (study.phenotype).
PHENOTYPE_LEVELS: tuple[str, ...] = ("met", "not met", "indeterminate", "unknown",
                                     "not evaluated")
#: Categorical characteristics whose levels are text from the site's data: shared only as
#: recorded / not recorded (the level the analysis gives to an empty value).
FREE_TEXT_LEVELS: dict[str, str] = {"admission_reason": "not recorded"}
RECORDED, NOT_RECORDED = "recorded", "not recorded"


@dataclass(frozen=True)
class Timepoint:
    """A follow-up timepoint compared with baseline."""

    name: str
    label: str
    target_hours: float | None = None
    tolerance_hours: float | None = None


@dataclass(frozen=True)
class Marker:
    variable: str
    label: str
    unit: str | None


@dataclass(frozen=True)
class Category:
    """A characteristic whose levels are mutually exclusive and add up to the cohort."""

    section: str
    variable: str
    label: str
    levels: dict[str, int]


@dataclass(frozen=True)
class Flag:
    """A yes/no characteristic of the cohort (``count`` patients have it, the rest do not)."""

    section: str
    variable: str
    label: str
    level: str | None
    count: int


@dataclass(frozen=True)
class NotRecorded:
    """A count the site cannot give because its source does not record the domain (no death,
    no condition, no ventilation record at all): shared as "not recorded", never as 0."""

    section: str
    variable: str
    label: str
    level: str | None


@dataclass(frozen=True)
class Continuous:
    """A continuous characteristic: n with a value, their sum and centred sum of squares
    (None when the run did not give a mean and SD)."""

    section: str
    variable: str
    label: str
    unit: str | None
    n: int
    total: float | None
    sum_sq_dev: float | None
    source: str


@dataclass
class SiteRun:
    """What one site's study run says, in the terms the network package needs."""

    folder: Path
    study_id: str
    title: str
    definition: dict
    study_text: str
    study_sha256: str
    study_hash_of: str  # "study file" or "study definition"
    hyperinflam_version: str | None
    engine: str
    engine_version: str | None
    run_date: str | None  # YYYY-MM-DD
    data_source: dict
    alternative: str
    cohort: int
    flow: dict[str, int]
    flow_labels: dict[str, str]
    flags: list[Flag]
    categories: list[Category]
    continuous: list[Continuous]
    not_recorded: list[NotRecorded]
    markers: list[Marker]
    timepoints: list[Timepoint]
    #: patient-level pairs: marker, timepoint, baseline, followup (never written anywhere)
    pairs: pd.DataFrame = field(repr=False)


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text != "" else None


def _timepoint_info(definition: dict, names: list[str]) -> list[Timepoint]:
    """Label and window of each follow-up timepoint, from the definition."""
    declared = {}
    for entry in definition.get("timepoints") or []:  # a list of timepoints, when declared
        if isinstance(entry, dict) and entry.get("name"):
            declared[str(entry["name"])] = entry
    windows = definition.get("windows") or {}
    out = []
    for name in names:
        entry = declared.get(name)
        if entry is not None:
            target = entry.get("target_hours")
            label = entry.get("label") or (f"Day {float(target) / 24:g}" if target is not None
                                           else name)
            out.append(Timepoint(name, str(label), target, entry.get("tolerance_hours")))
        elif name == "day7":
            target = windows.get("day7_target_hours", 168.0)
            out.append(Timepoint(name, f"Day {float(target) / 24:g}", target,
                                 windows.get("day7_tolerance_hours")))
        else:
            out.append(Timepoint(name, name.replace("_", " ")))
    return sorted(out, key=lambda t: (t.target_hours is None,
                                      t.target_hours if t.target_hours is not None else 0.0,
                                      t.name))


def _study_identity(definition: dict, provenance: dict) -> tuple[str, str, str]:
    """(text, SHA-256, what was hashed): the study file's text as run when the run recorded it,
    else the validated definition as canonical JSON."""
    text = provenance.get("study_file_text")
    if isinstance(text, str):
        return text, hashlib.sha256(text.encode("utf-8")).hexdigest(), "study file"
    canonical = json.dumps(definition, sort_keys=True, ensure_ascii=False, indent=1) + "\n"
    return canonical, hashlib.sha256(canonical.encode("utf-8")).hexdigest(), "study definition"


def _engine(provenance: dict) -> tuple[str, str | None]:
    backend = provenance.get("backend") or "duckdb"
    name = "spark" if backend == "pyspark" else str(backend)
    versions = provenance.get("versions") or {}
    return name, versions.get("pyspark" if name == "spark" else name)


def _data_source(provenance: dict) -> dict:
    """The kind of store the study read and which canonical tables hold records (no counts:
    a table's row count can be a small cell)."""
    counts = provenance.get("data_source") or {}
    kind = ("DuckDB database file" if provenance.get("database")
            else "canonical tables read from a Parquet folder or a catalog")
    return {"kind": kind, "model": "hyperinflam canonical tables",
            "tables_with_records": sorted(t for t, c in counts.items() if c)}


def _read_document(folder: Path) -> dict:
    path = folder / RESULTS_JSON
    if not folder.is_dir():
        raise NetworkError(f"{folder}: no such folder; give the --out folder of "
                           f"'hyperinflam study run'.")
    if not path.is_file():
        raise NetworkError(f"{folder}: no {RESULTS_JSON} in it; give the --out folder of "
                           f"'hyperinflam study run' (it holds results.csv, observations.csv, "
                           f"results.json and report.html).")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NetworkError(f"{path}: cannot be read as JSON ({exc}); run "
                           f"'hyperinflam study run' again.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise NetworkError(f"{path}: not a results file of 'hyperinflam study run' (no "
                           f"'results' list).")
    return doc


def _counts(results: pd.DataFrame) -> pd.DataFrame:
    rows = results[results["statistic"] == "count"].copy()
    rows["value"] = pd.to_numeric(rows["value"], errors="coerce")
    return rows[rows["value"].notna()]


def _as_count(value, where: str) -> int:
    number = float(value)
    if not number.is_integer() or number < 0:
        raise NetworkError(f"{where}: a count must be a whole number >= 0 (got {value}).")
    return int(number)


def _paired(observations: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Patient-level pairs (marker, timepoint, baseline, followup) and the follow-up roles."""
    columns = ["marker", "timepoint", "baseline", "followup"]
    if observations.empty or "role" not in observations.columns:
        return pd.DataFrame(columns=columns), []
    chosen = observations[observations["role"].map(_text).notna()]
    followups = sorted(set(chosen["role"]) - {"baseline"})
    if chosen.empty:
        return pd.DataFrame(columns=columns), followups
    wide = chosen.pivot_table(index=["patient", "variable"], columns="role",
                              values="value", aggfunc="first")
    if "baseline" not in wide.columns:
        return pd.DataFrame(columns=columns), followups
    parts = []
    for role in followups:
        both = wide[["baseline", role]].dropna()
        parts.append(pd.DataFrame({"marker": both.index.get_level_values("variable"),
                                   "timepoint": role,
                                   "baseline": both["baseline"].to_numpy(dtype="float64"),
                                   "followup": both[role].to_numpy(dtype="float64")}))
    pairs = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    # a canonical order that does not depend on the patient labels or the engine's row order
    return pairs.sort_values(columns, kind="stable").reset_index(drop=True), followups


def _site_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The results dataset in the terms read here (docs/results-format.md): ``stat_name`` read
    as ``statistic``; left out: the mixed model (comparison ``all_timepoints``), the per-marker
    flow counts of each comparison and the flow's exclusion rows (the differences of two steps,
    computed here again), and the secondary analysis "time from recognition to treatment"
    (sections ``recognition``, ``recognition_markers``). The counts a site does not record
    (empty, with an ``error``) are read by :func:`_not_recorded`."""
    if "stat_name" not in results.columns:
        return results
    r = results.rename(columns={"stat_name": "statistic"})
    comparison = r["comparison"] if "comparison" in r.columns else pd.Series(None, index=r.index)
    keep = comparison.fillna("") != "all_timepoints"
    # the secondary analysis "time from recognition to treatment" (study.recognition) is the
    # site's own; not (yet) shared or pooled
    keep &= ~r["section"].isin(["recognition", "recognition_markers"])
    keep &= ~((r["section"] == "flow") & (comparison.notna()
                                          | r["variable"].astype(str).str.startswith("excluded_")))
    return r[keep].reset_index(drop=True)


def _not_recorded(results: pd.DataFrame) -> list[NotRecorded]:
    """The counts the site does not record: no value, an ``error`` saying "not recorded"
    (study.analysis ``not_recorded_error``), one per level."""
    error = results["error"] if "error" in results.columns else pd.Series(None,
                                                                         index=results.index)
    value = pd.to_numeric(results["value"], errors="coerce")
    rows = results[(results["statistic"] == "count") & value.isna()
                   & error.map(_text).fillna("").str.startswith(NOT_RECORDED)
                   & (results["section"] != "flow")]
    return [NotRecorded(s, v, lb or v, lv) for s, v, lb, lv in
            zip(rows["section"], rows["variable"], rows["label"], rows["level"])]


def read_site_run(results_dir: str | Path) -> SiteRun:
    """Read ``results_dir`` (the ``--out`` folder of ``hyperinflam study run``)."""
    folder = Path(results_dir)
    doc = _read_document(folder)
    where = str(folder / RESULTS_JSON)
    definition = doc.get("study") or {}
    provenance = doc.get("provenance") or {}
    results = _site_rows(pd.DataFrame(doc["results"]))
    for column in ("section", "variable", "label", "level", "timepoint", "statistic", "unit"):
        if column not in results.columns:
            results[column] = None
        results[column] = pd.Series([_text(v) for v in results[column]], dtype=object,
                                    index=results.index)
    observations = pd.DataFrame(doc.get("observations") or [],
                                columns=["patient", "variable", "value", "role"])
    observations["value"] = pd.to_numeric(observations["value"], errors="coerce")
    study = definition.get("study") or {}
    study_id = study.get("id") or next(iter(results.get("study", [])), None)
    if not study_id:
        raise NetworkError(f"{where}: the study has no id; run 'hyperinflam study run' again.")

    counts = _counts(results)
    flow_rows = counts[counts["section"] == "flow"]
    flow = {v: _as_count(x, f"{where}: flow {v}") for v, x in
            zip(flow_rows["variable"], flow_rows["value"])}
    flow_labels = dict(zip(flow_rows["variable"], flow_rows["label"].fillna("")))
    if "cohort" not in flow:
        raise NetworkError(f"{where}: no cohort count in the flow; run 'hyperinflam study run' "
                           f"again with this version of hyperinflam.")
    cohort = flow["cohort"]

    flags: list[Flag] = [Flag("flow", v, FLOW_FLAGS[v], None, flow[v])
                         for v in FLOW_FLAGS if v in flow]
    categories: list[Category] = []
    not_recorded = _not_recorded(results)
    for (section, variable), rows in counts[counts["section"] != "flow"].groupby(
            ["section", "variable"], sort=False):
        label = next(iter(rows["label"].dropna()), variable)
        levels = {lv: _as_count(x, f"{where}: {section} {variable} {lv}")
                  for lv, x in zip(rows["level"], rows["value"])}
        if section in ("cotherapy", "safety") or list(levels) == [None]:
            # yes/no characteristics: each level (study window, in stay, ...) on its own
            flags += [Flag(section, variable, label, lv, c) for lv, c in levels.items()]
            continue
        if variable in FIXED_LEVELS and set(levels) == {NOT_RECORDED}:
            # a domain the source does not record (conditions: health status): every level
            # is "not recorded", not 0
            not_recorded += [NotRecorded(section, variable, label, lv)
                             for lv in FIXED_LEVELS[variable]]
            continue
        if variable in FREE_TEXT_LEVELS:
            missing = levels.get(FREE_TEXT_LEVELS[variable], 0)
            levels = {RECORDED: sum(levels.values()) - missing, NOT_RECORDED: missing}
        elif variable in FIXED_LEVELS or section == "phenotype":
            fixed = FIXED_LEVELS.get(variable, PHENOTYPE_LEVELS)
            other = sum(c for lv, c in levels.items() if lv not in fixed)
            levels = {lv: levels.get(lv, 0) for lv in fixed}
            if other:  # a level hyperinflam does not know: counted, never named
                levels["other"] = other
        else:  # an unknown categorical characteristic: its levels may be text from the data
            levels = {RECORDED: sum(levels.values())}
        categories.append(Category(section, variable, label, levels))

    continuous: list[Continuous] = []
    numeric = results[(results["statistic"] == "n") & results["section"].isin(
        ["baseline", "phenotype"]) & results["level"].isna() & results["timepoint"].isna()]
    for section, variable, label, value in zip(numeric["section"], numeric["variable"],
                                               numeric["label"], numeric["value"]):
        rows = results[(results["section"] == section) & (results["variable"] == variable)]
        stat = dict(zip(rows["statistic"], pd.to_numeric(rows["value"], errors="coerce")))
        unit = next(iter(rows.loc[rows["statistic"] != "n", "unit"].dropna()), None)
        n = _as_count(value, f"{where}: {section} {variable} n")
        mean, sd = stat.get("mean"), stat.get("sd")
        if n >= 2 and mean is not None and sd is not None and np.isfinite(mean) \
                and np.isfinite(sd):
            continuous.append(Continuous(section, variable, label or variable, unit, n,
                                         n * float(mean), (n - 1) * float(sd) ** 2,
                                         "the site's mean and SD (ddof 1)"))
        else:
            continuous.append(Continuous(section, variable, label or variable, unit, n, None,
                                         None, "n only (no mean and SD in the study run)"))

    pairs, followups = _paired(pd.DataFrame(doc.get("observations") or []))
    if not followups:  # no chosen values at all (empty cohort): the definition's timepoints
        followups = [str(t["name"]) for t in definition.get("timepoints") or []
                     if isinstance(t, dict) and t.get("name")] or ["day7"]
    timepoints = _timepoint_info(definition, followups)
    marker_names = (definition.get("markers") or {}).get("variables") or sorted(
        set(results.loc[results["section"] == "marker", "variable"].dropna()))
    markers = []
    for variable in marker_names:
        rows = results[(results["section"] == "marker") & (results["variable"] == variable)]
        label = next(iter(rows["label"].dropna()), variable)
        unit = next(iter(rows.loc[rows["statistic"] == "mean", "unit"].dropna()), None)
        markers.append(Marker(variable, label, unit))
        if len(timepoints) == 1:  # the results' n must be the number of pairs
            n_rows = rows[(rows["statistic"] == "n") & rows["timepoint"].isna()]
            if not n_rows.empty:
                expected = _as_count(n_rows["value"].iloc[0], f"{where}: marker {variable} n")
                found = int(((pairs["marker"] == variable)
                             & (pairs["timepoint"] == timepoints[0].name)).sum())
                if expected != found:
                    raise NetworkError(
                        f"{where}: marker {variable} has n = {expected} in the results but "
                        f"{found} patients with both values in the observations; the folder "
                        f"mixes two runs: run 'hyperinflam study run' again.")

    text, sha, hash_of = _study_identity(definition, provenance)
    engine, engine_version = _engine(provenance)
    run_time = provenance.get("run_time_utc") or ""
    return SiteRun(
        folder=folder, study_id=str(study_id), title=str(study.get("title") or study_id),
        definition=definition, study_text=text, study_sha256=sha, study_hash_of=hash_of,
        hyperinflam_version=(provenance.get("versions") or {}).get("hyperinflam"),
        engine=engine, engine_version=engine_version,
        run_date=run_time[:10] if len(run_time) >= 10 else None,
        data_source=_data_source(provenance),
        alternative=str((definition.get("analysis") or {}).get("alternative") or "two-sided"),
        cohort=cohort, flow={k: flow[k] for k in FLOW_CHAIN if k in flow}
        | {k: v for k, v in flow.items() if k not in FLOW_CHAIN and k not in FLOW_FLAGS
           and not k.startswith("analysable_")},
        flow_labels=flow_labels, flags=flags, categories=categories, continuous=continuous,
        not_recorded=not_recorded, markers=markers, timepoints=timepoints, pairs=pairs)

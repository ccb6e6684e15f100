"""Run a declarative study end to end: definition -> cohort -> statistics -> StudyResults.

``run_study(con, "rajasekaran2014")`` is what ``hyperinflam study run`` and ``hyperinflam demo``
call; renderers read only the returned :class:`~hyperinflam.study.results.StudyResults`.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata

import ibis

from hyperinflam import __version__
from hyperinflam.engine import engine_name
from hyperinflam.schema import CANONICAL_TABLES
import pandas as pd

from hyperinflam.study import analysis, phenotype
from hyperinflam.study.cohort import extract_cohort
from hyperinflam.study.definition import StudyDefinition, load_study
from hyperinflam.study.results import StudyResults

Progress = Callable[[str], None]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def database_path(con) -> str | None:
    """The database file behind an ibis DuckDB connection (None in memory or on another engine)."""
    if engine_name(con) != "duckdb":
        return None
    raw = con.con
    rows = raw.execute("SELECT name, file FROM pragma_database_list").fetchall()
    current = raw.execute("SELECT current_database()").fetchone()[0]
    for name, file in rows:
        if name == current and file:
            return str(file)
    return None


def data_source_summary(con) -> dict[str, int | None]:
    """Row counts of the canonical tables (None when a table is absent), in one query.

    One union of per-table counts, so that a distributed engine runs one job, not one per table.
    """
    present = set(con.list_tables())
    counts = [con.table(t.name).aggregate(table_name=ibis.literal(t.name),
                                          row_count=lambda x: x.count())
              for t in CANONICAL_TABLES if t.name in present]
    found = {}
    if counts:
        frame = ibis.union(*counts, distinct=False).to_pyarrow().to_pylist()
        found = {row["table_name"]: int(row["row_count"]) for row in frame}
    return {t.name: found.get(t.name) for t in CANONICAL_TABLES}


def methods_summary(study: StudyDefinition) -> dict:
    """What the methods paragraph needs (clinical reference §10.4, §12.1-§12.8, §12.29, §12.33)."""
    c, w, a, ct, o = (study.cohort, study.windows, study.analysis, study.cotherapies,
                      study.outcomes)
    req = c.required_criterion
    return {
        "index": (f"first administration of {c.index_drug} whose start lies within the PICU stay; "
                  f"earlier exposure flagged (clinical reference §10.4; §12.7)"),
        "cohort": {
            "age_years": [c.age_min_years, c.age_max_years],
            "age_rule": "completed years at PICU admission, both ends inclusive",
            "admitted_from": c.admitted_from.isoformat() if c.admitted_from else None,
            "admitted_to": c.admitted_to.isoformat() if c.admitted_to else None,
            "first_qualifying_stay_only": c.first_qualifying_stay_only,
            "required_criterion": str(req) if req else None,
        },
        "windows": {
            "baseline_hours": [w.baseline_from_hours, w.baseline_to_hours],
            "baseline_rule": "closest to the index, edges inclusive; equidistant -> the earlier "
                             "(pre-index) value (§12.1)",
            "day7_target_hours": w.day7_target_hours,
            "day7_hours": [w.day7_from_hours, w.day7_to_hours],
            "day7_rule": "closest to the target, edges inclusive; equidistant -> the earlier "
                         "value (§12.2)",
            "trajectory_days": [w.trajectory_from_days, w.trajectory_to_days],
        },
        "missing": "complete cases per marker; patients without both values are excluded from "
                   "that marker only and counted (§12.3)",
        "summary": {
            "sem": analysis.SEM_METHOD if a.sem_ddof == 1 else "SD (n) / sqrt(n)",
            "quantiles": analysis.QUANTILE_METHOD,
            "pct_change_of_means": analysis.PCT_CHANGE_OF_MEANS_METHOD,
            "median_pct_change": analysis.MEDIAN_PCT_CHANGE_METHOD,
            "headline_change": a.headline_change,
        },
        "tests": {
            "paired_t": ({"function": "scipy.stats.ttest_rel(baseline, day7)",
                          "alternative": a.alternative} if "paired_t" in a.tests else None),
            "wilcoxon": ({"function": "scipy.stats.wilcoxon(day7 - baseline)",
                          "alternative": a.alternative,
                          "method": f"exact when n <= {a.wilcoxon_exact_max_n} and no zero or "
                                    f"tied absolute differences, else normal approximation",
                          "zero_method": a.wilcoxon_zero_method,
                          "correction": a.wilcoxon_correction} if "wilcoxon" in a.tests
                         else None),
        },
        "cotherapies": {"classes": list(ct.classes),
                        "window_hours": [ct.window_from_hours, ct.window_to_hours],
                        "any_time_in_stay": ct.any_time_in_stay},
        "outcomes": {"infections": "strictly after the index", "deaths": "at or after the index",
                     "followup_days": o.followup_days, "in_stay": "time <= PICU discharge"},
        "prism": phenotype.PRISM_METHOD,
        "phenotype": phenotype.PHENOTYPE_METHOD,
    }


def run_study(con, study: StudyDefinition | str | os.PathLike, *,
              progress: Progress | None = None) -> StudyResults:
    """Run ``study`` (a definition, a path, or a shipped study name) on the canonical tables."""
    say = progress or (lambda message: None)
    started = time.perf_counter()
    run_time = datetime.now(timezone.utc)
    definition = load_study(study)
    say(f"Extracting the cohort for {definition.study.id}")
    frames = extract_cohort(con, definition)
    say(f"Computing statistics for {len(frames.cohort)} patients")
    results, observations = analysis.analyse(frames, definition)
    say("Screening criteria at the index time and PRISM III-24")
    phenotype_rows = phenotype.phenotype_results(
        definition.study.id, *phenotype.phenotype_frames(con, frames.cohort))
    if not phenotype_rows.empty:
        results = pd.concat([results, phenotype_rows.reindex(columns=results.columns)],
                            ignore_index=True)
    say("Collecting provenance")
    provenance = {
        "versions": {"hyperinflam": __version__, "duckdb": _version("duckdb"),
                     "ibis-framework": _version("ibis-framework"), "scipy": _version("scipy"),
                     "numpy": _version("numpy"), "pandas": _version("pandas"),
                     **({"pyspark": _version("pyspark")} if engine_name(con) == "spark"
                        else {})},
        "database": database_path(con),
        "backend": getattr(con, "name", None),
        "data_source": data_source_summary(con),
        "study_file": definition.source,
        # the exact study text, so that a network can check every site ran the same file
        "study_file_sha256": (hashlib.sha256(definition.text.encode("utf-8")).hexdigest()
                              if definition.text is not None else None),
        "study_file_text": definition.text,
        "run_time_utc": run_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_seconds": round(time.perf_counter() - started, 3),
        "methods": methods_summary(definition),
    }
    return StudyResults(results=results, observations=observations,
                        definition=definition.model_dump(mode="json"), provenance=provenance)

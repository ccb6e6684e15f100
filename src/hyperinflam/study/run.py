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
import numpy as np
import pandas as pd

from hyperinflam import __version__
from hyperinflam.engine import engine_name
from hyperinflam.schema import CANONICAL_TABLES
from hyperinflam.study import analysis, phenotype, recognition
from hyperinflam.study.cohort import extract_cohort
from hyperinflam.study.definition import StudyDefinition, load_study
from hyperinflam.study.methods import methods_text
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
    """What the Methods say (hyperinflam.study.methods): ``paragraphs`` as [topic, text] pairs,
    ``software`` (test -> call, for one footnote each), the PRISM III and phenotype notes."""
    text = methods_text(study)
    return {
        "paragraphs": [[topic, sentence] for topic, sentence in text["paragraphs"]],
        "software": text["software"],
        "prism": phenotype.PRISM_METHOD,
        "phenotype": phenotype.phenotype_method(study.index_drug),
    }


#: ``prism3_source`` of a patient with neither a recorded PRISM III nor any PRISM III input.
NOT_COMPUTABLE = "not computable"


def _with_prism(patients: pd.DataFrame, prism_frame: pd.DataFrame) -> pd.DataFrame:
    """The listing with each patient's PRISM III: a recorded score when the run has one
    (``prism3_recorded``), else the computed PRISM III-24 points, else empty with source 'not
    computable' when no PRISM III input was observed (never 0); then without stay ids."""
    out = patients.copy()
    if not out.empty and "stay_id" in prism_frame.columns:
        p = prism_frame.set_index(prism_frame["stay_id"].astype(str))
        ids = out["stay_id"].astype(str)
        computed = ids.map(p[phenotype.PRISM_COLUMN]) if phenotype.PRISM_COLUMN in p else None
        recorded = ids.map(p["prism3_recorded"]) if "prism3_recorded" in p else None
        if recorded is not None:
            out["prism3"] = recorded.where(recorded.notna(), computed)
            out["prism3_source"] = np.where(recorded.notna(), "recorded",
                                            np.where(computed.notna(), "computed", None))
        elif computed is not None:
            out["prism3"] = pd.to_numeric(computed, errors="coerce")
            out["prism3_source"] = np.where(out["prism3"].notna(), "computed", None)
        out["prism3_source"] = out["prism3_source"].astype(object).where(
            out["prism3"].notna(), None)
        if phenotype.PRISM_OBSERVED_COLUMN in p:  # no PRISM III input at all: never 0 points
            none = ids.map(p[phenotype.PRISM_OBSERVED_COLUMN]).eq(0) & out["prism3"].isna()
            out.loc[none.to_numpy(), "prism3_source"] = NOT_COMPUTABLE
    return out.drop(columns=["stay_id"], errors="ignore")


def _with_recognition(con, frames, definition: StudyDefinition, results: pd.DataFrame,
                      patients: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The secondary analysis "time from recognition to treatment" (study.recognition): its
    results rows appended, its per-patient columns in the listing."""
    cohort = frames.cohort
    first = recognition.first_met_frame(con, cohort)
    per = recognition.per_patient(cohort, first, definition)
    values = frames.marker_values
    chosen = values[values["role"].notna() & values["stay_id"].isin(set(cohort["stay_id"]))]
    rows = analysis._Rows(definition.study.id)
    recognition.results_rows(rows, definition, per, chosen, len(cohort), frames.units)
    results = analysis.results_frame(results.to_dict("records") + rows.rows)
    out = patients.copy()
    if not out.empty:
        p = per.set_index("stay_id")
        ids = out["stay_id"].astype(str)
        for column in recognition.PATIENT_COLUMNS:
            out[column] = ids.map(p[column])
    else:
        for column in recognition.PATIENT_COLUMNS:
            out[column] = pd.Series(dtype=object)
    return results, out


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
    results, observations, patients = analysis.analyse(frames, definition)
    say("Screening criteria at the index time and PRISM III-24")
    index_frame, prism_frame = phenotype.phenotype_frames(con, frames.cohort)
    phenotype_rows = phenotype.phenotype_results(definition.study.id, index_frame, prism_frame)
    if not phenotype_rows.empty:
        results = analysis.results_frame(
            results.to_dict("records")
            + phenotype_rows.reindex(columns=results.columns).to_dict("records"))
    if definition.recognition.enabled:
        say("Finding when each patient first met a phenotype criterion")
        results, patients = _with_recognition(con, frames, definition, results, patients)
    patients = _with_prism(patients, prism_frame)
    say("Collecting provenance")
    provenance = {
        "versions": {"hyperinflam": __version__, "duckdb": _version("duckdb"),
                     "ibis-framework": _version("ibis-framework"), "scipy": _version("scipy"),
                     "statsmodels": _version("statsmodels"), "numpy": _version("numpy"),
                     "pandas": _version("pandas"),
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
                        definition=definition.model_dump(mode="json"), provenance=provenance,
                        patients=patients)

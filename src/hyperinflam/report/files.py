"""The study results as files: results.csv, observations.csv, patients.csv and results.json
(docs/results-format.md §4). The tables are written as they are; nothing is computed here."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hyperinflam.study.results import (OBSERVATIONS_COLUMNS, PATIENTS_COLUMNS, RESULTS_COLUMNS,
                                       StudyResults)

RESULTS_CSV = "results.csv"
OBSERVATIONS_CSV = "observations.csv"
RESULTS_JSON = "results.json"
PATIENTS_CSV = "patients.csv"


def _json_value(value: Any) -> Any:
    """Plain JSON data: NaN/NaT/±inf → null, timestamps → ISO 8601, numpy → Python, paths → text."""
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [_json_value(v) for v in items]
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, pd.Timedelta):
        return value.total_seconds()
    if hasattr(value, "model_dump"):  # a pydantic model left in the definition
        return _json_value(value.model_dump(mode="json"))
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _records(df: pd.DataFrame, columns: list[str]) -> list[dict]:
    cols = [c for c in columns if c in df.columns] + [c for c in df.columns if c not in columns]
    return [_json_value(rec) for rec in df[cols].to_dict(orient="records")]


def _ordered(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The documented columns first, in the documented order, then any extra ones."""
    return df[[c for c in columns if c in df.columns] + [c for c in df.columns if c not in columns]]


def results_document(results: StudyResults) -> dict:
    """The content of results.json as plain data (NaN → None)."""
    return {
        "study": _json_value(results.definition or {}),
        "provenance": _json_value(results.provenance or {}),
        "results": _records(results.results, RESULTS_COLUMNS),
        "observations": _records(results.observations, OBSERVATIONS_COLUMNS),
    }


def write_results(results: StudyResults, out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.csv``, ``observations.csv``, ``patients.csv`` and ``results.json`` into
    ``out_dir`` (created if needed) and return their paths by name. Floats are written with full
    precision (shortest round-trip form); empty cells are empty in CSV and ``null`` in JSON."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results_csv": out / RESULTS_CSV, "observations_csv": out / OBSERVATIONS_CSV,
             "patients_csv": out / PATIENTS_CSV, "results_json": out / RESULTS_JSON}
    patients = results.patients if results.patients is not None else pd.DataFrame(
        columns=PATIENTS_COLUMNS)
    patients.to_csv(paths["patients_csv"], index=False, lineterminator="\n")
    _ordered(results.results, RESULTS_COLUMNS).to_csv(paths["results_csv"], index=False,
                                                      lineterminator="\n")
    _ordered(results.observations, OBSERVATIONS_COLUMNS).to_csv(
        paths["observations_csv"], index=False, lineterminator="\n")
    doc = results_document(results)
    paths["results_json"].write_text(
        json.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return paths


def read_results(out_dir: str | Path) -> StudyResults:
    """Read back what :func:`write_results` wrote (tables from the CSV files, definition and
    provenance from results.json) — to re-render a report without re-running the study."""
    out = Path(out_dir)
    text_cols = {c: "string" for c in RESULTS_COLUMNS if c != "value"}
    res = pd.read_csv(out / RESULTS_CSV, dtype=text_cols, keep_default_na=False,
                      na_values={"value": [""]})
    res = res.replace({"": None})
    obs_text = {c: "string" for c in OBSERVATIONS_COLUMNS if c not in ("hours_from_index", "value")}
    obs = pd.read_csv(out / OBSERVATIONS_CSV, dtype=obs_text, keep_default_na=False,
                      na_values={"value": [""], "hours_from_index": [""]})
    obs = obs.replace({"": None})
    doc = json.loads((out / RESULTS_JSON).read_text(encoding="utf-8"))
    patients = (pd.read_csv(out / PATIENTS_CSV) if (out / PATIENTS_CSV).is_file()
                else pd.DataFrame(columns=PATIENTS_COLUMNS))
    return StudyResults(results=res, observations=obs, definition=doc.get("study") or {},
                        provenance=doc.get("provenance") or {}, patients=patients)

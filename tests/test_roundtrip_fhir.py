"""Round trip (issue 5 item 6): synthetic cohort -> CSV -> canonical -> FHIR bulk NDJSON ->
canonical gives identical tables."""

from __future__ import annotations

import json

from hyperinflam.engine import connect_memory
from hyperinflam.schema import CANONICAL_TABLES
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.exports.fhir import export_fhir_ndjson
from hyperinflam.sources.fhir.reader import load_fhir
from hyperinflam.synth.writer import synthesize


def test_synthetic_cohort_round_trips_through_fhir_ndjson(tmp_path):
    synthesize(tmp_path / "csv", 30, 7)
    original = connect_memory()
    load_csv_folder(original, tmp_path / "csv")
    written = export_fhir_ndjson(original, tmp_path / "ndjson")
    # Every line is a FHIR resource of its file's type.
    for name, n in written.items():
        lines = (tmp_path / "ndjson" / f"{name}.000.ndjson").read_text().splitlines()
        assert len(lines) == n and all(json.loads(x)["resourceType"] == name for x in lines)
    back = connect_memory()
    report = load_fhir(back, tmp_path / "ndjson")
    assert report.reconciles
    assert all(t.quarantined == 0 for t in report.tables), [t.reasons for t in report.tables]
    for table in CANONICAL_TABLES:
        cols = ", ".join(table.column_names)
        a = original.con.execute(f"SELECT {cols} FROM {table.name} ORDER BY ALL").fetchall()
        b = back.con.execute(f"SELECT {cols} FROM {table.name} ORDER BY ALL").fetchall()
        assert a, table.name
        assert a == b, table.name

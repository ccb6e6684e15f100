"""The CSV reader: quarantine reasons, reconciliation, idempotence, units and time zones.

Expected counts come from tests/data/broken_csv, written by hand with one known defect per line;
expected canonical values are computed here by hand from the factors of clinical reference 11.1.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from hyperinflam import cli
from hyperinflam.cli import app
from hyperinflam.engine import connect_memory
from hyperinflam.errors import SourceError
from hyperinflam.sources.csv import load_csv_folder, render_load_report

ROOT = Path(__file__).resolve().parents[1]
BROKEN = ROOT / "tests" / "data" / "broken_csv"
EXAMPLE = ROOT / "docs" / "example-csv"

# table -> (read, loaded, quarantined, {reason: count}); by construction of tests/data/broken_csv
EXPECTED = {
    "person": (5, 2, 3, {"unparseable_date": 1, "invalid_sex": 1, "missing_required_value": 1}),
    "stay": (5, 2, 3, {"unknown_person": 1, "end_before_start": 1, "unparseable_time": 1}),
    "measurement": (19, 3, 16, {
        "unknown_unit": 1, "missing_unit": 1, "unit_needs_configuration": 2, "ambiguous_value": 1,
        "implausible_value": 2, "unparseable_time": 1, "unparseable_value": 1,
        "unknown_variable": 1, "unknown_person": 1, "unknown_stay": 1, "stay_person_mismatch": 1,
        "duplicate_row": 1, "missing_required_value": 1, "malformed_line": 1}),
    "drug_administration": (5, 2, 3, {"unknown_drug": 1, "unknown_dose_unit": 1,
                                      "end_before_start": 1}),
    "organ_support": (4, 2, 2, {"unknown_support": 1, "unknown_dose_unit": 1}),
    "condition": (3, 2, 1, {"invalid_boolean": 1}),
    "event": (3, 2, 1, {"invalid_event_type": 1}),
}

# (file, line, reason) known by construction
TRIPLES = [
    ("person.csv", 4, "unparseable_date"), ("person.csv", 5, "invalid_sex"),
    ("person.csv", 6, "missing_required_value"),
    ("stay.csv", 4, "unknown_person"), ("stay.csv", 5, "end_before_start"),
    ("stay.csv", 6, "unparseable_time"),
    ("measurement.csv", 4, "unknown_unit"), ("measurement.csv", 5, "missing_unit"),
    ("measurement.csv", 6, "unit_needs_configuration"), ("measurement.csv", 7, "ambiguous_value"),
    ("measurement.csv", 8, "implausible_value"), ("measurement.csv", 9, "unparseable_time"),
    ("measurement.csv", 10, "unparseable_value"), ("measurement.csv", 11, "unknown_variable"),
    ("measurement.csv", 12, "unknown_person"), ("measurement.csv", 13, "unknown_stay"),
    ("measurement.csv", 14, "stay_person_mismatch"), ("measurement.csv", 15, "duplicate_row"),
    ("measurement.csv", 17, "unit_needs_configuration"),
    ("measurement.csv", 18, "missing_required_value"), ("measurement.csv", 19, "malformed_line"),
    ("measurement.csv", 20, "implausible_value"),
    ("drug_administration.csv", 4, "unknown_drug"),
    ("drug_administration.csv", 5, "unknown_dose_unit"),
    ("drug_administration.csv", 6, "end_before_start"),
    ("organ_support.csv", 4, "unknown_support"), ("organ_support.csv", 5, "unknown_dose_unit"),
    ("condition.csv", 4, "invalid_boolean"), ("event.csv", 4, "invalid_event_type"),
]


def _quarantine(con) -> list[tuple]:
    rows = con.con.execute("SELECT source_file, source_line, reason, detail, raw FROM quarantine "
                           "ORDER BY source_file, source_line").fetchall()
    return [(Path(f).name, line, reason, detail, raw) for f, line, reason, detail, raw in rows]


@pytest.fixture(scope="module")
def broken():
    con = connect_memory()
    report = load_csv_folder(con, BROKEN)
    return con, report


def test_counts_per_table_and_reason(broken):
    _, report = broken
    for table, (read, loaded, quarantined, reasons) in EXPECTED.items():
        c = report.counts(table)
        assert (c.read, c.loaded, c.already_present, c.quarantined) == (read, loaded, 0, quarantined), table
        assert c.reasons == reasons, table
        assert c.reconciles
    assert report.reconciles


def test_quarantine_locations(broken):
    con, _ = broken
    found = {(f, line, reason) for f, line, reason, _, _ in _quarantine(con)}
    assert found == set(TRIPLES)


def test_quarantine_details_teach_the_fix(broken):
    con, _ = broken
    q = {(f, line): (reason, detail, raw) for f, line, reason, detail, raw in _quarantine(con)}
    reason, detail, raw = q[("measurement.csv", 4)]
    assert "furlongs" in detail and "10*3/ul" in detail and "/ul" in detail  # accepted spellings
    assert json.loads(raw) == {"person_id": "B01", "stay_id": "T01", "time": "2024-03-01 09:00",
                               "variable": "platelets", "value": "85", "unit": "furlongs"}
    assert "--units" in q[("measurement.csv", 6)][1]
    assert "line 2" in q[("measurement.csv", 15)][1]
    assert "2024-03-01 11:00" in json.loads(q[("measurement.csv", 19)][2])["line"]
    # temperature 52 Cel: outside 25-45 (clinical reference 11.2)
    assert "25-45" in q[("measurement.csv", 8)][1]


def test_loaded_values_and_flags(broken):
    con, _ = broken
    rows = con.con.execute("SELECT variable, value, unit, value_original, unit_original, flag "
                           "FROM measurement ORDER BY variable, value").fetchall()
    assert rows == [
        ("crp", pytest.approx(206.0), "mg/L", "20.6", "mg/dL", None),  # 20.6 mg/dL x 10
        ("ferritin", 8867.0, "ng/mL", "8867", "ng/mL", None),
        ("ferritin", 120000.0, "ng/mL", "120000", "ng/mL", "extreme"),  # > 100 000 (11.2)
    ]
    drugs = con.con.execute("SELECT drug, drug_class, dose, dose_unit, route FROM drug_administration "
                            "ORDER BY start_time").fetchall()
    assert drugs == [("anakinra", "il1_blocker", 100.0, "mg", "iv"),
                     ("anakinra", "il1_blocker", 2.0, "mg/kg", "sc")]
    support = con.con.execute("SELECT support, dose, dose_unit FROM organ_support "
                              "ORDER BY support").fetchall()
    assert support == [("epinephrine", 0.1, "ug/kg/min"), ("invasive_ventilation", None, None)]
    assert con.con.execute("SELECT person_id, sex FROM person ORDER BY 1").fetchall() == [
        ("B01", "female"), ("B02", "male")]
    assert con.con.execute("SELECT condition, is_underlying, onset_time FROM condition "
                           "ORDER BY 1").fetchall() == [
        ("asthma", True, dt.datetime(2020, 1, 1)), ("splenomegaly", False, dt.datetime(2024, 3, 1, 11))]


def test_reload_adds_nothing_and_keeps_quarantine_identical(broken):
    con = connect_memory()
    load_csv_folder(con, BROKEN)
    counts_before = {t: con.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in EXPECTED}
    quarantine_before = _quarantine(con)
    report = load_csv_folder(con, BROKEN)
    for table, (read, loaded, quarantined, reasons) in EXPECTED.items():
        c = report.counts(table)
        assert (c.read, c.loaded, c.already_present, c.quarantined) == (read, 0, loaded, quarantined)
        assert c.reasons == reasons
    assert {t: con.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in EXPECTED} == counts_before
    assert _quarantine(con) == quarantine_before


def test_changed_row_on_reload_is_quarantined_not_overwritten(tmp_path):
    folder = tmp_path / "site"
    shutil.copytree(EXAMPLE, folder)
    con = connect_memory()
    load_csv_folder(con, folder)
    text = (folder / "person.csv").read_text().replace("2016-05-12", "2016-05-13")
    (folder / "person.csv").write_text(text)
    report = load_csv_folder(con, folder)
    assert report.counts("person").reasons == {"conflicts_with_existing": 1}
    assert con.con.execute("SELECT birth_date FROM person WHERE person_id = 'P001'").fetchone()[0] \
        == dt.date(2016, 5, 12)


def test_missing_required_column_names_file_and_column(tmp_path):
    folder = tmp_path / "site"
    shutil.copytree(EXAMPLE, folder)
    (folder / "measurement.csv").write_text("person_id,stay_id,time,variable,value\nP001,S001,"
                                            "2024-03-01 06:30,ferritin,8867\n")
    with pytest.raises(SourceError, match=r"measurement\.csv line 1: missing required column\(s\) unit;"
                                          r" expected columns: person_id, time"):
        load_csv_folder(connect_memory(), folder)


def test_folder_without_stay_csv(tmp_path):
    (tmp_path / "person.csv").write_text("person_id,birth_date,sex\n")
    with pytest.raises(SourceError, match=r"missing stay\.csv"):
        load_csv_folder(connect_memory(), tmp_path)


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)


def test_other_units_give_identical_canonical_values(tmp_path):
    """The same child recorded in two unit systems; canonical values by hand from 11.1."""
    _write(tmp_path, "person.csv", "person_id,birth_date,sex\nA,2015-01-01,F\nB,2015-01-01,F\n")
    _write(tmp_path, "stay.csv", "stay_id,person_id,admit_time\nSA,A,2024-01-01 00:00\n"
                                 "SB,B,2024-01-01 00:00\n")
    pairs = [  # variable, (value, unit) at site A, (value, unit) at site B, canonical by hand
        ("crp", ("2.06", "mg/dL"), ("20.6", "mg/L"), 20.6),  # x 10
        ("fibrinogen", ("1.5", "g/L"), ("150", "mg/dL"), 150.0),  # x 100
        ("anc", ("1500", "cells/uL"), ("1.5", "10*3/uL"), 1.5),  # / 1000
        ("platelets", ("85000", "/uL"), ("85", "10*3/uL"), 85.0),  # / 1000
        ("temperature", ("102.2", "°F"), ("39", "Cel"), 39.0),  # (102.2 - 32) x 5/9
        ("triglycerides", ("3.0", "mmol/L"), ("265.71", "mg/dL"), 265.71),  # x 88.57
    ]
    lines = ["person_id,time,variable,value,unit"]
    for variable, (va, ua), (vb, ub), _ in pairs:
        lines += [f"A,2024-01-01 06:00,{variable},{va},{ua}", f"B,2024-01-01 06:00,{variable},{vb},{ub}"]
    _write(tmp_path, "measurement.csv", "\n".join(lines) + "\n")
    con = connect_memory()
    report = load_csv_folder(con, tmp_path)
    assert report.counts("measurement").loaded == 12
    values = dict(((p, v), x) for p, v, x in con.con.execute(
        "SELECT person_id, variable, value FROM measurement").fetchall())
    for variable, _, _, expected in pairs:
        assert values[("A", variable)] == pytest.approx(expected, rel=1e-12)
        assert values[("B", variable)] == pytest.approx(expected, rel=1e-12)


def test_offsets_and_site_time_zone_land_on_the_right_utc_instant(tmp_path):
    _write(tmp_path, "person.csv", "person_id,birth_date,sex\nA,2015-01-01,female\n")
    _write(tmp_path, "stay.csv",
           "stay_id,person_id,admit_time,discharge_time\n"
           "S1,A,2024-07-01 10:00,2024-07-02T10:00:00-05:00\n"  # CEST (+02:00); explicit -05:00
           "S2,A,2024-01-15 10:00,2024-01-16T10:00:00Z\n")  # CET (+01:00); explicit UTC
    con = connect_memory()
    load_csv_folder(con, tmp_path, tz="Europe/Amsterdam")
    assert con.con.execute("SELECT stay_id, admit_time, discharge_time FROM stay ORDER BY 1").fetchall() == [
        ("S1", dt.datetime(2024, 7, 1, 8, 0), dt.datetime(2024, 7, 2, 15, 0)),
        ("S2", dt.datetime(2024, 1, 15, 9, 0), dt.datetime(2024, 1, 16, 10, 0)),
    ]
    assert con.con.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "UTC"


def test_unknown_time_zone_is_a_source_error():
    with pytest.raises(SourceError, match="Mars/Olympus"):
        load_csv_folder(connect_memory(), EXAMPLE, tz="Mars/Olympus")


def test_example_folder_loads_without_quarantine():
    con = connect_memory()
    tables = []
    report = load_csv_folder(con, EXAMPLE, progress=tables.append)
    assert tables == ["person", "stay", "measurement", "drug_administration", "organ_support",
                      "condition", "event"]
    assert sum(t.quarantined for t in report.tables) == 0
    assert all(t.read > 0 and t.read == t.loaded for t in report.tables)
    out = io.StringIO()
    render_load_report(report, Console(file=out, width=140))
    assert "No rows quarantined" in out.getvalue()


def test_cli_prints_reconciliation(tmp_path, monkeypatch):
    monkeypatch.setattr(cli.console, "width", 160)
    result = CliRunner().invoke(app, ["load", "csv", str(BROKEN), "--db", str(tmp_path / "h.duckdb")])
    assert result.exit_code == 0, result.output
    assert "measurement" in result.output and "unit_needs_configuration" in result.output
    assert "measurement.csv:6" in result.output  # example location of a reason
    assert re.search(r"total\s.*\b44\b", result.output)  # rows read: 5+5+19+5+4+3+3


def test_cli_missing_column_exits_2_naming_file_and_column(tmp_path):
    folder = tmp_path / "site"
    shutil.copytree(EXAMPLE, folder)
    (folder / "stay.csv").write_text("stay_id,admit_time\nS001,2024-03-01 08:15\n")
    result = CliRunner().invoke(app, ["load", "csv", str(folder), "--db", str(tmp_path / "h.duckdb")])
    assert result.exit_code == 2
    assert "stay.csv" in result.output and "person_id" in result.output
    assert "Traceback" not in result.output

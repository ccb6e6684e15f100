"""Two values of one variable for the same person and time (issue 12 item 11): equal after unit
conversion -> a duplicate (quarantined ``duplicate_value``, one kept); different -> every one
kept and flagged ``conflicting`` (docs/csv-layout.md). Expected values by hand: FiO2 35 % =
0.35 (x 1/100, clinical reference §11.1), Hb 92 g/L = 9.2 g/dL (x 1/10).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hyperinflam.engine import connect
from hyperinflam.sources.csv import load_csv_folder

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "example-csv"
HEADER = "person_id,stay_id,time,variable,value,unit\n"


def _folder(tmp_path: Path, name: str, rows: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for table in ("person", "stay"):
        shutil.copy(EXAMPLE / f"{table}.csv", folder / f"{table}.csv")
    (folder / "measurement.csv").write_text(HEADER + rows)
    return folder


FIRST = """\
P001,S001,2024-03-02 08:00,fio2,35,%
P001,S001,2024-03-02 08:00,fio2,0.35,1
P001,S001,2024-03-02 09:00,spo2,90,%
P001,S001,2024-03-02 09:00,spo2,95,%
P001,S001,2024-03-02 10:00,hemoglobin,92,g/L
P001,S001,2024-03-02 10:00,hemoglobin,9.2,g/dL
P001,S001,2024-03-02 10:00,hemoglobin,9.2,g/dL
P001,S001,2024-03-02 11:00,heart_rate,120,/min
"""


def _rows(con):
    return con.con.execute("SELECT variable, strftime(time, '%H:%M'), value, value_original, "
                           "unit_original, flag FROM measurement ORDER BY 1, 2, 4").fetchall()


def _quarantine(con):
    return con.con.execute("SELECT source_line, reason, detail FROM quarantine "
                           "ORDER BY source_file, source_line").fetchall()


def test_equal_values_after_conversion_are_duplicates_and_different_ones_are_flagged(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    report = load_csv_folder(con, _folder(tmp_path, "first", FIRST))
    counts = report.counts("measurement")
    # 8 rows: line 3 (0.35 = 35 %) and line 7 (9.2 g/dL = 92 g/L) are duplicate values, line 8
    # repeats line 7 exactly (duplicate_row); the two SpO2 values differ: both kept, flagged
    assert (counts.read, counts.loaded, counts.quarantined) == (8, 5, 3)
    assert counts.reasons == {"duplicate_value": 2, "duplicate_row": 1}
    assert _rows(con) == [
        ("fio2", "08:00", 0.35, "35", "%", None),
        ("heart_rate", "11:00", 120.0, "120", "/min", None),
        ("hemoglobin", "10:00", 9.2, "92", "g/L", None),
        ("spo2", "09:00", 90.0, "90", "%", "conflicting"),
        ("spo2", "09:00", 95.0, "95", "%", "conflicting"),
    ]
    q = _quarantine(con)
    assert [(line, reason) for line, reason, _ in q] == [
        (3, "duplicate_value"), (7, "duplicate_value"), (8, "duplicate_row")]
    assert "line 2 has the same value (0.35 1 after unit conversion)" in q[0][2]
    assert "line 6 has the same value (9.2 g/dL" in q[1][2]
    con.disconnect()


def test_a_later_load_compares_with_the_database(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    load_csv_folder(con, _folder(tmp_path, "first", FIRST))
    second = """\
P001,S001,2024-03-02 08:00,fio2,35,%
P001,S001,2024-03-02 08:00,fio2,0.350,1
P001,S001,2024-03-02 11:00,heart_rate,135,/min
P001,S001,2024-03-02 12:00,heart_rate,110,/min
"""
    report = load_csv_folder(con, _folder(tmp_path, "second", second))
    counts = report.counts("measurement")
    # line 2: the same row as before (already present); line 3: 0.350 = the loaded 0.35
    # (duplicate_value); line 4: another heart rate at 11:00 (kept, flagged: the first load's
    # 120 is not rewritten); line 5: a new time
    assert (counts.read, counts.loaded, counts.already_present, counts.quarantined) == \
        (4, 2, 1, 1)
    assert counts.reasons == {"duplicate_value": 1}
    hr = [r for r in _rows(con) if r[0] == "heart_rate"]
    assert hr == [("heart_rate", "11:00", 120.0, "120", "/min", None),
                  ("heart_rate", "11:00", 135.0, "135", "/min", "conflicting"),
                  ("heart_rate", "12:00", 110.0, "110", "/min", None)]
    detail = [d for line, reason, d in _quarantine(con) if reason == "duplicate_value"
              and line == 3 and "second" in con.con.execute(
                  "SELECT string_agg(source_file, ',') FROM quarantine WHERE source_line = 3 "
                  "AND reason = 'duplicate_value'").fetchone()[0]]
    assert any("the database already holds the same value (0.35 1" in d for d in detail)
    con.disconnect()


def test_an_extreme_value_that_conflicts_keeps_both_flags(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    rows = ("P001,S001,2024-03-02 08:00,ferritin,150000,ng/mL\n"
            "P001,S001,2024-03-02 08:00,ferritin,1500,ng/mL\n")
    load_csv_folder(con, _folder(tmp_path, "first", rows))
    # ferritin > 100000 ng/mL is extreme (variables.csv extreme_above, §11.2)
    assert [(r[2], r[5]) for r in _rows(con)] == [(1500.0, "conflicting"),
                                                  (150000.0, "extreme,conflicting")]
    con.disconnect()


def test_every_reader_flags_exactly_the_times_with_two_values(tmp_path):
    """The MIMIC-IV demo extract (MEDS) records two devices at one time (arterial and cuff MAP):
    the flagged rows are exactly those whose person, variable and time hold more than one
    value, counted with SQL on the loaded rows; no two loaded rows share a value there."""
    from hyperinflam.sources.meds import load_meds

    con = connect(tmp_path / "db.duckdb")
    load_meds(con, EXAMPLE.parents[1] / "tests" / "data" / "mimic_iv_demo_meds"
              / "mimic_iv_demo_meds_events.parquet", all_icu=True, max_age_years=None)
    q = con.con.execute
    groups = """(SELECT person_id, time, variable FROM measurement GROUP BY ALL
                 HAVING count(DISTINCT value) > 1)"""
    expected = q(f"SELECT count(*) FROM measurement SEMI JOIN {groups} g "
                 f"USING (person_id, time, variable)").fetchone()[0]
    flagged = q("SELECT count(*) FROM measurement WHERE flag LIKE '%conflicting%'").fetchone()[0]
    assert expected > 0 and flagged == expected
    assert q("SELECT count(*) FROM (SELECT person_id, time, variable, value FROM measurement "
             "GROUP BY ALL HAVING count(*) > 1)").fetchone()[0] == 0
    con.disconnect()


def test_a_reload_of_flagged_rows_is_already_present(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    folder = _folder(tmp_path, "first", FIRST)
    load_csv_folder(con, folder)
    counts = load_csv_folder(con, folder).counts("measurement")
    # the two flagged SpO2 rows are the rows loaded before (their flag is not compared): the
    # 5 loaded rows are already present, the 3 quarantined ones again duplicates
    assert (counts.read, counts.loaded, counts.already_present, counts.quarantined) == \
        (8, 0, 5, 3)
    assert counts.reasons == {"duplicate_value": 2, "duplicate_row": 1}
    con.disconnect()

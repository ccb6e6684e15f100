"""The MEDS reader on the real MIMIC-IV demo in MEDS form: the extract in
tests/data/mimic_iv_demo_meds (10 of the 100 subjects, every event of each; its SOURCE.md).

Expected counts and values are computed here from the Parquet file with pyarrow, independently of
the reader (which works in DuckDB SQL); the literals beside them were counted with DuckDB over the
raw extract (query in the comment); canonical values follow clinical reference §11.1 by hand.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hyperinflam.cli import app
from hyperinflam.engine import connect_memory
from hyperinflam.errors import SourceError
from hyperinflam.sources.meds import DAYS_PER_400_YEARS, load_meds

EVENTS = (Path(__file__).resolve().parent / "data" / "mimic_iv_demo_meds"
          / "mimic_iv_demo_meds_events.parquet")

# itemid -> (variable, canonical unit, factor, offset): clinical reference 11.1, by hand.
CANONICAL = {
    "50924": ("ferritin", "ng/mL", 1.0, 0.0),     # ng/mL
    "50889": ("crp", "mg/L", 1.0, 0.0),           # mg/L
    "51214": ("fibrinogen", "mg/dL", 1.0, 0.0),   # mg/dL
    "52075": ("anc", "10*3/uL", 1.0, 0.0),        # K/uL = 10^3/uL
    "51133": ("alc", "10*3/uL", 1.0, 0.0),        # K/uL
    "223761": ("temperature", "Cel", 5 / 9, -32 * 5 / 9),  # degF: (F - 32) x 5/9
}


@pytest.fixture(scope="module")
def events() -> pa.Table:
    return pq.read_table(EVENTS)


@pytest.fixture(scope="module")
def loaded():
    con = connect_memory()
    report = load_meds(con, EVENTS, all_icu=True, max_age_years=None)
    return con, report


def _rows(events: pa.Table, prefix: str) -> pa.Table:
    return events.filter(pc.starts_with(events["code"], prefix))


def _float32_decimal(values) -> list[float]:
    """The shortest decimal that reads back to the same float32 (numpy's repr), as a float."""
    return [float(repr(np.float32(v)).removeprefix("np.float32(").removesuffix(")"))
            for v in values]


def test_counts_reconcile_and_match_the_parquet_file(loaded, events):
    con, report = loaded
    assert report.reconciles
    codes = events["code"].to_pylist()
    # Literals: DuckDB over the extract, SELECT count(*) FROM the events file (89,727); count(
    # DISTINCT subject_id) WHERE code = 'MEDS_BIRTH' (10); codes LIKE 'ICU_ADMISSION//%' (15);
    # code = 'MEDS_DEATH' (4).
    assert report.events_read == events.num_rows == 89_727
    assert report.events_staged + sum(report.events_out_of_scope.values()) == events.num_rows

    person = report.counts("person")
    subjects = set(_rows(events, "MEDS_BIRTH")["subject_id"].to_pylist())
    assert (person.read, person.loaded) == (len(subjects), len(subjects)) == (10, 10)
    stay = report.counts("stay")
    n_admissions = sum(c.startswith("ICU_ADMISSION//") for c in codes)
    assert (stay.read, stay.loaded) == (n_admissions, n_admissions) == (15, 15)
    event = report.counts("event")
    assert (event.read, event.loaded) == (codes.count("MEDS_DEATH"),) * 2 == (4, 4)

    # every read row is in its table or in quarantine with this source
    raw = con.con
    for t in report.tables:
        # every line of the table (event: also the infections derived from ICD-10-CM diagnoses)
        loaded = sum(u.loaded for u in report.tables if u.table == t.table)
        assert raw.execute(f"SELECT count(*) FROM {t.table}").fetchone()[0] == loaded
        assert raw.execute("SELECT count(*) FROM quarantine WHERE target_table = ? AND "
                           "source_file = ?", [t.table, t.source]).fetchone()[0] == t.quarantined
    sex = Counter(c for c in codes if c.startswith("GENDER//"))
    got = dict(raw.execute("SELECT sex, count(*) FROM person GROUP BY sex").fetchall())
    assert got == {"male": sex["GENDER//M"], "female": sex["GENDER//F"]}


@pytest.mark.parametrize("itemid", sorted(CANONICAL))
def test_real_values_arrive_in_canonical_units(loaded, events, itemid):
    con, report = loaded
    variable, unit, factor, offset = CANONICAL[itemid]
    rows = _rows(events, f"LAB//{itemid}//")
    values = [v for v in rows["value"].to_pylist() if v is not None]
    expected = sorted(v * factor + offset for v in _float32_decimal(values))
    got = [r[0] for r in con.con.execute(
        "SELECT value FROM measurement WHERE variable = ? AND unit_original = ? ORDER BY value",
        [variable, rows["code"][0].as_py().split("//", 2)[2]]).fetchall()]
    units = {r[0] for r in con.con.execute(
        "SELECT DISTINCT unit FROM measurement WHERE variable = ?", [variable]).fetchall()}
    assert units == {unit}
    assert len(got) == len(expected) > 0
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # rows without a value (text results dropped upstream) are quarantined, not lost
    n_null = rows.num_rows - len(values)
    assert con.con.execute(
        "SELECT count(*) FROM quarantine WHERE target_table = 'measurement' AND reason = "
        "'missing_required_value' AND json_extract_string(raw, '$.unit') = ? AND json_extract_string(raw, '$.variable') = ?",
        [rows["code"][0].as_py().split("//", 2)[2], variable]).fetchone()[0] == n_null


def test_float32_values_are_rounded_to_their_float32_precision(loaded):
    con, _ = loaded
    # 51222 Hb values such as 15.1 are float32 (15.100000381469727 when widened)
    assert float(np.float32(15.1)) != 15.1
    originals = {r[0] for r in con.con.execute(
        "SELECT value_original FROM measurement WHERE variable = 'hemoglobin'").fetchall()}
    assert "15.1" in originals
    assert not any(len(v.split(".")[-1]) > 6 for v in originals)


def test_unknown_units_are_quarantined_unless_dimensionless(loaded, events):
    con, report = loaded
    fio2_unk = _rows(events, "LAB//223835//UNK").num_rows  # DuckDB: code LIKE 'LAB//223835//UNK%'
    assert report.counts("measurement").reasons["missing_unit"] == fio2_unk == 111
    inr = _rows(events, "LAB//51237//UNK")
    n_inr = sum(v is not None for v in inr["value"].to_pylist())
    assert con.con.execute("SELECT count(*), min(unit) FROM measurement WHERE variable = 'inr'"
                           ).fetchone() == (n_inr, "{INR}")


def test_stays_pair_admission_with_next_discharge_and_times_are_shifted(loaded, events):
    con, report = loaded
    assert report.shift_years == 400
    icu = _rows(events, "ICU_").to_pylist()
    first = {}  # first ICU admission per subject, computed in Python
    for r in sorted(icu, key=lambda r: (r["subject_id"], r["time"])):
        first.setdefault(r["subject_id"], r) if r["code"].startswith("ICU_ADMISSION") else None
    subject, admission = next(iter(sorted(first.items())))
    later = [r for r in icu if r["subject_id"] == subject and r["time"] > admission["time"]
             and r["code"].startswith("ICU_DISCHARGE")]
    discharge = min(r["time"] for r in later)
    shift = dt.timedelta(days=DAYS_PER_400_YEARS)
    got = con.con.execute("SELECT admit_time, discharge_time FROM stay WHERE stay_id = ?",
                          [f"{subject}-icu1"]).fetchone()
    assert got == (admission["time"] - shift, discharge - shift)
    assert (admission["time"] - shift).strftime("%m-%d %H:%M %a") == \
        admission["time"].strftime("%m-%d %H:%M %a")


def test_drugs_and_reload_is_idempotent(loaded, events):
    con, report = loaded
    med = _rows(events, "MEDICATION//Dexamethasone//")["code"].to_pylist()
    given = sum(c.split("//")[2] in ("Administered", "Administered in Other Location") for c in med)
    # DuckDB: code IN ('MEDICATION//Dexamethasone//Administered', '... in Other Location'): 16
    # (the 15 'Dexamethasone Ophthalmic Susp 0.1%' administrations are another code)
    assert con.con.execute("SELECT count(*) FROM drug_administration WHERE drug = "
                           "'dexamethasone'").fetchone()[0] == given == 16
    again = load_meds(con, EVENTS, all_icu=True, max_age_years=None)
    assert again.reconciles
    for first, second in zip(report.tables, again.tables):
        assert second.loaded == 0
        assert second.already_present == first.loaded
        assert second.quarantined == first.quarantined


def test_screen_runs_on_the_loaded_demo(loaded):
    from hyperinflam.screening.screen import screen

    con, _ = loaded
    result = screen(con).execute()
    assert len(result) > 0
    assert set(result["stay_id"]) <= {r[0] for r in con.con.execute("SELECT stay_id FROM stay")
                                      .fetchall()}


def test_adult_icu_is_not_picu_by_default(tmp_path, events):
    subjects = sorted(set(_rows(events, "ICU_ADMISSION")["subject_id"].to_pylist()))[:3]
    part = events.filter(pc.is_in(events["subject_id"], pa.array(subjects)))
    path = tmp_path / "part.parquet"
    pq.write_table(part, path)
    report = load_meds(connect_memory(), path)
    assert report.counts("stay").read == 0 and report.counts("person").read == 0
    assert report.icu_stays_not_picu == sum(
        c.startswith("ICU_ADMISSION//") for c in part["code"].to_pylist())
    assert report.events_out_of_scope and report.reconciles
    # the same slice with the demo options, through the command line
    db = tmp_path / "x.duckdb"
    result = CliRunner().invoke(app, ["load", "meds", str(path), "--db", str(db), "--all-icu",
                                      "--any-age"])
    assert result.exit_code == 0, result.output
    assert "\u2713" in result.output and "PICU stays" in result.output


def test_clear_errors(tmp_path, events):
    no_code = tmp_path / "no_code.parquet"
    pq.write_table(events.slice(0, 10).drop_columns(["code"]), no_code)
    with pytest.raises(SourceError, match="missing MEDS column.*code"):
        load_meds(connect_memory(), no_code)
    result = CliRunner().invoke(app, ["load", "meds", str(no_code), "--db",
                                      str(tmp_path / "x.duckdb")])
    assert result.exit_code == 2 and "code" in result.output and "Traceback" not in result.output
    codes = tmp_path / "codes.csv"
    codes.write_text("code,variable,drug\nLAB//999,not_a_variable,\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"codes.csv line 2: variable 'not_a_variable'"):
        load_meds(connect_memory(), no_code, codes=[codes])


def test_site_codes_file_maps_a_local_code(tmp_path, events):
    """A site maps FiO2 223835 as percent: its UNK rows then load (clinical reference 11.1: /100)."""
    subjects = sorted(set(_rows(events, "LAB//223835//UNK")["subject_id"].to_pylist()))[:2]
    part = events.filter(pc.is_in(events["subject_id"], pa.array(subjects)))
    path = tmp_path / "part.parquet"
    pq.write_table(part, path)
    codes = tmp_path / "site_codes.csv"
    codes.write_text("code,variable,drug,unit_when_unk,reference\n"
                     "LAB//223835,fio2,,%,site: charted in percent\n", encoding="utf-8")
    con = connect_memory()
    report = load_meds(con, path, codes=[codes], all_icu=True, max_age_years=None)
    fio2 = part.filter(pc.starts_with(part["code"], "LAB//223835//UNK"))["value"].to_pylist()
    ok = [v / 100 for v in _float32_decimal(fio2) if 21 <= v <= 100]
    got = [r[0] for r in con.con.execute("SELECT value FROM measurement WHERE variable = 'fio2' "
                                         "AND unit_original = '%' ORDER BY value").fetchall()]
    assert report.reconciles and "missing_unit" not in report.counts("measurement").reasons
    assert sorted(set(got)) == pytest.approx(sorted(set(ok)))

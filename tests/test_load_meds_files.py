"""Which MEDS files are read, and where a rejected event came from (issue 12 item 6).

The real sample folder (tests/data/mimic_iv_demo_meds) holds the MEDS events file beside a
long-form extract of the same labs and vitals (labs_vitals_long.parquet, its SOURCE.md) and two
CSV conversions: reading the folder must read the events once. A MEDS dataset root (data/ shards,
metadata/) is built here from the events file with pyarrow. Expected counts and rows are computed
with pyarrow from the files, independently of the reader (which works in DuckDB SQL).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from hyperinflam.engine import connect_memory
from hyperinflam.errors import SourceError
from hyperinflam.sources.meds import load_meds, meds_schema_problems

SAMPLE = Path(__file__).resolve().parent / "data" / "mimic_iv_demo_meds"
EVENTS = SAMPLE / "mimic_iv_demo_meds_events.parquet"
ADULTS = dict(all_icu=True, max_age_years=None)


def test_the_sample_folder_reads_the_events_once(tmp_path):
    events = pq.read_table(EVENTS)
    long_form = pq.read_table(SAMPLE / "labs_vitals_long.parquet")
    assert long_form.num_rows == 13_632  # SOURCE.md: the same labs and vitals, long form
    con = connect_memory()
    report = load_meds(con, SAMPLE, **ADULTS)
    assert report.reconciles
    assert report.events_read == events.num_rows == 89_727  # not 89,727 + 13,632
    note = next(n for n in report.notes if n.startswith("labs_vitals_long.parquet not read"))
    assert "code is large_string, MEDS requires string" in note
    assert any(n == "not read (not Parquet): SOURCE.md, admission_icu_events.csv, "
               "hyperinflammation_labs_long.csv." for n in report.notes)
    # the same rows as the events file named on its own
    alone = connect_memory()
    load_meds(alone, EVENTS, **ADULTS)
    for table in ("person", "stay", "measurement", "drug_administration", "event"):
        assert con.con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() == \
            alone.con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


def test_the_schema_check_follows_meds():
    assert meds_schema_problems(pq.read_schema(EVENTS)) == []  # `value` fallback, extra `table`
    assert meds_schema_problems(pq.read_schema(SAMPLE / "labs_vitals_long.parquet")) == [
        "code is large_string, MEDS requires string"]
    schema = pa.schema([("subject_id", pa.int32()), ("time", pa.timestamp("ns")),
                        ("numeric_value", pa.float64())])
    assert meds_schema_problems(schema) == [
        "subject_id is int32, MEDS requires int64", "time is timestamp[ns], MEDS requires "
        "timestamp[us]", "no column code", "numeric_value is double, MEDS requires float"]


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    """A MEDS dataset root: the sample's subjects in two shards, plus metadata/."""
    events = pq.read_table(EVENTS)
    subjects = sorted(set(events["subject_id"].to_pylist()))
    root = tmp_path_factory.mktemp("meds")
    shards = {}
    for split, part in (("train", subjects[:6]), ("held_out", subjects[6:])):
        (root / "data" / split).mkdir(parents=True)
        shard = events.filter(pc.is_in(events["subject_id"], pa.array(part, pa.int64())))
        pq.write_table(shard, root / "data" / split / "0.parquet")
        shards[root / "data" / split / "0.parquet"] = shard
    (root / "metadata").mkdir()
    pq.write_table(pa.table({"code": ["MEDS_BIRTH"], "description": ["birth"]}),
                   root / "metadata" / "codes.parquet")
    return root, shards


def test_a_quarantined_event_names_its_shard_and_row(dataset_root):
    root, shards = dataset_root
    con = connect_memory()
    report = load_meds(con, root, **ADULTS)
    assert report.reconciles and report.events_read == sum(s.num_rows for s in shards.values())
    # FiO2 223835 has no unit (UNK): every such row is quarantined at its shard and row
    expected = sorted((str(path.resolve()), i + 1)
                      for path, shard in shards.items()
                      for i, code in enumerate(shard["code"].to_pylist())
                      if code == "LAB//223835//UNK")
    got = sorted(con.con.execute(
        "SELECT source_file, source_line FROM quarantine WHERE reason = 'missing_unit'").fetchall())
    assert got == expected and len(got) == 111
    assert {f for f, _ in got} == {str(p.resolve()) for p in shards}  # both shards
    example = report.counts("measurement").examples["missing_unit"]
    assert example.rsplit(":", 1)[0] == "0.parquet"
    # a reload replaces them: no quarantine row twice
    load_meds(con, root, **ADULTS)
    assert sorted(con.con.execute("SELECT source_file, source_line FROM quarantine WHERE "
                                  "reason = 'missing_unit'").fetchall()) == expected


def test_the_load_names_unit_less_codes_and_the_codes_row_that_loads_them(dataset_root, tmp_path):
    root, shards = dataset_root
    report = load_meds(connect_memory(), root, **ADULTS)
    note = next(n for n in report.notes if n.startswith("LAB//223835//UNK (fio2): 111 events"))
    row = note.split("row loads them: ")[1].split(" (unit_when_missing")[0]
    assert row == "measurement,fio2,MEDS,LAB//223835,,<unit>,,,<your reference>"
    codes = tmp_path / "site_codes.csv"
    codes.write_text("kind,target,system,code,concept_id,unit_when_missing,display,status,"
                     "reference\n" + row.replace("<unit>", "%").replace("<your reference>",
                                                                        "site: percent") + "\n",
                     encoding="utf-8")
    before = connect_memory()
    load_meds(before, root, **ADULTS)
    con = connect_memory()
    again = load_meds(con, root, codes=[codes], **ADULTS)
    assert "missing_unit" not in again.counts("measurement").reasons
    assert not any("events without a unit" in n for n in again.notes)
    # every one of the 111 values is a percent in 21-100 (30-100 in the extract), distinct per
    # subject and time: all load, as value / 100 (clinical reference §11.1)
    fio2 = [(sid, t, v) for s in shards.values() for sid, t, c, v in zip(
        s["subject_id"].to_pylist(), s["time"].to_pylist(), s["code"].to_pylist(),
        s["value"].to_pylist()) if c == "LAB//223835//UNK"]
    assert all(21 <= v <= 100 for _, _, v in fio2) and len(set(fio2)) == len(fio2) == 111
    query = "SELECT count(*) FROM measurement WHERE variable = 'fio2' AND unit_original = '%'"
    added = con.con.execute(query).fetchone()[0] - before.con.execute(query).fetchone()[0]
    assert added == 111


def test_a_folder_without_a_meds_file_is_one_clear_error(tmp_path):
    pq.write_table(pq.read_table(SAMPLE / "labs_vitals_long.parquet"), tmp_path / "long.parquet")
    with pytest.raises(SourceError, match=r"no file follows the MEDS schema .* long\.parquet: "
                                          r"code is large_string, MEDS requires string"):
        load_meds(connect_memory(), tmp_path, **ADULTS)
    # named as PATH it is read, the departure said
    report = load_meds(connect_memory(), tmp_path / "long.parquet", **ADULTS)
    assert any("departs from the MEDS schema (code is large_string" in n for n in report.notes)

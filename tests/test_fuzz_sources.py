"""Property-based corruption of real sample files (issue 5 item 7).

Real files (docs/example-csv, a small CSV folder derived from the MIMIC-IV demo, slices of the
MIMIC-IV demo in MEDS form, FHIR R4 specification Bundles; the extracts in tests/data) are
corrupted at random: lines cut,
characters flipped (including quotes, commas, NUL and non-UTF-8 bytes), columns deleted, units
swapped, garbage lines and rows inserted, files truncated. Every load must either raise
:class:`SourceError` (one clear message) or finish with a report that reconciles
(read = loaded + already present + quarantined per table) and matches what is in the database:
rows loaded are in the canonical tables, rows quarantined are in the quarantine table.
Examples are bounded (a few dozen per reader) so the file stays fast.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperinflam.engine import connect_memory
from hyperinflam.errors import SourceError
from hyperinflam.sources import LoadReport
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.sources.meds import load_meds

#: Not in the quick subset (pytest -m "not slow"):
#: hypothesis corrupts the real samples hundreds of times.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
MIMIC = DATA / "mimic_iv_demo_meds"
FHIR_BUNDLES = DATA / "fhir_r4_spec_examples" / "bundles"
EXAMPLE_CSV = ROOT / "docs" / "example-csv"

FUZZ = settings(max_examples=20, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
UNITS = ["ng/mL", "mg/L", "mg/dL", "g/L", "K/uL", "%", "mmHg", "°F", "UNK", "nmol/L", "", "1",
         "10*3/uL", "mg/L{FEU}", "ng/mL{DDU}", "x"]
NOISE = list(',"\n\r;\t{}[]:\\') + ["\x00", "\ufffd", "é", "1e309", "nan", "-", " ", "9" * 30]


def _assert_consistent(con, report: LoadReport) -> None:
    assert report.reconciles, [(t.table, t.read, t.loaded, t.already_present, t.quarantined)
                               for t in report.tables]
    raw = con.con
    for table in {t.table for t in report.tables}:
        loaded = sum(t.loaded for t in report.tables if t.table == table)
        if table == "(unknown)":  # a file that is not JSON at all: quarantined, never loaded
            assert loaded == 0
            continue
        assert raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == loaded, table
        for t in report.tables:
            if t.table == table:
                assert sum(t.reasons.values()) == t.quarantined, table
    quarantined = sum(t.quarantined for t in report.tables)
    tables = sorted({t.table for t in report.tables})
    in_tables = raw.execute(f"SELECT count(*) FROM quarantine WHERE target_table IN "
                            f"({', '.join(repr(t) for t in tables)})").fetchone()[0]
    assert in_tables == quarantined
    # rows that belong to no table (a FHIR file that is not JSON at all) are counted on a report
    # row of their own, and named in the notes
    for source_file, line in raw.execute("SELECT source_file, source_line FROM quarantine WHERE "
                                         "target_table = '(unknown)'").fetchall():
        assert any(f"{source_file}:{line}" in note for note in report.notes)


# ---------------------------------------------------------------------------------------------
# text mutations (CSV, JSON)
def _mutate_text(data: bytes, ops: list[tuple]) -> bytes:
    lines = data.split(b"\n")
    for op, a, b, text in ops:
        i = a % len(lines)
        if op == "truncate_line":
            lines[i] = lines[i][: b % (len(lines[i]) + 1)]
        elif op == "flip_char":
            line = lines[i]
            k = b % (len(line) + 1)
            lines[i] = line[:k] + text.encode("utf-8", "surrogatepass") + line[k + 1:]
        elif op == "bad_byte":
            line = lines[i]
            k = b % (len(line) + 1)
            lines[i] = line[:k] + b"\xff\xfe" + line[k:]
        elif op == "delete_column":
            cut = []
            for line in lines:
                fields = line.split(b",")
                if len(fields) > 1:
                    del fields[b % len(fields)]
                cut.append(b",".join(fields))
            lines = cut
        elif op == "swap_unit":
            old, new = UNITS[a % len(UNITS)], UNITS[b % len(UNITS)]
            if old:
                lines = [line.replace(old.encode(), new.encode()) for line in lines]
        elif op == "insert_garbage":
            lines.insert(i, text.encode("utf-8", "surrogatepass"))
        elif op == "drop_line":
            del lines[i]
            if not lines:
                lines = [b""]
        elif op == "truncate_file":
            joined = b"\n".join(lines)
            lines = joined[: b % (len(joined) + 1)].split(b"\n")
    return b"\n".join(lines)


TEXT_OPS = st.lists(st.tuples(
    st.sampled_from(["truncate_line", "flip_char", "bad_byte", "delete_column", "swap_unit",
                     "insert_garbage", "drop_line", "truncate_file"]),
    st.integers(0, 10_000), st.integers(0, 10_000),
    st.one_of(st.sampled_from(NOISE), st.text(max_size=40))), min_size=1, max_size=3)


def _corrupt_folder(src: Path, dst: Path, file_index: int, ops) -> Path:
    shutil.copytree(src, dst)
    files = sorted(p for p in dst.rglob("*") if p.is_file())
    target = files[file_index % len(files)]
    target.write_bytes(_mutate_text(target.read_bytes(), ops))
    return target


@pytest.fixture(scope="module")
def mimic_csv(tmp_path_factory) -> Path:
    """A CSV folder (docs/csv-layout.md) from the MIMIC-IV demo: three subjects' persons, ICU
    stays and hyperinflammation labs; years moved back 400 (dates stay valid, none in the future)."""
    out = tmp_path_factory.mktemp("mimic_csv")
    itemids = {}
    with open(ROOT / "src" / "hyperinflam" / "vocabulary" / "codes.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["system"] == "MEDS" and row["code"].startswith("LAB//") \
                    and row["kind"] == "measurement":
                itemids[row["code"].split("//")[1]] = row["target"]

    def back(t: str) -> str:
        return f"{int(t[:4]) - 400:04d}{t[4:]}" if t else t

    with open(MIMIC / "admission_icu_events.csv", encoding="utf-8") as f:
        events = list(csv.DictReader(f))
    subjects = sorted({e["subject_id"] for e in events if e["code"].startswith("ICU_ADMISSION")})[:3]
    births = {e["subject_id"]: back(e["time"])[:10] for e in events if e["code"] == "MEDS_BIRTH"}
    sexes = {e["subject_id"]: e["code"][-1] for e in events if e["code"].startswith("GENDER//")}
    with open(out / "person.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["person_id", "birth_date", "sex"])
        w.writerows([s, births.get(s, ""), sexes.get(s, "")] for s in subjects)
    with open(out / "stay.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["stay_id", "person_id", "admit_time", "discharge_time"])
        for s in subjects:
            icu = sorted((e["time"], e["code"]) for e in events
                         if e["subject_id"] == s and e["code"].startswith("ICU_"))
            n = 0
            for (t, code), nxt in zip(icu, icu[1:] + [("", "")]):
                if code.startswith("ICU_ADMISSION"):
                    n += 1
                    end = nxt[0] if nxt[1].startswith("ICU_DISCHARGE") else ""
                    w.writerow([f"{s}-icu{n}", s, back(t), back(end)])
    with open(MIMIC / "hyperinflammation_labs_long.csv", encoding="utf-8") as f, \
            open(out / "measurement.csv", "w", newline="", encoding="utf-8") as g:
        w = csv.writer(g)
        w.writerow(["person_id", "time", "variable", "value", "unit"])
        for r in csv.DictReader(f):
            if r["subject_id"] in subjects and r["itemid"] in itemids:
                w.writerow([r["subject_id"], back(r["time"]), itemids[r["itemid"]], r["value"],
                            r["unit"]])
    return out


@pytest.fixture(scope="module")
def meds_slice() -> pa.Table:
    events = pq.read_table(MIMIC / "mimic_iv_demo_meds_events.parquet")
    subjects = sorted(set(events.filter(pc.starts_with(events["code"], "ICU_ADMISSION"))
                          ["subject_id"].to_pylist()))[:2]
    part = events.filter(pc.is_in(events["subject_id"], pa.array(subjects)))
    keep = pc.or_(pc.invert(pc.starts_with(part["code"], "LAB//")), pc.is_in(
        part["code"], pa.array([c for c in set(part["code"].to_pylist())
                                if c.split("//")[1:2] in (["50924"], ["50889"], ["51214"],
                                                          ["52075"], ["223761"], ["223835"],
                                                          ["51237"], ["220045"])])))
    return part.filter(keep)


# ---------------------------------------------------------------------------------------------
@FUZZ
@given(source=st.sampled_from(["example", "mimic"]), file_index=st.integers(0, 100), ops=TEXT_OPS)
def test_csv_reader_survives_corruption(mimic_csv, source, file_index, ops):
    src = EXAMPLE_CSV if source == "example" else mimic_csv
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "csv"
        _corrupt_folder(src, folder, file_index, ops)
        con = connect_memory()
        try:
            report = load_csv_folder(con, folder)
        except SourceError as exc:
            assert str(exc).strip()
            return
        _assert_consistent(con, report)


MEDS_OPS = st.lists(st.tuples(
    st.sampled_from(["drop_column", "rename_value", "corrupt_code", "swap_unit", "null_time",
                     "garbage_rows", "duplicate_rows", "value_as_text", "truncate_file"]),
    st.integers(0, 10_000), st.integers(0, 10_000),
    st.one_of(st.sampled_from(NOISE), st.text(max_size=20))), min_size=1, max_size=3)


def _mutate_meds(table: pa.Table, ops) -> tuple[pa.Table, int | None]:
    truncate = None
    for op, a, b, text in ops:
        n = table.num_rows
        i = a % max(n, 1)
        if op == "drop_column" and table.num_columns:
            table = table.drop_columns([table.column_names[a % table.num_columns]])
        elif op == "rename_value":
            table = table.rename_columns(["numeric_value" if c == "value" else
                                          "value" if c == "numeric_value" else c
                                          for c in table.column_names])
        elif op in ("corrupt_code", "swap_unit") and "code" in table.column_names and n:
            codes = table["code"].to_pylist()
            c = codes[i] or ""
            if op == "corrupt_code":
                k = b % (len(c) + 1)
                codes[i] = c[:k] + text + c[k + 1:]
            else:
                parts = c.split("//")
                codes[i] = "//".join(parts[:-1] + [UNITS[b % len(UNITS)]])
            table = table.set_column(table.column_names.index("code"), "code",
                                     pa.array(codes, pa.string()))
        elif op == "null_time" and "time" in table.column_names and n:
            times = table["time"].to_pylist()
            times[i] = None
            table = table.set_column(table.column_names.index("time"), "time",
                                     pa.array(times, table["time"].type))
        elif op in ("garbage_rows", "duplicate_rows") and n:
            extra = table.slice(i, 1 + b % 5)
            if op == "garbage_rows" and "code" in extra.column_names:
                extra = extra.set_column(extra.column_names.index("code"), "code",
                                         pa.array([text] * extra.num_rows, pa.string()))
            table = pa.concat_tables([table, extra])
        elif op == "value_as_text":
            for name in ("value", "numeric_value"):
                if name in table.column_names:
                    vals = [None if v is None else (text if b % 2 else str(v))
                            for v in table[name].to_pylist()]
                    table = table.set_column(table.column_names.index(name), name,
                                             pa.array(vals, pa.string()))
        elif op == "truncate_file":
            truncate = b
    return table, truncate


@FUZZ
@given(ops=MEDS_OPS)
def test_meds_reader_survives_corruption(meds_slice, ops):
    table, truncate = _mutate_meds(meds_slice, ops)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.parquet"
        pq.write_table(table, path)
        if truncate is not None:
            data = path.read_bytes()
            path.write_bytes(data[: truncate % len(data)])
        con = connect_memory()
        try:
            report = load_meds(con, path, all_icu=True, max_age_years=None)
        except SourceError as exc:
            assert str(exc).strip()
            return
        _assert_consistent(con, report)
        assert report.events_read == table.num_rows
        assert report.events_staged + sum(report.events_out_of_scope.values()) == table.num_rows




@settings(FUZZ, max_examples=8)
@given(file_index=st.integers(0, 100), ops=TEXT_OPS)
def test_fhir_reader_survives_corruption(file_index, ops):
    from hyperinflam.sources.fhir.reader import load_fhir

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bundles"
        _corrupt_folder(FHIR_BUNDLES, folder, file_index, ops)
        con = connect_memory()
        try:
            report = load_fhir(con, folder)
        except SourceError as exc:
            assert str(exc).strip()
            return
        _assert_consistent(con, report)

"""One engine-neutral suite, run on DuckDB and on Spark local[2] over the same Parquet export.

The data: a small synthetic cohort (``hyperinflam.synth.generator``) loaded from CSV into a DuckDB file,
screened and studied there (the *reference*), then exported with ``export_parquet``. The
parametrised, session-scoped fixture ``engine`` opens that Parquet folder on DuckDB (views) and on
Spark (one shared local[2] session for the whole run). Every test in the suite runs on both.

What the suite asserts, and against what:
* table contents equal the reference tables row for row, and row counts equal the generator's own
  counts (independent of the export and of the engines);
* a timestamp read back equals the text written in stay.csv (naive UTC, no session shift);
* the screen (every criterion that builds) and the founding study give the same rows and the same
  values as the reference on DuckDB.

Floats: compared to 1e-9 relative. Both engines evaluate the same IEEE-754 double expressions,
and min/max/last/first select stored values; only an aggregate whose summation order depends on
partitioning (a sum or mean over a shuffle) could differ, by a few ULP (~1e-16 relative). 1e-9 is
far above that and far below any clinically meaningful difference or printed digit. Integers,
text, booleans, timestamps and missing values must match exactly.
"""

from __future__ import annotations

import csv
import math
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest

from hyperinflam.engine import connect, open_engine, parse_spark_conf, spark_conf_for
from hyperinflam.engine.storage import MANIFEST_NAME, read_manifest
from hyperinflam.errors import EngineError
from hyperinflam.exports.parquet import export_parquet
from hyperinflam.schema import ALL_TABLES, CANONICAL_TABLES

#: Not in the quick subset (pytest -m "not slow"): a synthetic cohort built, screened and
#: studied, then all of it again on Spark (tens of minutes under load).
pytestmark = pytest.mark.slow

N_STAYS = 60
SEED = 2014
REL_TOL = 1e-9


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """The synthetic cohort, its DuckDB reference results and its Parquet export."""
    from hyperinflam.criteria import discover
    from hyperinflam.screening.screen import screen_frame
    from hyperinflam.sources.csv import load_csv_folder
    from hyperinflam.study.run import run_study
    from hyperinflam.synth.writer import synthesize

    root = tmp_path_factory.mktemp("engines")
    summary = synthesize(root / "csv", N_STAYS, SEED)
    con = connect(root / "site.duckdb")
    report = load_csv_folder(con, root / "csv")
    assert report.reconciles
    reference_tables = {t.name: con.table(t.name).to_pandas() for t in ALL_TABLES}
    criteria = list(discover())  # every criterion: one that does not build fails the suite
    screen_reference = screen_frame(con, criteria=criteria)
    study_reference = run_study(con, "rajasekaran2014")
    manifest = export_parquet(con, root / "parquet")
    con.disconnect()
    with open(root / "csv" / "stay.csv", newline="", encoding="utf-8") as handle:
        first_stay = next(csv.DictReader(handle))
    return SimpleNamespace(root=root, parquet=root / "parquet", summary=summary, report=report,
                           tables=reference_tables, criteria=criteria,
                           screen=screen_reference, study=study_reference, manifest=manifest,
                           first_stay=first_stay)


@pytest.fixture(scope="session", params=["duckdb", "spark"])
def engine(request, cohort):
    """The Parquet export opened on each engine; one Spark session for the whole run (the
    ``spark`` fixture of conftest.py, shared with the other Spark tests and stopped by it)."""
    if request.param == "spark":
        request.getfixturevalue("spark")  # started first: open_engine joins it (getOrCreate)
        yield open_engine(cohort.parquet, "spark", "local[2]")
        return
    con = open_engine(cohort.parquet, "duckdb")
    yield con
    con.disconnect()


@pytest.fixture(scope="session")
def study_runs():
    """run_study of the founding study per engine on the Parquet export, computed once: the
    study comparison and the network-package comparison share it (a Spark run costs tens of
    seconds)."""
    return {}


def study_on(con, runs: dict):
    from hyperinflam.engine import engine_name
    from hyperinflam.study.run import run_study

    name = engine_name(con)
    if name not in runs:
        runs[name] = run_study(con, "rajasekaran2014")
    return runs[name]


# ---------------------------------------------------------------------------------------------
# Comparison helpers
# ---------------------------------------------------------------------------------------------
def _plain(value):
    """A cell as a plain comparable Python value (missing -> None, timestamps naive)."""
    if value is None or (not isinstance(value, (str, bytes, list, tuple)) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.tz_convert("UTC").tz_localize(None) if value.tzinfo else value
    if isinstance(value, datetime):
        return pd.Timestamp(value)
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    rows = [tuple(_plain(v) for v in row) for row in frame[columns].itertuples(index=False)]
    return sorted(rows, key=lambda r: tuple((v is None, str(v)) for v in r))


def assert_same_rows(actual: pd.DataFrame, expected: pd.DataFrame, what: str) -> None:
    """Same columns, same number of rows and, after sorting, the same values in every cell."""
    assert list(actual.columns) == list(expected.columns), what
    assert len(actual) == len(expected), f"{what}: {len(actual)} rows, expected {len(expected)}"
    columns = list(expected.columns)
    for i, (a, e) in enumerate(zip(_rows(actual, columns), _rows(expected, columns))):
        for name, x, y in zip(columns, a, e):
            if isinstance(x, float) and isinstance(y, float):
                assert math.isclose(x, y, rel_tol=REL_TOL, abs_tol=0.0) or x == y, \
                    f"{what} row {i} column {name}: {x!r} != {y!r}"
            else:
                if isinstance(x, float) and isinstance(y, int) or isinstance(x, int) and \
                        isinstance(y, float):
                    x, y = float(x), float(y)
                assert x == y, f"{what} row {i} column {name}: {x!r} != {y!r}"


# ---------------------------------------------------------------------------------------------
# The engine-neutral suite
# ---------------------------------------------------------------------------------------------
def test_canonical_tables_round_trip(engine, cohort):
    """Every table, every row, on every engine: what was loaded is what is read."""
    for table in ALL_TABLES:
        actual = engine.table(table.name).to_pandas()
        assert list(actual.columns) == table.column_names
        assert_same_rows(actual, cohort.tables[table.name], table.name)


def test_row_counts_match_the_generator(engine, cohort):
    """Independent count: the generator's own rows per file (all loaded, none quarantined)."""
    for table in CANONICAL_TABLES:
        expected = cohort.summary["files"][f"{table.name}.csv"]
        assert cohort.report.counts(table.name).quarantined == 0
        assert engine.table(table.name).count().to_pyarrow().as_py() == expected, table.name
        assert cohort.manifest["tables"][table.name]["rows"] == expected


def test_timestamps_are_naive_utc(engine, cohort):
    """The admission time written in stay.csv (UTC, no offset) comes back unchanged and naive."""
    row = cohort.first_stay
    stay = engine.table("stay")
    got = stay.filter(stay.stay_id == row["stay_id"]).admit_time.to_pandas().iloc[0]
    assert pd.Timestamp(got).tzinfo is None
    assert pd.Timestamp(got) == pd.Timestamp(row["admit_time"])


def test_screen_is_identical(engine, cohort):
    """The same per-stay x evaluation-time criteria and features as the DuckDB reference."""
    from hyperinflam.screening.screen import screen_frame

    actual = screen_frame(engine, criteria=cohort.criteria)
    assert len(cohort.screen) > N_STAYS  # several evaluation times per stay
    assert_same_rows(actual, cohort.screen, "screen")


@pytest.fixture(scope="session")
def duckdb_screen_file(cohort, tmp_path_factory):
    """The compiled screen written by DuckDB from the Parquet export: the reference file."""
    from hyperinflam.screening.plans import write_screen

    out = tmp_path_factory.mktemp("screen-duckdb") / "screen.parquet"
    con = open_engine(cohort.parquet, "duckdb")
    write_screen(con, out, "parquet", criteria=cohort.criteria)
    con.disconnect()
    return out


def test_compiled_screen_is_identical(engine, cohort, tmp_path, duckdb_screen_file):
    """The screen from its compiled plan (the SQL ``hyperinflam screen``, the study and the web
    application run; hyperinflam.screening.plans), written to a file as the command writes it:
    the same rows and values as the DuckDB reference of the ibis expression, and the same
    Parquet column types on every engine, which are the types the screen declares (an INTEGER
    where the screen says int64, or a DECIMAL where it says float64, fails)."""
    import pyarrow.parquet as pq

    from hyperinflam.screening.plans import write_screen
    from hyperinflam.screening.screen import screen_columns

    out = tmp_path / "screen.parquet"
    write_screen(engine, out, "parquet", criteria=cohort.criteria)
    types = {f.name: str(f.type) for f in pq.read_schema(out)}
    reference = {f.name: str(f.type) for f in pq.read_schema(duckdb_screen_file)}
    assert list(types) == list(reference)
    differ = {c: (types[c], reference[c]) for c in types if types[c] != reference[c]}
    assert differ == {}, f"Parquet types differ from DuckDB's: {differ}"
    declared = dict(zip(screen_columns(cohort.criteria).column,
                        screen_columns(cohort.criteria).type))
    arrow = {"int64": "int64", "float64": "double", "string": "string", "boolean": "bool",
             "date": "date32[day]", "timestamp(6)": "timestamp[us]", "timestamp": "timestamp[us]"}
    undeclared = {c: (t, declared[c]) for c, t in types.items()
                  if c in declared and arrow.get(declared[c], declared[c]) != t}
    assert undeclared == {}, f"Parquet types are not the declared ones: {undeclared}"
    actual = pd.read_parquet(out)
    for name in actual.columns:  # pandas reads a Parquet DATE as datetime.date, ibis as Timestamp
        if pd.api.types.is_datetime64_any_dtype(cohort.screen[name]):
            actual[name] = pd.to_datetime(actual[name])
    assert_same_rows(actual, cohort.screen, "compiled screen")


def test_study_is_identical(engine, cohort, study_runs):
    """run_study gives the same results and observations (every column, same rows)."""
    actual = study_on(engine, study_runs)
    expected = cohort.study
    assert actual.stat("flow", "stays", "count") == N_STAYS  # independent: the generator's size
    assert actual.stat("flow", "cohort", "count") >= 2  # a cohort to compare statistics on
    assert_same_rows(actual.results, expected.results, "results")
    assert_same_rows(actual.observations, expected.observations, "observations")
    assert actual.provenance["data_source"] == expected.provenance["data_source"]
    assert expected.provenance["data_source"]["stay"] == N_STAYS


def test_network_package_is_identical_on_both_engines(cohort, study_runs, spark, tmp_path):
    """A site on DuckDB and a site on Spark share the same package from the same data: every
    file byte for byte, except the manifest's engine and run date (and the preview's copy of
    them); every aggregate behind it (counts, paired values, sums) exactly equal, whatever the
    suppression hides. The Spark study run is the one of test_study_is_identical."""
    from hyperinflam.report.files import write_results
    from hyperinflam.report.network import share_site
    from hyperinflam.study.network import read_site_run
    from test_network_sites import package_files, without_run_fields

    runs, packages = {}, {}
    for name in ("duckdb", "spark"):
        con = open_engine(cohort.parquet, name, "local[2]" if name == "spark" else None)
        out = tmp_path / f"{name}-run"
        write_results(study_on(con, study_runs), out)
        if name == "duckdb":
            con.disconnect()
        runs[name] = read_site_run(out)
        packages[name] = package_files(share_site(out, "Site", tmp_path / f"{name}.zip",
                                                  min_cell=5).path)
    duck, spk = runs["duckdb"], runs["spark"]
    assert (duck.engine, spk.engine) == ("duckdb", "spark")
    assert duck.cohort == spk.cohort >= 2
    assert (duck.flow, duck.flags, duck.categories) == (spk.flow, spk.flags, spk.categories)
    assert duck.continuous == spk.continuous  # sums as exact floats
    assert len(duck.pairs) > 0
    pd.testing.assert_frame_equal(duck.pairs, spk.pairs, check_exact=True)
    a, b = without_run_fields(packages["duckdb"]), without_run_fields(packages["spark"])
    assert sorted(a) == sorted(b)
    for file in sorted(a):
        assert a[file] == b[file], f"{file} differs between DuckDB and Spark"


# ---------------------------------------------------------------------------------------------
# Engine set-up and the Parquet folder (DuckDB only; no Spark needed)
# ---------------------------------------------------------------------------------------------
def test_manifest_and_partitioning(cohort):
    manifest = read_manifest(cohort.parquet)
    assert manifest["tables"]["measurement"]["partition_by"] == ["variable"]
    variables = set(cohort.tables["measurement"]["variable"])
    folders = {p.name for p in (cohort.parquet / "measurement").iterdir()}
    assert folders == {f"variable={v}" for v in variables}
    assert (cohort.parquet / MANIFEST_NAME).is_file()


def test_export_refuses_a_non_empty_folder(cohort, tmp_path):
    from hyperinflam.errors import SourceError

    (tmp_path / "notes.txt").write_text("mine")
    con = connect(cohort.root / "site.duckdb", read_only=True)
    with pytest.raises(SourceError, match="not empty"):
        export_parquet(con, tmp_path)
    with pytest.raises(SourceError, match="not a hyperinflam export"):
        export_parquet(con, tmp_path, overwrite=True)
    con.disconnect()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_export_reports_each_table_before_writing_it(cohort, tmp_path):
    from hyperinflam.schema import ALL_TABLES

    steps = []
    con = connect(cohort.root / "site.duckdb", read_only=True)
    manifest = export_parquet(con, tmp_path / "pq",
                              progress=lambda *step: steps.append(step))
    con.disconnect()
    names = [t.name for t in ALL_TABLES]
    assert steps == [(name, i, len(names)) for i, name in enumerate(names)]
    assert list(manifest["tables"]) == names


def test_parquet_folder_is_read_only_and_spark_needs_parquet(cohort):
    with pytest.raises(EngineError, match="read-only"):
        connect(cohort.parquet)
    with pytest.raises(EngineError, match="export parquet"):
        open_engine(cohort.root / "site.duckdb", "spark")
    with pytest.raises(EngineError, match="not known"):
        open_engine(cohort.parquet, "postgres")
    with pytest.raises(EngineError, match="need --engine spark"):
        open_engine(cohort.parquet, "duckdb", spark_conf=["a=b"])


def test_spark_conf_parsing_and_precedence():
    assert parse_spark_conf(["spark.executor.memory=8g", "a.b = c=d"]) == {
        "spark.executor.memory": "8g", "a.b": "c=d"}
    with pytest.raises(EngineError, match="KEY=VALUE"):
        parse_spark_conf(["spark.executor.memory"])
    local = spark_conf_for("local[2]", {"spark.sql.shuffle.partitions": "4"})
    assert local["spark.sql.session.timeZone"] == "UTC"
    assert local["spark.sql.shuffle.partitions"] == "4"  # the user's setting wins
    cluster = spark_conf_for("spark://head:7077")
    assert "spark.driver.memory" not in cluster  # a cluster keeps its own sizing
    # a local driver logs errors only while it starts; a user's Java options are kept after ours,
    # and a user's own log4j2 file replaces ours
    options = "spark.driver.extraJavaOptions"
    assert local[options].startswith("-Dlog4j2.configurationFile=file:")
    assert local[options].endswith("/hyperinflam/engine/spark-log4j2.properties")
    uri = local[options].split("=", 1)[1]
    assert Path(unquote(urlparse(uri).path)).is_file()
    mine = spark_conf_for("local[2]", {options: "-Xss4m"})[options]
    assert mine.startswith("-Dlog4j2.configurationFile=file:") and mine.endswith(" -Xss4m")
    for own in ("-Dlog4j2.configurationFile=file:/etc/site-log4j2.properties",
                "-Xss4m -Dlog4j.configurationFile=file:/etc/site-log4j2.properties"):  # Spark's docs
        assert spark_conf_for("local[2]", {options: own})[options] == own
    assert options not in cluster
    assert spark_conf_for("spark://head:7077", {options: "-Xss4m"})[options] == "-Xss4m"


def test_local_spark_starts_without_log_noise(tmp_path):
    # A fresh JVM (not the shared session): what a person sees on the terminal when an
    # --engine spark command starts -- no WARN lines, no log-level banner; only the JVM's own
    # one-line note about incubator modules may remain.
    from conftest import require_pyspark

    require_pyspark()
    import subprocess
    import sys

    code = ("from hyperinflam.engine import spark_session\n"
            "s = spark_session('local[1]', {'spark.driver.memory': '512m'})\n"
            "print(s.range(3).count())\n"
            "s.stop()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"
    jvm_notes = ("Using incubator modules", "Picked up JAVA_TOOL_OPTIONS", "Picked up _JAVA_OPTIONS")
    noise = [line for line in done.stderr.splitlines()
             if line.strip() and not any(note in line for note in jvm_notes)]
    assert noise == [], done.stderr


def test_spark_sql_errors_are_not_dumped_as_json_logs(spark, capfd):
    # PySpark 4 logs each SQL error as a JSON record with the JVM stack trace even when it is
    # caught; hyperinflam reports errors itself, so nothing reaches the terminal.
    from pyspark.errors import AnalysisException

    import logging

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        assert not logging.getLogger(name).isEnabledFor(logging.ERROR)
    with pytest.raises(AnalysisException):
        spark.sql("SELECT * FROM no_such_table_here")
    captured = capfd.readouterr()
    assert "SQLQueryContextLogger" not in captured.err + captured.out
    assert "no_such_table_here" not in captured.err + captured.out


def test_export_command(cohort, tmp_path):
    from typer.testing import CliRunner

    from hyperinflam.cli import app

    out = tmp_path / "pq"
    result = CliRunner().invoke(app, ["export", "parquet", "--db",
                                      str(cohort.root / "site.duckdb"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    con = open_engine(out)
    assert con.table("stay").count().to_pyarrow().as_py() == N_STAYS
    con.disconnect()
    again = CliRunner().invoke(app, ["export", "parquet", "--db",
                                     str(cohort.root / "site.duckdb"), "--out", str(out)])
    assert again.exit_code == 2 and "not empty" in again.output

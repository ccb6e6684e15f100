"""One meaning per option: --db, -o/--out, --tz, --codes, --units, --engine and --quiet have one
definition on every command; --codes is repeatable and the site's rows take precedence on every
loader, CSV included; every time option is ISO 8601 read in --tz; help names option types in
words; plurals are right."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from hyperinflam.cli import app
from hyperinflam.cli.common import CODES_HELP, DB_WHAT, ENGINE_HELP, TZ_HELP
from hyperinflam.engine import connect
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.sources.timeparse import parse_time, time_sql

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "example-csv"
EUNOMIA = ROOT / "tests" / "data" / "eunomia_synthea27nj" / "omop"
HYPERINFLAM = str(Path(sys.executable).with_name("hyperinflam"))

LOADERS = ("load csv", "load omop", "load fhir", "load meds")
WRITERS = ("screen", "study run", "export parquet", "synth", "demo", "quarantine")


def _commands() -> dict[str, object]:
    """'load csv' -> its click command (with the params as --help shows them)."""
    root = typer.main.get_command(app)
    found = {}

    def walk(command, path, parent):
        ctx = command.make_context(path[-1] if path else "hyperinflam", [], parent=parent,
                                   resilient_parsing=True)
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name], ctx)
        else:
            found[" ".join(path)] = (command, command.get_params(ctx))

    walk(root, [], None)
    return found


COMMANDS = _commands()


def _option(command: str, name: str):
    _, params = COMMANDS[command]
    return next((p for p in params if name in p.opts), None)


USE = ("use the shared definition in src/hyperinflam/cli/common.py: db_option(), out_option(), "
       "SITE_TZ_OPTION, codes_option(), engine_option(), QUIET_OPTION")


def test_every_shared_option_has_one_definition():
    for command, (_, params) in COMMANDS.items():
        for p in params:
            where = f"'{command}' {'/'.join(p.opts)}: {USE}"
            if "--db" in p.opts:
                assert p.help.startswith(DB_WHAT) and p.metavar == "FILE", where
            if "--tz" in p.opts:
                assert p.help == TZ_HELP and p.default == "UTC" and p.metavar == "ZONE", where
            if "--engine" in p.opts:
                assert p.help.startswith(ENGINE_HELP) and p.default == "duckdb", where
            if "--quiet" in p.opts:
                assert "-q" in p.opts and p.is_flag, where
            if "--out" in p.opts:
                assert "-o" in p.opts, where
            if "--codes" in p.opts:
                assert p.multiple, f"{command} --codes is not repeatable; {USE}"
                prefix = CODES_HELP.split("{layout}")[0]
                assert p.help.startswith(prefix), where
                assert "takes precedence over a shipped row" in p.help, where


def test_loaders_and_writers_take_the_shared_options():
    for command in LOADERS:
        for name in ("--db", "--tz", "--codes", "--units", "--quiet"):
            assert _option(command, name) is not None, f"{command} has no {name}"
    for command in WRITERS:
        assert _option(command, "-o") is not None, f"{command} has no -o/--out"
    for command in ("screen", "serve"):
        assert _option(command, "--tz") is not None, f"{command} has no --tz"
    for command in ("screen", "study run", "load omop"):
        assert _option(command, "--engine") is not None


def test_help_names_every_option_type_in_words():
    for command, (click_command, params) in COMMANDS.items():
        result = CliRunner().invoke(app, [*command.split(), "--help"], terminal_width=120)
        assert result.exit_code == 0, command
        for token in ("<bool>", "<str>", "<path>", "<int>", "<float>", "<list"):
            assert token not in result.output, f"{command} --help shows {token}"
        for p in params:
            if p.param_type_name == "option" and not (p.is_flag or p.count):
                # a placeholder in capitals; a file placeholder may keep its extension as the
                # issue spells it (study share --out SITE.zip)
                stem = (p.metavar or "").split(".", 1)[0]
                assert stem and stem.upper() == stem, (command, p.opts, p.metavar)


# --- --codes: repeatable, the site's rows take precedence, on every loader -------------------
def _write(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def site_folder(tmp_path):
    """docs/example-csv with the site's own name for ferritin."""
    folder = tmp_path / "site"
    shutil.copytree(EXAMPLE, folder)
    frame = pd.read_csv(folder / "measurement.csv", dtype=str, keep_default_na=False)
    frame.loc[frame.variable == "ferritin", "variable"] = "Ferritine (serum)"
    frame.to_csv(folder / "measurement.csv", index=False)
    return folder


def _measurements(db: Path) -> pd.DataFrame:
    raw = duckdb.connect(str(db), read_only=True)
    try:
        return raw.execute("SELECT variable, value, value_original FROM measurement "
                           "ORDER BY variable, value").df()
    finally:
        raw.close()


def _load_cli(args: list[str]):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_csv_codes_map_site_names_and_a_later_file_wins(site_folder, tmp_path):
    example = tmp_path / "example.duckdb"
    _load_cli(["load", "csv", str(EXAMPLE), "--db", str(example)])
    ferritin = _measurements(example).query("variable == 'ferritin'")
    assert len(ferritin) == 3

    none = tmp_path / "none.duckdb"
    _load_cli(["load", "csv", str(site_folder), "--db", str(none)])
    assert "ferritin" not in set(_measurements(none).variable)

    names = _write(tmp_path / "names.csv", "kind,target,system,code,reference",
                   "measurement,ferritin,CSV,Ferritine (serum),site lab system")
    mapped = tmp_path / "mapped.duckdb"
    _load_cli(["load", "csv", str(site_folder), "--db", str(mapped), "--codes", str(names)])
    got = _measurements(mapped).query("variable == 'ferritin'")
    assert got.value.tolist() == ferritin.value.tolist()

    later = _write(tmp_path / "later.csv", "kind,target,system,code",
                   "measurement,triglycerides,csv,ferritine (SERUM) ")
    both = tmp_path / "both.duckdb"
    _load_cli(["load", "csv", str(site_folder), "--db", str(both), "--codes", str(names),
               "--codes", str(later)])
    assert "ferritin" not in set(_measurements(both).variable)
    raw = duckdb.connect(str(both), read_only=True)
    units = raw.execute("SELECT count(*) FROM quarantine WHERE reason = 'unknown_unit' AND "
                        "raw LIKE '%triglycerides%'").fetchone()[0]
    raw.close()
    assert units == 3  # ng/mL is no unit of triglycerides: the later file's mapping was used


def test_csv_codes_take_precedence_over_shipped_names_and_aliases(tmp_path):
    names = _write(tmp_path / "names.csv", "kind,target,system,code",
                   "drug,methylprednisolone,CSV,Kineret", "drug,epinephrine,CSV,noradrenaline")
    db = tmp_path / "site.duckdb"
    _load_cli(["load", "csv", str(EXAMPLE), "--db", str(db), "--codes", str(names)])
    raw = duckdb.connect(str(db), read_only=True)
    drugs = raw.execute("SELECT drug, count(*) FROM drug_administration GROUP BY 1").fetchall()
    support = raw.execute("SELECT support, count(*) FROM organ_support GROUP BY 1").fetchall()
    raw.close()
    # docs/example-csv: anakinra 3 rows + 'Kineret' 1 row; methylprednisolone 1 row
    assert dict(drugs)["anakinra"] == 3 and dict(drugs)["methylprednisolone"] == 2
    assert dict(support)["epinephrine"] == 2 and "norepinephrine" not in dict(support)


def test_csv_codes_file_errors_name_file_line_and_fix(tmp_path):
    bad = _write(tmp_path / "bad.csv", "kind,target,system,code", "measurement,ferritinn,CSV,Ferritine")
    result = CliRunner().invoke(app, ["load", "csv", str(EXAMPLE), "--db",
                                      str(tmp_path / "x.duckdb"), "--codes", str(bad)])
    assert result.exit_code == 2
    assert "bad.csv line 2" in result.output and "ferritinn" in result.output


def test_omop_codes_site_rows_replace_shipped_rows_for_the_same_code(tmp_path):
    from hyperinflam.sources.omop.mapping import read_codes

    shipped = read_codes()
    crp = [r for r in shipped if r["kind"] == "measurement"
           and (r["concept_id"] or "").strip() == "3020460"]
    assert [r["target"] for r in crp] == ["crp"]
    first = _write(tmp_path / "a.csv", "kind,target,vocabulary_id,concept_code,concept_id,reference",
                   "measurement,ferritin,LOINC,1988-5,3020460,site")
    second = _write(tmp_path / "b.csv", "kind,target,vocabulary_id,concept_code,concept_id",
                    "measurement,fibrinogen,LOINC,1988-5,,")
    rows = read_codes([first, second])
    for_code = [r["target"] for r in rows if r["kind"] == "measurement" and (
        (r["concept_id"] or "").strip() == "3020460" or (r["concept_code"] or "").strip() == "1988-5")]
    assert for_code == ["fibrinogen"]  # the later file; the earlier one and the shipped row gone
    assert len(rows) == len(shipped)


def test_fhir_and_meds_codes_a_later_site_file_wins(tmp_path):
    from hyperinflam.sources.fhir.reader import read_codes as fhir_codes
    from hyperinflam.sources.meds import read_meds_codes
    from hyperinflam.vocabulary import Vocabulary

    header = "system,code,kind,target,display,status,reference"
    a = _write(tmp_path / "a.csv", header, "loinc,1988-5,measurement,ferritin,,,site")
    b = _write(tmp_path / "b.csv", header, "loinc,1988-5,measurement,fibrinogen,,,site")
    frame = fhir_codes([a, b])
    assert frame.query("key == 'loinc|1988-5'").target.tolist() == ["fibrinogen"]
    assert fhir_codes([a]).query("key == 'loinc|1988-5'").target.tolist() == ["ferritin"]
    assert fhir_codes(None).query("key == 'loinc|1988-5'").target.tolist() == ["crp"]

    meds_header = "code,variable,drug,unit_when_unk,reference"
    m1 = _write(tmp_path / "m1.csv", meds_header, "LAB//50924,crp,,,site")
    m2 = _write(tmp_path / "m2.csv", meds_header, "LAB//50924,fibrinogen,,,site")
    codes = {c.code.lower(): c.variable for c in read_meds_codes(Vocabulary(), [m1, m2])}
    assert codes["lab//50924"] == "fibrinogen"


def test_load_omop_takes_several_codes_files(tmp_path):
    header = "kind,target,vocabulary_id,concept_code,concept_id,reference"
    a = _write(tmp_path / "a.csv", header, "measurement,crp,LOINC,1988-5,3020460,site")
    b = _write(tmp_path / "b.csv", header, "measurement,ferritin,LOINC,2276-4,3001122,site")
    result = CliRunner().invoke(app, ["load", "omop", str(EUNOMIA), "--db",
                                      str(tmp_path / "o.duckdb"), "--codes", str(a),
                                      "--codes", str(b)])
    assert result.exit_code == 0, result.output


# --- times: ISO 8601 only, read in --tz --------------------------------------------------------
# Expected instants by hand from the zone rules: Paris is UTC+1 in winter, UTC+2 in summer;
# clocks went forward 2024-03-31 02:00 -> 03:00 and back 2024-10-27 03:00 -> 02:00. A repeated
# local hour is its second reading (standard time), as DuckDB's ICU zones read it.
TIMES = [
    ("2024-03-01 14:30", "Europe/Paris", datetime(2024, 3, 1, 13, 30)),
    ("2024-07-01T14:30:00", "Europe/Paris", datetime(2024, 7, 1, 12, 30)),
    ("2024-03-01T14:30:00+01:00", "America/Chicago", datetime(2024, 3, 1, 13, 30)),
    # an offset after hh:mm without seconds, after a space, or as a lower-case z: DuckDB's cast
    # gives NULL for each, the loaders' time_sql reads them (expected: the offset by hand)
    ("2024-03-01 14:30Z", "Europe/Paris", datetime(2024, 3, 1, 14, 30)),
    ("2024-03-01T14:30+01:00", "UTC", datetime(2024, 3, 1, 13, 30)),
    ("2024-03-01 14:30-05", "Europe/Paris", datetime(2024, 3, 1, 19, 30)),
    ("2024-03-01 14:30 +0130", "UTC", datetime(2024, 3, 1, 13, 0)),
    ("2024-03-01 14:30:00 Z", "America/Chicago", datetime(2024, 3, 1, 14, 30)),
    ("2024-03-01T14:30:15.5z", "UTC", datetime(2024, 3, 1, 14, 30, 15, 500000)),
    ("2024-03-01 14:30:00Z", "Europe/Paris", datetime(2024, 3, 1, 14, 30)),
    ("2024-03-01T14:30:00-0500", "UTC", datetime(2024, 3, 1, 19, 30)),
    ("2024-03-31 02:30", "Europe/Paris", datetime(2024, 3, 31, 1, 30)),  # skipped hour: +gap
    ("2024-10-27 02:30", "Europe/Paris", datetime(2024, 10, 27, 1, 30)),  # twice: the second
    ("2024-03-01 14:30:15.250", "UTC", datetime(2024, 3, 1, 14, 30, 15, 250000)),
]


@pytest.mark.parametrize("text, tz, expected", TIMES)
def test_a_time_option_is_the_instant_the_loaders_read(text, tz, expected):
    assert parse_time(text, tz) == expected
    raw = duckdb.connect()
    raw.execute(f"SET TimeZone = '{tz}'")
    loaders = raw.execute(f"SELECT {time_sql('x', tz)} FROM (SELECT ? AS x)", [text]).fetchone()[0]
    raw.close()
    assert loaders == expected


@pytest.mark.slow
def test_the_spark_load_reads_every_time_form_as_duckdb_does(spark):
    """The Spark OMOP load runs time_sql translated (sources/omop/spark_sql.py): the same
    instants for every form above (session time zone UTC: the zone-free ones read in UTC)."""
    from hyperinflam.sources.omop.spark_sql import to_spark_sql

    session = spark.newSession()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    rows = [(text,) for text, _, _ in TIMES]
    session.createDataFrame(rows, "x string").createOrReplaceTempView("times")
    got = session.sql(to_spark_sql(f"SELECT x, {time_sql('x', 'UTC')} AS t FROM times")).collect()
    assert {r.x: r.t for r in got} == {text: parse_time(text, "UTC") for text, _, _ in TIMES}


@pytest.mark.parametrize("text", ["11/03/2024", "2024-03-01", "03/11/2024 14:30", "yesterday",
                                  "2024-13-01 10:00", "2024-03-01 25:00"])
def test_a_time_that_is_not_iso_8601_is_an_error_naming_the_form(text):
    with pytest.raises(ValueError) as err:
        parse_time(text, "UTC", what="--at")
    assert f"--at '{text}'" in str(err.value) and "2024-03-01 14:30" in str(err.value)


@pytest.fixture(scope="module")
def example_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("ex") / "example.duckdb"
    con = connect(db)
    load_csv_folder(con, EXAMPLE)
    con.disconnect()
    return db


def test_screen_at_is_read_in_tz_and_plurals_are_right(example_db, tmp_path):
    out = tmp_path / "now.csv"
    result = CliRunner().invoke(app, ["screen", "--db", str(example_db), "--at",
                                      "2024-03-01 12:00", "--tz", "Europe/Paris", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["stay_id"], r["eval_time"][:16]) for r in rows] == [("S001", "2024-03-01 11:00")]
    assert "Wrote 1 evaluation of 1 stay to" in result.output


def test_bad_times_and_zones_are_one_message_on_every_command(example_db, tmp_path):
    cases = [
        (["screen", "--db", str(example_db), "-o", str(tmp_path / "x.csv"), "--at",
          "11/03/2024"], "--at '11/03/2024' is not an ISO 8601 time"),
        (["screen", "--db", str(example_db), "-o", str(tmp_path / "x.csv"), "--at",
          "2024-03-01 10:00", "--tz", "Europe/Pariss"], "time zone 'Europe/Pariss'"),
        (["serve", "--db", str(example_db), "--as-of", "11/03/2024"],
         "--as-of '11/03/2024' is not an ISO 8601 time"),
        (["serve", "--db", str(example_db), "--as-of", "2024-03-01 10:00", "--tz", "Mars/Base"],
         "time zone 'Mars/Base'"),
        (["load", "csv", str(EXAMPLE), "--db", str(tmp_path / "y.duckdb"), "--tz", "Mars/Base"],
         "time zone 'Mars/Base'"),
    ]
    for args, words in cases:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert words in result.output and "Traceback" not in result.output, result.output
        if "--tz" in args:
            assert "--tz" in result.output  # the option named as the problem


def test_quiet_turns_progress_off_and_keeps_the_results(tmp_path):
    from hyperinflam.cli import common

    common.set_quiet(True)
    try:
        assert not common.show_progress()
        with common.status("never drawn") as spinner:
            assert spinner._spinner is None
    finally:
        common.set_quiet(False)
    done = subprocess.run([HYPERINFLAM, "load", "csv", str(EXAMPLE), "--db",
                           str(tmp_path / "q.duckdb"), "--quiet"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Load of" in done.stdout and "Database:" in done.stdout  # results still print

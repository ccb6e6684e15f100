"""Messages as written: brackets survive every error path of the study definition and every CLI
hint; a --db that is a folder or not a database is one message on every command; missing extras
name the pip command; an empty database is a normal answer that says so; the demo says where its
database is and what to run next."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hyperinflam.cli import app
from hyperinflam.cli.common import fail, finish_app, say
from hyperinflam.engine import connect
from hyperinflam.errors import StudyDefinitionError
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.study.definition import load_study

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "example-csv"
DATA = ROOT / "tests" / "data"
HYPERINFLAM = str(Path(sys.executable).with_name("hyperinflam"))

STUDY = '[study]\nid = "s"\ntitle = "Anakinra [pilot]"\n'

#: Every way a study file can be wrong, each with bracketed text the message must keep.
BAD_STUDIES = {
    "unknown section": (STUDY + "[cohortz]\nx = 1\n", "[study], [cohort], [windows]"),
    "unknown key": (STUDY + "[windows]\nbaseline = 1\n", "allowed keys in [windows]:"),
    "missing key": ('[study]\ntitle = "t"\n', "[study] id"),
    "wrong type": (STUDY + '[cohort]\nage_min_years = "[10]"\n', "'[10]'"),
    "unknown drug": (STUDY + '[cohort]\nindex_drug = "[kineret]"\n', "'[kineret]'"),
    "require not a threshold": (STUDY + '[cohort]\nrequire = "[ferritin] >= 500"\n',
                                "'[ferritin] >= 500'"),
    "require unknown name": (STUDY + '[cohort]\nrequire = "ferritin_x[1] >= 5"\n', "[cohort]"),
    "age range": (STUDY + "[cohort]\nage_min_years = 10\nage_max_years = 2\n", "[cohort]"),
    "window order": (STUDY + "[windows]\nbaseline_from_hours = 20\nbaseline_to_hours = 10\n",
                     "[windows]"),
    "unknown marker": (STUDY + '[markers]\nvariables = ["[crp]"]\n', "[crp]"),
    "unknown cotherapy": (STUDY + '[cotherapies]\nclasses = ["[ivig]"]\n', "[ivig]"),
    "not TOML": ('[study\nid = "s"\n', "']'"),
}


@pytest.mark.parametrize("case", sorted(BAD_STUDIES))
def test_every_study_definition_error_keeps_its_brackets(case, tmp_path):
    text, fragment = BAD_STUDIES[case]
    path = tmp_path / "study[draft].toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(StudyDefinitionError) as err:
        load_study(path)
    message = str(err.value)
    assert fragment in message, message  # the library's message carries the bracketed text
    for command in (["study", "check", str(path)],
                    ["study", "run", str(path), "--db", str(tmp_path / "none.duckdb")]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        for line in message.splitlines():
            assert line in result.output, (line, result.output)
        assert "study[draft].toml" in result.output


def test_a_missing_study_file_with_brackets_in_its_name(tmp_path):
    result = CliRunner().invoke(app, ["study", "check", str(tmp_path / "[draft].toml")])
    assert result.exit_code == 2 and "[draft].toml" in result.output


def test_a_valid_study_title_with_brackets_is_printed_as_written(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(STUDY, encoding="utf-8")
    result = CliRunner().invoke(app, ["study", "check", str(path)])
    assert result.exit_code == 0 and 'title = "Anakinra [pilot]"' in result.output


def test_study_results_in_the_terminal_keep_the_brackets_of_the_study_definition():
    """Every word the terminal tables take from the study definition (the title, timepoint
    labels in a table title, a column header, the Timepoint cells, the mixed model's rows and
    the notes) prints as written, markup-like text included."""
    from rich.console import Console

    from hyperinflam.report import render_terminal
    from hyperinflam.study.definition import parse_study
    from hyperinflam.study.run import run_study
    from studydata import build_database, three_timepoint_study

    definition = three_timepoint_study()
    definition["study"]["title"] = "Markers [pilot] after dexamethasone"
    definition["timepoints"][0]["label"] = "day [bold]3[/]"
    definition["timepoints"][1]["label"] = "week [one]"
    results = run_study(build_database("dexamethasone"), parse_study(definition))
    console = Console(record=True, width=200, color_system=None)
    render_terminal(results, console)
    text = console.export_text()
    assert "Markers [pilot] after dexamethasone" in text
    assert "and at day [bold]3[/], week [one] and day 14" in text  # the marker table's title
    lines = text.splitlines()
    # the Timepoint cell of the marker table and of the mixed model, the flow's analysed step
    # (the marker table's and the markers by early or late start's: brackets kept in both)
    assert sum("CRP (mg/L)" in line and "day [bold]3[/]" in line for line in lines) == 2
    assert any("C-reactive protein (mg/L)" in line and "day [bold]3[/]" in line
               for line in lines)
    assert "Analysed at week [one] (baseline and week [one] values)" in text
    assert "day 3" not in text.replace("day [bold]3[/]", "")  # nowhere as markup read


def test_screen_summary_keeps_brackets_in_criterion_labels():
    from types import SimpleNamespace

    from rich.console import Console

    from hyperinflam.cli.screen import summary_lines

    meta = {"labels": {"a": "Score [v2]", "b": "Other"}, "groups": {"a": "p", "b": "s"},
            "results": ["a", "b"], "phenotype": "p", "severity": "s",
            "outside_ages_suffix": "_outside_validated_ages"}
    summary = SimpleNamespace(n_stays=3, n_meeting_phenotype=1, n_meeting_severity=0,
                              n_outside_ages={"a": 2})
    console = Console(record=True, width=200, color_system=None)
    for line in summary_lines(summary, meta):
        console.print(line)
    text = console.export_text()
    assert "1 of 3 stays meets a phenotype criterion at some evaluation (Score [v2])." in text
    assert "Score [v2] was evaluated outside the ages its authors validated in 2 stays" in text


def test_fail_and_say_print_markup_as_text(capsys):
    with pytest.raises(typer.Exit):
        fail("pip install 'hyperinflam[spark]' [bold]not bold[/]")
    say("allowed sections: [study], [cohort]")
    captured = capsys.readouterr()
    assert "pip install 'hyperinflam[spark]' [bold]not bold[/]" in captured.err
    assert "allowed sections: [study], [cohort]" in captured.out


def test_help_keeps_brackets():
    demo = typer.Typer()

    @demo.command()
    def spark(engine: str = typer.Option("duckdb", help="Needs pip install "
                                         "'hyperinflam[spark]'.")):
        """Runs on [spark] when asked; see [study] sections."""

    finish_app(demo)
    result = CliRunner().invoke(demo, ["--help"], terminal_width=200)
    assert "'hyperinflam[spark]'" in result.output
    assert "Runs on [spark] when asked; see [study] sections." in result.output
    # and every bracket in the real app's help survives
    root = typer.main.get_command(app)
    for name, command in _leaves(root):
        result = CliRunner().invoke(app, [*name, "--help"], terminal_width=400)
        shown = " ".join(result.output.replace("│", " ").split())
        for text in [command.help or ""] + [p.help or "" for p in command.params]:
            for word in text.split():
                if "[" in word and "]" in word:
                    assert word in shown, (name, word)


def _leaves(command, path=()):
    subs = getattr(command, "commands", None)
    if not subs:
        yield list(path), command
        return
    for name, sub in subs.items():
        yield from _leaves(sub, (*path, name))


def test_spark_hint_keeps_the_extra_in_brackets(tmp_path, monkeypatch):
    db = tmp_path / "site.duckdb"
    con = connect(db)
    load_csv_folder(con, EXAMPLE)
    con.disconnect()
    parquet = tmp_path / "site-parquet"
    assert CliRunner().invoke(app, ["export", "parquet", "--db", str(db), "-o",
                                    str(parquet)]).exit_code == 0
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    result = CliRunner().invoke(app, ["screen", "--engine", "spark", "--db", str(parquet), "-o",
                                      str(tmp_path / "x.csv")])
    assert result.exit_code == 2
    assert "pip install 'hyperinflam[spark]'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("missing", ["argon2", "fastapi", "uvicorn"])
@pytest.mark.parametrize("command", [
    ["users", "add", "alice", "--role", "clinician", "--password-stdin"], ["users", "list"],
    ["users", "token", "alice"], ["users", "remove", "alice"], ["serve"], ["audit"]],
    ids=lambda c: " ".join(c[:2]) if isinstance(c, list) else c)
def test_missing_web_extra_is_one_line_on_every_web_command(command, missing, tmp_path,
                                                            monkeypatch):
    db = tmp_path / "x.duckdb"
    connect(db).disconnect()  # a real, empty hyperinflam database: only the extra is missing
    monkeypatch.setitem(sys.modules, missing, None)
    result = CliRunner().invoke(app, [*command, "--db", str(db)],
                                input="a long enough password\n")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'hyperinflam[web]'" in lines[0], result.output
    assert f"missing: {missing}" in lines[0]


# --- a --db that is not a database, on every command ------------------------------------------
def _every_command_with_db(tmp_path: Path) -> list[list[str]]:
    out = str(tmp_path / "out")
    return [
        ["load", "csv", str(EXAMPLE)],
        ["load", "omop", str(DATA / "eunomia_synthea27nj" / "omop")],
        ["load", "fhir", str(DATA / "synthea_r4_bundles_smart")],
        ["load", "meds", str(DATA / "mimic_iv_demo_meds" / "mimic_iv_demo_meds_events.parquet")],
        ["screen", "-o", str(tmp_path / "s.csv")],
        ["study", "run", "rajasekaran2014", "-o", out],
        ["quarantine"], ["quarantine", "--clear-resolved"], ["info"],
        ["serve"], ["audit"], ["users", "list"], ["users", "remove", "alice"],
        ["users", "token", "alice"],
        ["users", "add", "alice", "--role", "clinician", "--password-stdin"],
        ["export", "parquet", "-o", out], ["export", "omop", str(tmp_path / "omop.duckdb")],
        ["demo", "-o", out], ["synth", "-o", out, "--stays", "5"],
    ]


@pytest.mark.parametrize("kind", ["text file", "empty file", "folder", "bracketed name"])
def test_a_db_that_is_not_a_database_is_one_message_on_every_command(kind, tmp_path):
    if kind == "folder":
        db = tmp_path / "a folder"
        db.mkdir()
    else:
        db = tmp_path / ("site[1].csv" if kind == "bracketed name" else "site.duckdb")
        db.write_text("" if kind == "empty file" else "person_id,birth_date\n",
                      encoding="utf-8")
    for command in _every_command_with_db(tmp_path):
        result = CliRunner().invoke(app, [*command, "--db", str(db)],
                                    input="a long enough password\n")
        assert result.exit_code == 2, (command, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1, (command, result.output)
        assert str(db) in lines[0] and "Traceback" not in result.output, (command, lines)
        assert ("is a folder" in lines[0]) == (kind == "folder"), (command, lines)
    if kind != "folder":
        assert db.read_text(encoding="utf-8") == ("" if kind == "empty file"
                                                  else "person_id,birth_date\n")  # untouched


def test_a_duckdb_file_that_is_not_hyperinflams_names_the_fix(tmp_path):
    import duckdb

    db = tmp_path / "omop.duckdb"
    raw = duckdb.connect(str(db))
    raw.execute("CREATE TABLE person (person_id BIGINT)")
    raw.close()
    result = CliRunner().invoke(app, ["screen", "--db", str(db), "-o", str(tmp_path / "x.csv")])
    assert result.exit_code == 2
    assert "not one of hyperinflam's" in result.output and "load omop" in result.output


@pytest.mark.slow
def test_screen_on_a_database_with_no_stays_says_so(tmp_path):
    db = tmp_path / "empty.duckdb"
    connect(db).disconnect()
    out = tmp_path / "screen.csv"
    result = CliRunner().invoke(app, ["screen", "--db", str(db), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "holds no PICU stays" in result.output and "load csv" in result.output
    assert "stay_id" in out.read_text(encoding="utf-8").splitlines()[0].split(",")  # columns
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1


def test_a_db_path_that_does_not_exist_is_named(tmp_path):
    for command in (["screen", "-o", str(tmp_path / "x.csv")], ["info"], ["quarantine"],
                    ["study", "run", "rajasekaran2014"]):
        result = CliRunner().invoke(app, [*command, "--db", str(tmp_path / "missing.duckdb")])
        assert result.exit_code == 2 and "missing.duckdb" in result.output, command
        assert not (tmp_path / "missing.duckdb").exists()


@pytest.mark.slow
def test_demo_prints_its_database_and_a_next_command_that_runs(tmp_path):
    db, out = tmp_path / "demo.duckdb", tmp_path / "demo-out"
    done = subprocess.run([HYPERINFLAM, "demo", "--stays", "50", "--db", str(db), "-o",
                           str(out)], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"Database: {db.resolve()}" in done.stdout
    next_line = next(line for line in done.stdout.splitlines() if line.startswith("Next:"))
    command = shlex.split(next_line.removeprefix("Next:").strip())
    assert command[:3] == ["hyperinflam", "screen", "--db"]
    again = subprocess.run([HYPERINFLAM, *command[1:]], capture_output=True, text=True,
                           timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Wrote" in again.stdout and (tmp_path / "screen.csv").is_file()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.slow
def test_screen_at_a_time_no_stay_was_in_the_picu_says_so(tmp_path, suffix):
    db = tmp_path / "site.duckdb"
    con = connect(db)
    load_csv_folder(con, EXAMPLE)
    con.disconnect()
    out = tmp_path / f"at{suffix}"
    result = CliRunner().invoke(app, ["screen", "--db", str(db), "--at", "1990-01-01 00:00",
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "No stay was in the PICU at 1990-01-01 00:00" in result.output
    assert out.is_file()


@pytest.mark.slow
@pytest.mark.parametrize("variable, value, named", [
    ("HYPERINFLAM_BATCH_ROWS", "lots", "whole number >= 1"),
    ("HYPERINFLAM_BATCH_ROWS", "0", "whole number >= 1"),
    ("HYPERINFLAM_BATCH_SHADOW", "copy", "'view' (the default) or 'table'")])
def test_a_bad_batch_setting_is_one_message_naming_it(tmp_path, monkeypatch, variable, value,
                                                      named):
    db = tmp_path / "empty.duckdb"
    connect(db).disconnect()
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("HYPERINFLAM_PLAN_CACHE", "off")
    result = CliRunner().invoke(app, ["screen", "--db", str(db), "-o", str(tmp_path / "s.csv")])
    assert result.exit_code == 2, result.output
    assert f"{variable}=" in result.output and named in result.output
    assert "Traceback" not in result.output

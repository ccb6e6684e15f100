"""``hyperinflam study list`` and ``study check``: the shipped studies with their titles, a study
file validated and printed with every default filled in, without running it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from hyperinflam.cli import app
from hyperinflam.study.definition import StudyDefinition, parse_study

HYPERINFLAM = str(Path(sys.executable).with_name("hyperinflam"))
MINIMAL = '[study]\nid = "mini"\ntitle = "A minimal study"\n'


def _shipped() -> dict[str, dict]:
    """The shipped study files, read with tomllib (not through the code under test)."""
    folder = resources.files("hyperinflam").joinpath("studies")
    return {p.name.removesuffix(".toml"): tomllib.loads(p.read_text(encoding="utf-8"))
            for p in folder.iterdir() if p.name.endswith(".toml")}


def test_study_list_shows_every_shipped_study_and_its_title():
    result = CliRunner().invoke(app, ["study", "list"])
    assert result.exit_code == 0, result.output
    shipped = _shipped()
    assert shipped
    lines = result.output.splitlines()
    for name, data in shipped.items():
        at = next(i for i, l in enumerate(lines) if l.startswith(name))
        assert data["study"]["title"] in lines[at]


def test_study_check_prints_every_key_with_defaults_filled_in(tmp_path):
    study = tmp_path / "mini.toml"
    study.write_text(MINIMAL, encoding="utf-8")
    result = CliRunner().invoke(app, ["study", "check", str(study)], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert f"{study}: valid." in result.output
    text = result.output[:result.output.rindex(f"{study}: valid.")]
    resolved = tomllib.loads(text)  # the output is TOML
    for section, field in StudyDefinition.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue  # not a section (the file's name and text)
        assert section in resolved, section
        for key in model.model_fields:
            written = key in resolved[section] or f"# {key} = (not set)" in text
            assert written, f"[{section}] {key} missing from 'study check'"
    # the file itself set two keys; every other value is the default, and reading the output
    # back gives the same definition as the file
    assert resolved["study"]["title"] == "A minimal study"
    assert parse_study(resolved, source="x") == parse_study(tomllib.loads(MINIMAL), source="x")


def test_study_check_of_the_founding_study_is_the_file_plus_defaults():
    result = CliRunner().invoke(app, ["study", "check", "rajasekaran2014"], terminal_width=400)
    assert result.exit_code == 0, result.output
    text = result.output[:result.output.rindex("valid.")].rsplit("\n", 2)[0]
    resolved = tomllib.loads(text)
    written = _shipped()["rajasekaran2014"]
    for section, values in written.items():
        for key, value in values.items():
            assert resolved[section][key] == value, (section, key)


def test_study_check_of_an_invalid_file_names_section_and_key_and_does_not_run(tmp_path):
    study = tmp_path / "bad.toml"
    study.write_text(MINIMAL + "[windows]\nbaseline_from = -24\n[cohorts]\nx = 1\n",
                     encoding="utf-8")
    result = CliRunner().invoke(app, ["study", "check", str(study)], terminal_width=400)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "[windows] baseline_from: unknown key; allowed keys in [windows]: " \
           "baseline_from_hours" in result.output
    assert "cohorts: unknown section; allowed sections: [study], [cohort]" in result.output


def test_study_check_of_an_unknown_name_lists_the_shipped_ones():
    result = CliRunner().invoke(app, ["study", "check", "rajasekaran2015"])
    assert result.exit_code == 2 and "rajasekaran2014" in result.output


def test_study_run_takes_short_o_for_its_output_folder(tmp_path):
    """-o/--out means the same on every command; a bad study is reported before the engine
    opens (so no database is needed to see the message)."""
    study = tmp_path / "bad.toml"
    study.write_text("[study]\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["study", "run", str(study), "-o", str(tmp_path / "out"),
                                      "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2
    assert "No such option" not in result.output and "[study] id" in result.output


@pytest.mark.slow
def test_study_list_and_check_in_a_real_process(tmp_path):
    listed = subprocess.run([HYPERINFLAM, "study", "list"], capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "rajasekaran2014" in listed.stdout
    checked = subprocess.run([HYPERINFLAM, "study", "check", "rajasekaran2014"],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr
    assert "[windows]" in checked.stdout and "baseline_from_hours = -24.0" in checked.stdout

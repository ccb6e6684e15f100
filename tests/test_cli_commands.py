"""Each command once in a real process (the installed ``hyperinflam`` script), on small data:
what a user types, exit status 0, the words they are told. Commands run in a real process in
other test files: quarantine (test_cli_quarantine), info (test_cli_info), study list and check
(test_cli_study), load csv (test_cli_options), demo (test_cli_messages), serve
(test_web_security)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

#: Not in the quick subset (pytest -m "not slow"):
#: every command in a real process on real and synthetic data.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
HYPERINFLAM = str(Path(sys.executable).with_name("hyperinflam"))


def run(*args: str, input: str | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run([HYPERINFLAM, *args], capture_output=True, text=True, timeout=600,
                          input=input, cwd=cwd)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def synth_db(tmp_path_factory):
    """'synth --db': 200 synthetic stays generated and loaded (synth in a real process)."""
    folder = tmp_path_factory.mktemp("synth")
    out = run("synth", "-o", str(folder / "csv"), "--stays", "200", "--seed", "7", "--db",
              str(folder / "site.duckdb"))
    assert "Loaded into" in out and "Next: hyperinflam screen --db" in out
    return folder / "site.duckdb"


def _count(db: Path, table: str) -> int:
    raw = duckdb.connect(str(db), read_only=True)
    try:
        return raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        raw.close()


def test_synth_then_screen(synth_db, tmp_path):
    assert _count(synth_db, "stay") == 200
    out = run("screen", "--db", str(synth_db), "-o", str(tmp_path / "s.parquet"))
    assert "evaluations of 200 stays" in out


def test_study_run(synth_db, tmp_path):
    out = run("study", "run", "rajasekaran2014", "--db", str(synth_db), "-o", str(tmp_path / "o"))
    assert (tmp_path / "o" / "report.html").is_file() and "report_html" in out


def test_load_omop_fhir_and_meds(tmp_path):
    db = tmp_path / "site.duckdb"
    out = run("load", "omop", str(DATA / "eunomia_synthea27nj" / "omop"), "--db", str(db))
    assert "Load of" in out and "Next: hyperinflam screen" in out
    out = run("load", "fhir", str(DATA / "synthea_bulk_ndjson_smart10"), "--db", str(db))
    assert "Load of" in out
    out = run("load", "meds", str(DATA / "mimic_iv_demo_meds" / "mimic_iv_demo_meds_events.parquet"),
              "--all-icu", "--any-age", "--db", str(db))
    assert "Load of" in out
    raw = duckdb.connect(str(db), read_only=True)
    readers = [r[0] for r in raw.execute("SELECT DISTINCT reader FROM load_log ORDER BY 1")
               .fetchall()]
    raw.close()
    assert readers == ["fhir", "meds", "omop"]


def test_export_parquet_and_omop(synth_db, tmp_path):
    out = run("export", "parquet", "--db", str(synth_db), "-o", str(tmp_path / "pq"))
    assert "Wrote" in out and (tmp_path / "pq" / "_hyperinflam.json").is_file()
    out = run("export", "omop", str(tmp_path / "omop.duckdb"), "--db", str(synth_db))
    assert "Read it back with" in out
    raw = duckdb.connect(str(tmp_path / "omop.duckdb"), read_only=True)
    persons = raw.execute("SELECT count(*) FROM cdm.person").fetchone()[0]
    raw.close()
    assert persons == _count(synth_db, "person")


def test_users_and_audit(tmp_path):
    db = tmp_path / "site.duckdb"
    run("load", "csv", str(ROOT / "docs" / "example-csv"), "--db", str(db), "--quiet")
    assert "User alice (clinician) saved." in run(
        "users", "add", "alice", "--role", "clinician", "--password-stdin", "--db", str(db),
        input="a long enough password\n")
    assert "alice" in run("users", "list", "--db", str(db))
    token = run("users", "token", "alice", "--label", "scripts [nightly]", "--db", str(db))
    assert len(token.strip()) >= 20
    assert "audit (" in run("audit", "--db", str(db))
    assert "User alice removed." in run("users", "remove", "alice", "--db", str(db))

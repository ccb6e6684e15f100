"""Compiled plans (hyperinflam.engine.plans, hyperinflam.screening.plans): the cached SQL gives the
same rows, values and types as the ibis expression it was compiled from, in every mode and for
every parameter; batches of persons give the same file as one run; a stopped batched run resumes;
the plan cache is keyed by what the SQL depends on; a cached screen starts without ibis or pandas.

The reference in every comparison is ``hyperinflam.screening.screen.screen(...)`` executed by ibis
(the code path that existed before plans), on a synthetic cohort with every criterion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from hyperinflam.engine import connect, connect_file, plans
from hyperinflam.screening import plans as screen_plans
from hyperinflam.screening.screen import screen

#: Not in the quick subset (pytest -m "not slow"): screen plans compiled and run in batches,
#: and a start-up test in a real process.
pytestmark = pytest.mark.slow

N_STAYS = 40
ORDER = ["stay_id", "eval_time"]
#: Criteria of the batch tests: measurements, conditions, drugs and organ support between them.
CRITERIA = ["hscore", "phoenix", "hlh2004"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from hyperinflam.synth.database import synthesize_to_db

    path = tmp_path_factory.mktemp("plans") / "site.duckdb"
    synthesize_to_db(path, N_STAYS, 7, overwrite=True)
    return path


@pytest.fixture
def con(site):
    con = connect(site, read_only=True)
    yield con
    con.disconnect()


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(ORDER, kind="stable").reset_index(drop=True)


def _busy_time(con) -> datetime:
    """A time when the most stays are in the PICU (some admission + 10 h)."""
    stays = con.table("stay").to_pandas()
    end = stays.discharge_time.fillna(pd.Timestamp.max)
    best = max((stays.admit_time + pd.Timedelta(hours=10)),
               key=lambda t: int(((stays.admit_time <= t) & (end > t)).sum()))
    return best.to_pydatetime()


@pytest.mark.parametrize("step_hours", [24, 6])
def test_grid_plan_equals_the_expression(con, step_hours):
    expected = _sorted(screen(con, step_hours=step_hours).to_pandas())
    got = screen_plans.screen_pandas(con, "grid", step_hours=step_hours)
    assert len(expected) > N_STAYS
    pd.testing.assert_frame_equal(got, expected)


def test_one_plan_serves_every_step_and_time(con):
    assert screen_plans.screen_plan(con, "grid") is screen_plans.screen_plan(con, "grid")
    at = _busy_time(con)
    for when in (at, at + timedelta(hours=13)):
        expected = _sorted(screen(con, at=when).to_pandas())
        assert len(expected) > 0
        got = screen_plans.screen_pandas(con, "at", at=when)
        pd.testing.assert_frame_equal(got, expected)


def test_times_plan_equals_the_expression(con):
    import ibis

    stays = con.table("stay").to_pandas().head(12)
    times = pd.DataFrame({"stay_id": stays.stay_id,
                          "eval_time": (stays.admit_time + pd.Timedelta(hours=30))
                          .astype("datetime64[us]")})
    expected = _sorted(screen(con, times=ibis.memtable(times), criteria=["hscore", "prism3"])
                       .to_pandas())
    got = screen_plans.screen_pandas(con, "times", criteria=["hscore", "prism3"], times=times)
    pd.testing.assert_frame_equal(got, expected)


def test_the_sql_is_self_contained_and_read_back_from_disk(con, monkeypatch, tmp_path):
    monkeypatch.setenv("HYPERINFLAM_CACHE_DIR", str(tmp_path))
    plans.clear_memory_cache()
    built = screen_plans.screen_plan(con, "grid", criteria=["phoenix"])
    files = list((tmp_path / "plans").glob("screen-*.json"))
    assert [f.name for f in files] == [f"screen-{built.key}.json"]
    # vocabulary tables are VALUES lists inside the SQL: every table it reads is canonical or an
    # input table, or the loads' domain record (features/recorded.py: read at run time)
    assert set(built.tables) <= {"person", "stay", "measurement", "drug_administration",
                                 "organ_support", "condition", "event", "source_domains"}
    plans.clear_memory_cache()

    def no_compiling(*args, **kwargs):
        raise AssertionError("the plan was compiled again")

    monkeypatch.setattr(plans, "compile_plan", no_compiling)
    again = screen_plans.screen_plan(con, "grid", criteria=["phoenix"])
    assert again == built
    bare = connect_file(con.con.execute("SELECT path FROM duckdb_databases() "
                                        "WHERE database_name = current_database()").fetchone()[0])
    try:
        plans.clear_memory_cache()
        rows = plans.run_rows(bare, screen_plans.screen_plan(bare, "grid", criteria=["phoenix"]),
                              screen_plans.screen_inputs("grid", step_hours=24))
    finally:
        bare.close()
    expected = _sorted(screen(con, criteria=["phoenix"]).to_pandas())
    assert len(rows) == len(expected)
    assert [r[1] for r in rows] == list(expected.stay_id)


def test_the_key_follows_what_the_sql_depends_on(con, tmp_path):
    key = plans.plan_key(con, "screen", {"criteria": ["phoenix"]})
    assert key == plans.plan_key(con, "screen", {"criteria": ["phoenix"]})
    assert key != plans.plan_key(con, "screen", {"criteria": ["hscore"]})
    assert key != plans.plan_key(con, "census", {"criteria": ["phoenix"]})
    other = connect(tmp_path / "other.duckdb")  # same tables, one more column in one
    try:
        same = plans.plan_key(other, "screen", {"criteria": ["phoenix"]})
        other.con.execute("ALTER TABLE measurement ADD COLUMN extra_note VARCHAR")
        assert plans.plan_key(other, "screen", {"criteria": ["phoenix"]}) != same
    finally:
        other.disconnect()


def test_person_batches_split_every_person_once(con):
    batches = plans.person_batches(con, 2_000)
    assert len(batches) > 3
    assert batches[0].low is None and batches[-1].high is None
    assert all(a.high == b.low for a, b in zip(batches, batches[1:]))
    persons = con.table("person").to_pandas().person_id
    assert sum(b.persons for b in batches) == len(persons)
    n = con.table("measurement").count().to_pandas()
    assert sum(b.rows for b in batches) == n
    assert plans.person_batches(con, 10**12) == [plans.Batch(0, None, None, len(persons), n)]


@pytest.mark.parametrize("shadow", ["view", "table"])
@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_batches_write_the_same_file_as_one_run(con, tmp_path, kind, shadow, monkeypatch):
    """Batches (each table shadowed by a temporary view, or a table copy, of the batch's persons;
    parts concatenated) give the file one run gives: a shadow that did not restrict the persons
    would repeat every row in each batch."""
    monkeypatch.setenv("HYPERINFLAM_BATCH_SHADOW", shadow)
    one = tmp_path / f"one.{kind}"
    many = tmp_path / f"many.{kind}"
    screen_plans.write_screen(con, one, kind, batch_rows=10**12, criteria=CRITERIA)
    seen = []
    screen_plans.write_screen(con, many, kind, batch_rows=2_000, criteria=CRITERIA,
                              progress=lambda done, total, text: seen.append(text))
    read = pd.read_parquet if kind == "parquet" else pd.read_csv
    pd.testing.assert_frame_equal(read(many), read(one))
    assert any(t.startswith("batch 4 of") for t in seen)
    assert not many.with_name(many.name + plans.PARTS_SUFFIX).exists()


def test_a_stopped_batched_run_resumes(con, tmp_path):
    out = tmp_path / "screen.parquet"
    expected = tmp_path / "expected.parquet"
    screen_plans.write_screen(con, expected, "parquet", batch_rows=10**12)

    class Stop(Exception):
        """Raised by the progress callback in batch 3: the run stops there."""

    def stop_in_batch_3(done, total, text):
        if text.startswith("batch 3 of"):
            raise Stop

    with pytest.raises(Stop):
        screen_plans.write_screen(con, out, "parquet", batch_rows=2_000,
                                  progress=stop_in_batch_3)
    parts = out.with_name(out.name + plans.PARTS_SUFFIX)
    assert sorted(p.name for p in parts.glob("part-*.parquet")) == ["part-00000.parquet",
                                                                    "part-00001.parquet"]
    assert not out.exists()
    seen = []
    screen_plans.write_screen(con, out, "parquet", batch_rows=2_000,
                              progress=lambda done, total, text: seen.append(text))
    assert sum("kept from the stopped run" in t for t in seen) == 2
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(expected))
    # another grid step is another run: nothing is kept
    manifest = {"identity": {"plan": "x"}}
    parts.mkdir()
    (parts / "manifest.json").write_text(json.dumps(manifest))
    (parts / "part-00000.parquet").write_bytes(b"not a screen")
    screen_plans.write_screen(con, out, "parquet", batch_rows=2_000, step_hours=12)
    assert len(pd.read_parquet(out)) > len(pd.read_parquet(expected))


def test_a_cached_cli_screen_imports_neither_ibis_nor_pandas(site, tmp_path):
    """``hyperinflam screen`` with a cached plan: start-up without the heavy modules."""
    script = (
        "import sys\n"
        "from hyperinflam.cli import app\n"
        "try:\n"
        "    app(sys.argv[1:])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(sorted(m for m in ('ibis', 'pandas', 'pyarrow') if m in sys.modules))\n")
    env = dict(os.environ, HYPERINFLAM_CACHE_DIR=str(tmp_path / "cache"))
    args = [sys.executable, "-c", script, "screen", "--db", str(site), "--out",
            str(tmp_path / "s.parquet"), "--quiet"]
    first = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    assert "ibis" in first.stdout.splitlines()[-1]  # built and compiled once
    second = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    assert second.stdout.splitlines()[-1] == "[]", second.stdout
    assert "stays meet at least one criterion" in second.stdout
    assert Path(tmp_path / "s.parquet").exists()

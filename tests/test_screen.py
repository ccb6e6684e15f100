"""Tests of hyperinflam.screening.screen: the union of inputs, criterion columns, the terminal summary and
the CLI. A tiny criterion defined here (ferritin >= 500 ng/mL, HLH-2004 criterion 7, clinical
reference §1.2) keeps the tests independent of the real criterion modules.
"""

from __future__ import annotations

import types
from datetime import datetime, timedelta

import ibis
import pandas as pd
import pytest
from typer.testing import CliRunner

from hyperinflam.engine import connect, connect_memory
from hyperinflam.errors import ScreenError
from hyperinflam.features import FeatureSpec
from hyperinflam.screening.screen import screen, screen_frame
from hyperinflam.screening.summary import stays_meeting_any

T0 = datetime(2024, 3, 1, 8, 0)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def _criterion(name: str, spec: FeatureSpec, threshold: float):
    module = types.ModuleType(f"test_criterion_{name}")
    module.NAME, module.TITLE, module.REFERENCE = name, name, "test"
    module.INPUTS = [spec]
    module.RESULT = f"{name}_result"

    def evaluate(t):
        value = t[spec.column]
        result = ibis.cases((value.isnull(), "unknown"), (value >= threshold, "met"),
                            else_="not_met")
        return {f"{name}_result": result,
                f"{name}_missing": ibis.ifelse(value.isnull(), spec.variable, ""),
                f"{name}_points": ibis.ifelse(value >= threshold, 1, 0).fill_null(0)}

    module.evaluate = evaluate
    return module


FERRITIN = _criterion("ferr", FeatureSpec("ferritin", "max", 72), 500.0)
CRP = _criterion("crpx", FeatureSpec("crp", "max", 24), 100.0)
# the same input as FERRITIN: must appear once in the wide table
FERRITIN_TOO = _criterion("ferr2", FeatureSpec("ferritin", "max", 72), 1000.0)


def fill(con) -> None:
    def insert(table, rows):
        con.con.register("rows_to_insert", pd.DataFrame(rows))
        con.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM rows_to_insert")
        con.con.unregister("rows_to_insert")

    insert("person", [{"person_id": p, "birth_date": "2019-01-01", "sex": "female"}
                      for p in ("p1", "p2")])
    insert("stay", [
        {"stay_id": "s1", "person_id": "p1", "admit_time": T0, "discharge_time": h(50)},
        {"stay_id": "s2", "person_id": "p2", "admit_time": T0, "discharge_time": h(30)},
    ])
    m = lambda p, hr, v, x: {"person_id": p, "time": h(hr), "variable": v, "value": x,  # noqa
                             "unit": "u", "value_original": str(x), "unit_original": "u"}
    insert("measurement", [m("p1", 10, "ferritin", 499.0), m("p1", 40, "ferritin", 500.0),
                           m("p2", 5, "ferritin", 300.0), m("p2", 5, "crp", 150.0)])


@pytest.fixture
def con():
    con = connect_memory()
    fill(con)
    return con


def test_screen_adds_criterion_columns(con):
    expr = screen(con, criteria=[FERRITIN, CRP, FERRITIN_TOO])
    assert list(expr.columns).count("ferritin_max_72h") == 1
    f = screen_frame(con, criteria=[FERRITIN, CRP, FERRITIN_TOO]).set_index(["stay_id", "eval_time"])
    assert f.loc[("s1", h(24)), "ferr_result"] == "not_met"   # 499 < 500
    assert f.loc[("s1", h(48)), "ferr_result"] == "met"       # 500 >= 500 (boundary)
    assert f.loc[("s1", h(48)), "ferr2_result"] == "not_met"
    assert f.loc[("s1", h(24)), "crpx_result"] == "unknown"   # no CRP: unknown, not "not met"
    assert f.loc[("s1", h(24)), "crpx_missing"] == "crp"
    assert f.loc[("s2", h(24)), "crpx_result"] == "met"
    assert f.loc[("s2", h(30)), "crpx_result"] == "unknown"   # CRP at +5 h is > 24 h old at +30 h


def test_stays_meeting_any_at_any_evaluation(con):
    expr = screen(con, criteria=[FERRITIN, CRP])
    summary = stays_meeting_any(expr, criteria=[FERRITIN, CRP]).to_pandas().set_index("stay_id")
    # s1 meets ferritin from +48 h (500 >= 500); s2 met CRP at +24 h (no longer at +30 h)
    assert list(summary.index) == ["s1", "s2"]
    assert summary.loc["s1", "first_met_time"] == h(48)
    assert bool(summary.loc["s1", "ferr_met"]) and not bool(summary.loc["s1", "crpx_met"])
    assert summary.loc["s2", "first_met_time"] == h(24)
    assert summary.loc["s1", "criteria_met"] == 1
    none_met = expr.filter(expr.stay_id == "nobody")
    assert stays_meeting_any(none_met, criteria=[FERRITIN, CRP]).to_pandas().empty


def test_screen_at_a_single_time(con):
    f = screen_frame(con, at=h(20), criteria=[CRP])
    assert list(f.stay_id) == ["s1", "s2"]
    assert list(f.crpx_result) == ["unknown", "met"]


def test_bad_criterion_names_the_fix(con):
    bad = _criterion("bad", FeatureSpec("crp", "max", 24), 1.0)
    bad.evaluate = lambda t: {"wrong_prefix": t.crp_max_24h}
    with pytest.raises(ScreenError, match="start with 'bad_'"):
        screen(con, criteria=[bad])
    with pytest.raises(ScreenError, match="Unknown criterion 'nope'"):
        screen(con, criteria=["nope"])


# --- CLI ---------------------------------------------------------------------------------------
@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "h.duckdb"
    con = connect(path)
    fill(con)
    con.disconnect()
    # only the test criteria, whatever modules exist in the package (the summary reads
    # select_criteria from the screen module when it runs); plans of "all criteria" built here
    # must not outlive the test
    import hyperinflam.screening.screen as screen_module
    from hyperinflam.engine import plans

    real = screen_module.select_criteria
    monkeypatch.setattr(screen_module, "select_criteria", lambda criteria=None: real(
        [FERRITIN, CRP] if criteria is None else criteria))
    monkeypatch.setenv("HYPERINFLAM_PLAN_CACHE", "off")
    plans.clear_memory_cache()
    yield path
    plans.clear_memory_cache()


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_cli_screen_writes_output(db, tmp_path, suffix):
    from hyperinflam.cli import app

    out = tmp_path / f"screen.{suffix}"
    result = CliRunner().invoke(app, ["screen", "--db", str(db), "--grid", "24h", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out) if suffix == "csv" else pd.read_parquet(out)
    assert len(written) == 5  # s1: +24, +48, +50; s2: +24, +30
    assert "ferr_result" in written.columns
    assert "s1" in result.output
    assert "Wrote 5 evaluations of 2 stays" in result.output
    assert "2 stays meet at least one criterion" in result.output  # s1 ferritin, s2 CRP


def test_cli_screen_errors_are_one_line(db, tmp_path):
    from hyperinflam.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["screen", "--db", str(db), "--out", str(tmp_path / "x.xlsx")])
    assert result.exit_code == 2 and "csv" in result.output.lower()
    result = runner.invoke(app, ["screen", "--db", str(db), "--grid", "half a day",
                                 "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "--grid" in result.output
    result = runner.invoke(app, ["screen", "--db", str(tmp_path / "none.duckdb"),
                                 "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_screen_columns_lists_every_column():
    from hyperinflam.screening.screen import screen_columns

    cols = screen_columns([FERRITIN, CRP]).set_index("column")
    assert cols.loc["eval_time", "kind"] == "base"
    assert cols.loc["ferritin_max_72h", "kind"] == "feature"
    assert cols.loc["ferritin_max_72h", "criterion"] == "ferr"
    assert cols.loc["crpx_result", "kind"] == "criterion"
    assert cols.loc["age_months", "type"] == "float64"


def test_staged_criterion_columns_equal_one_projection(con):
    """Every real criterion: the dependency-staged projection gives the same frame (values,
    types, column order) as one ``mutate``, from far less SQL (the outputs a criterion builds
    from its other outputs are computed once)."""
    from hyperinflam.features import build_features, evaluation_grid, unique_specs
    from hyperinflam.screening.screen import _criterion_columns, _staged_mutate, select_criteria

    modules = select_criteria()
    specs = unique_specs(s for m in modules for s in m.INPUTS)
    wide = build_features(con, evaluation_grid(con, step_hours=12), specs)
    taken, columns = set(wide.columns), {}
    for module in modules:
        columns.update(_criterion_columns(module, wide, taken))
    plain = wide.mutate(**columns)
    staged = _staged_mutate(wide, columns)
    assert staged.columns == plain.columns
    order = ["stay_id", "eval_time"]
    pd.testing.assert_frame_equal(staged.to_pandas().sort_values(order).reset_index(drop=True),
                                  plain.to_pandas().sort_values(order).reset_index(drop=True))
    assert "stage_barrier" not in staged.columns
    assert len(str(ibis.to_sql(staged))) < len(str(ibis.to_sql(plain)))

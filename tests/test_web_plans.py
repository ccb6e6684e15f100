"""The bedside application's queries as compiled plans (issue 15 item 6): a plan parameter bound
at each run gives the rows of a query built for that value; the census and every patient-page
table served from plans equal the ibis expressions they were compiled from, at several times and
for several stays, and a new time or stay compiles nothing; heavy units of work run side by side,
at most ``concurrent_queries`` at a time.

References: for the parameters, rows counted by hand; for the census and the patient tables, the
expressions of :mod:`hyperinflam.screening.census` and :mod:`hyperinflam.web.patient` executed by
ibis (the code path of the application before plans), on a synthetic cohort.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import ibis
import pandas as pd
import pytest

from hyperinflam.engine import connect, plans

N_STAYS = 40
CRITERIA = ["hlh2004", "hscore", "phoenix", "psofa"]


# -- parameters -------------------------------------------------------------------------------
@pytest.fixture
def tiny(tmp_path):
    import duckdb

    raw = duckdb.connect(str(tmp_path / "tiny.duckdb"))
    raw.execute("CREATE TABLE obs (who VARCHAR, t TIMESTAMP, v DOUBLE)")
    raw.execute("INSERT INTO obs VALUES ('a', '2024-01-01 00:00', 1), ('a', '2024-01-02 00:00', 2),"
                " ('a', '2024-01-03 00:00', 4), ('b', '2024-01-02 00:00', 8)")
    yield ibis.duckdb.from_connection(raw)
    raw.close()


def _obs_plan(con, build=None):
    def default(backend, tables, p):
        obs = backend.table("obs")
        at = ibis.literal(p["at"], type="timestamp")
        rows = obs.filter(obs.who == p["who"], obs.t <= at)
        return rows.aggregate(n=rows.count(), total=rows.v.sum(),
                              hours_back=((at.epoch_seconds() - rows.t.epoch_seconds().min())
                                          / 3600).cast("int64"))
    return plans.get_plan(con, "obs_until", {"test": build is not None}, build or default,
                          parameters={"who": "string", "at": "timestamp"})


@pytest.mark.parametrize("who, at, n, total, hours_back", [
    ("a", dt.datetime(2024, 1, 1), 1, 1.0, 0),          # the first row only, 0 h back
    ("a", dt.datetime(2024, 1, 2, 12), 2, 3.0, 36),     # 1 + 2, 36 h after the first
    ("a", dt.datetime(2030, 1, 1), 3, 7.0, None),       # all three
    ("b", dt.datetime(2024, 1, 2), 1, 8.0, 0),
    ("o'neil", dt.datetime(2024, 1, 2), 0, None, None),  # a quote in the value, no rows
])
def test_a_parameter_is_bound_at_each_run(tiny, who, at, n, total, hours_back):
    plan = _obs_plan(tiny)
    assert set(plan.parameters) == {"who", "at"}
    row = plans.run_pandas(tiny, plan, params={"who": who, "at": at}).iloc[0]
    assert row.n == n
    assert (pd.isna(row.total) and total is None) or row.total == total
    if hours_back is not None:
        assert row.hours_back == hours_back


def test_a_plan_with_parameters_is_compiled_once_and_read_back(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("HYPERINFLAM_CACHE_DIR", str(tmp_path / "cache"))
    plans.clear_memory_cache()
    first = _obs_plan(tiny)
    plans.clear_memory_cache()
    monkeypatch.setattr(plans, "compile_plan", lambda *a, **k: pytest.fail("compiled again"))
    again = _obs_plan(tiny)
    assert again.parameters == first.parameters and again.sql == first.sql
    assert plans.run_rows(tiny, again, params={"who": "a", "at": dt.datetime(2024, 1, 2)})[0][0] \
        == 2


def test_a_parameter_changed_in_python_is_refused(tiny):
    def shifted(backend, tables, p):  # the time moved in Python: no run could replace it
        obs = backend.table("obs")
        return obs.filter(obs.t <= ibis.literal(p["at"] - dt.timedelta(hours=1)))
    with pytest.raises(ValueError, match="sentinel"):
        _obs_plan(tiny, shifted)


def test_a_missing_parameter_is_named(tiny):
    with pytest.raises(KeyError, match="who"):
        plans.run_rows(tiny, _obs_plan(tiny), params={"at": dt.datetime(2024, 1, 1)})


# -- the census and the patient pages --------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from hyperinflam.synth.database import synthesize_to_db

    path = tmp_path_factory.mktemp("webplans") / "site.duckdb"
    synthesize_to_db(path, N_STAYS, 11, overwrite=True)
    return path


@pytest.fixture
def con(site):
    con = connect(site, read_only=True)
    yield con
    con.disconnect()


def _busy_times(con) -> list[dt.datetime]:
    """Two times when many stays are in the PICU, minutes apart from any grid point."""
    stays = con.table("stay").to_pandas()
    end = stays.discharge_time.fillna(pd.Timestamp.max)
    ranked = sorted(stays.admit_time + pd.Timedelta(hours=10, minutes=17),
                    key=lambda t: -int(((stays.admit_time <= t) & (end > t)).sum()))
    return [ranked[0].to_pydatetime(), (ranked[0] + pd.Timedelta(hours=20, minutes=4))
            .to_pydatetime()]


def _same(plan_frame: pd.DataFrame, ref: pd.DataFrame) -> None:
    key = [c for c in ("stay_id", "eval_time", "variable", "time", "start_time", "period",
                       "support", "role") if c in ref.columns]
    a = plan_frame.sort_values(key, kind="stable").reset_index(drop=True)
    b = ref.sort_values(key, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_the_census_plan_equals_its_expression_at_every_time(con):
    from hyperinflam.screening.census import census_expr, census_frame

    stays = con.table("stay").to_pandas()
    for at in _busy_times(con):
        ref = census_expr(con, at, CRITERIA).to_pandas()
        ref["anakinra_running"] = ref["anakinra_running"].fillna(False).astype(bool)
        got = census_frame(con, at, CRITERIA)
        in_picu = stays[(stays.admit_time <= at) & (stays.discharge_time.isna()
                                                     | (stays.discharge_time > at))]
        assert sorted(got.stay_id) == sorted(in_picu.stay_id) and len(got) >= 1
        pd.testing.assert_frame_equal(got, ref)


def test_the_snapshot_tables_equal_their_expressions(con):
    from hyperinflam.web.patient import SNAPSHOT_TABLES, patient_tables, snapshot_exprs

    seen = {name: 0 for name in ("measurements", "strip")}
    for at in _busy_times(con):
        tables = patient_tables(con, at, CRITERIA)
        refs = snapshot_exprs(con, at, CRITERIA)
        assert set(tables) == set(SNAPSHOT_TABLES) == set(refs)
        for name in SNAPSHOT_TABLES:
            ref = refs[name]().to_pandas()
            rows = [r for group in tables[name].groups.values() for r in group]
            got = pd.DataFrame(rows, columns=list(tables[name].columns))
            assert list(got.columns) == list(ref.columns), name
            assert len(got) == len(ref), name
            if len(ref):
                _same(got.astype(object).where(got.notna(), None),
                      ref.astype(object).where(ref.notna(), None))
        for name in seen:
            seen[name] += len(tables[name])
    assert all(seen.values()), seen


def test_one_stay_outside_the_census_equals_its_expressions(con, monkeypatch):
    from hyperinflam.web.patient import patient_data, patient_window, stay_exprs

    stays = con.table("stay").order_by("stay_id").to_pandas()
    treated = set(con.table("drug_administration").filter(
        lambda t: t.drug == "anakinra").person_id.to_pandas())
    chosen = [stays[stays.person_id.isin(treated)].iloc[0], stays.iloc[1]]
    for k, stay in enumerate(chosen):
        at = (stay.admit_time + pd.Timedelta(hours=40 + k, minutes=9)).to_pydatetime()
        data = patient_data(con, stay.stay_id, at, CRITERIA)
        _, end = patient_window(data["stay"], at)
        refs = stay_exprs(con, stay.stay_id, end, CRITERIA)
        for name in ("measurements", "drugs", "support", "anakinra_days", "marker_response",
                     "strip"):
            ref = refs[name]().to_pandas()
            got = pd.DataFrame(data[name].rows, columns=list(data[name].columns))
            assert len(got) == len(ref), name
            if len(ref):
                _same(got.astype(object).where(got.notna(), None),
                      ref.astype(object).where(ref.notna(), None))
        rt = refs["recognition"]().to_pandas()
        assert {k: v for k, v in data["recognition"].items() if pd.notna(v)} == \
            {k: v for k, v in rt.iloc[0].to_dict().items() if pd.notna(v)}
    # a third time and stay: nothing is compiled again
    monkeypatch.setattr(plans, "compile_plan", lambda *a, **k: pytest.fail("compiled again"))
    stay = stays.iloc[2]
    patient_data(con, stay.stay_id, (stay.admit_time + pd.Timedelta(hours=5)).to_pydatetime(),
                 CRITERIA)


def test_an_unknown_stay_is_empty(con):
    from hyperinflam.web.patient import patient_data

    assert patient_data(con, "no such stay", dt.datetime(2024, 1, 1), CRITERIA) == {}


# -- concurrency ------------------------------------------------------------------------------
def test_heavy_work_runs_side_by_side_and_is_bounded(site):
    from hyperinflam.web.data import Database

    database = Database(site, CRITERIA, pinned_now=dt.datetime(2024, 1, 1),
                        concurrent_queries=2)
    both = threading.Barrier(2, timeout=20)
    running, seen, broke, lock = [0], [0], [0], threading.Lock()

    def work(con):
        with lock:
            running[0] += 1
            seen[0] = max(seen[0], running[0])
        try:
            both.wait()  # breaks (BrokenBarrierError) if the two were run one after the other
        except threading.BrokenBarrierError:
            broke[0] += 1  # asserted below: the work went on so that the test ends
        n = con.table("stay").count().execute()
        time.sleep(0.3)
        with lock:
            running[0] -= 1
        return n

    results, errors = [], []

    def call():
        try:
            results.append(database.run(work))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    database.close()
    assert not errors
    assert len(results) == 4 and len(set(results)) == 1 and results[0] > 0
    assert not both.broken and broke[0] == 0
    assert seen[0] == 2 and database.max_active_seen == 2
    assert database.n_connections_opened == 1

"""Phoenix and Phoenix-8 against the authors' package ``phoenix-sepsis`` and clinical reference §5,
on every engine (the ``backend`` fixture: DuckDB and Spark).

The expected values come from the reference implementation (``import phoenix as phx``, called with
full-length arrays in its units: platelets/ANC/ALC 10^3/uL, FiO2 a fraction, SpO2 %) and from the
hand-checked tables of clinical reference §5.5, never from hyperinflam itself.

Where the reference package and the clinical rules differ, the test applies §5.2/§5.4 before
calling the package: S/F exists only when SpO2 <= 97 % (the package does not check, so it is given
NaN otherwise), and "other respiratory support" is FiO2 > 0.21 or IMV.

The hand-made cases are registered at import and evaluated together, in one query per engine
(tests/widetable.py ``Batch``); the package's example data and the randomised rows are a query
each. Spark gets the first 10,000 of the 100,000 randomised rows (the same draws: every
threshold, missing input and age edge is among them many times; the rows reach Spark through
pandas, 10,000 in about 9 s on a local session).
"""

from __future__ import annotations

import importlib.resources

import ibis
import numpy as np
import pandas as pd
import phoenix as phx
import pytest

from hyperinflam.criteria import discover, phoenix, phoenix8
from hyperinflam.features.derived import derived_measurements
from hyperinflam.vocabulary import load
from widetable import Batch

COL = {
    "pf": phoenix.PF_RATIO.column, "sf": phoenix.SF_RATIO.column, "fio2": phoenix.FIO2.column,
    "imv": phoenix.IMV.column, "ors": phoenix.OTHER_SUPPORT.column,
    "vaso": phoenix.VASOACTIVES.column,
    "lactate": phoenix.LACTATE.column, "map": phoenix.MAP.column,
    "platelets": phoenix.PLATELETS.column, "inr": phoenix.INR.column,
    "d_dimer": phoenix.D_DIMER.column, "fibrinogen": phoenix.FIBRINOGEN.column,
    "gcs": phoenix.GCS.column, "pupils": phoenix.PUPILS_FIXED.column,
    "infection": phoenix.INFECTION.column,
    "glucose_min": phoenix8.GLUCOSE_MIN.column, "glucose_max": phoenix8.GLUCOSE_MAX.column,
    "anc": phoenix8.ANC.column, "alc": phoenix8.ALC.column,
    "creatinine": phoenix8.CREATININE.column, "bilirubin": phoenix8.BILIRUBIN.column,
    "alt": phoenix8.ALT.column,
}
BOOL_COLS = {COL["imv"], COL["ors"], COL["infection"], COL["pupils"]}
INT_COLS = {COL["vaso"]}


def wide_frame(rows: dict[str, np.ndarray | list], age_months) -> pd.DataFrame:
    """A wide table: base columns plus the named feature columns; absent features are NULL."""
    age = pd.array(np.asarray(age_months, dtype=float), dtype="Float64")
    n = len(age)
    df = pd.DataFrame({
        "person_id": [f"p{i}" for i in range(n)],
        "stay_id": [f"s{i}" for i in range(n)],
        "eval_time": pd.Timestamp("2024-03-01 12:00"),
        "age_months": age,
        "age_months_at_admit": age,
    })
    for key, column in COL.items():
        values = rows.get(key, [None] * n)
        if column in BOOL_COLS:
            df[column] = pd.array([None if v is None or pd.isna(v) else bool(v) for v in values],
                                  dtype="boolean")
        elif column in INT_COLS:
            df[column] = pd.array([None if v is None or pd.isna(v) else int(v) for v in values],
                                  dtype="Int64")
        else:
            df[column] = pd.array(np.asarray(values, dtype=float), dtype="Float64")
    return df


def evaluate(con, df: pd.DataFrame) -> pd.DataFrame:
    t = ibis.memtable(df)
    out = {**phoenix.evaluate(t), **phoenix8.evaluate(t)}
    return con.execute(t.select("person_id", **out)).set_index("person_id").loc[df.person_id]


def frame(rows: list[dict]) -> pd.DataFrame:
    """Cases as dicts (input names of COL, 'age' in months) -> one wide frame, in order."""
    return wide_frame({key: [r.get(key) for r in rows] for key in COL},
                      [r.get("age", np.nan) for r in rows])


#: Every hand-made case of this module: one query per engine.
BATCH = Batch([phoenix, phoenix8], frame)
case, cases = BATCH.add, BATCH.add_all


@pytest.fixture(scope="module")
def results(backend):
    return BATCH.evaluate(backend)


def test_modules_follow_the_criterion_contract():
    found = discover()
    assert found["phoenix"] is phoenix and found["phoenix8"] is phoenix8
    t = ibis.memtable(wide_frame({}, [36.0]))
    for module in (phoenix, phoenix8):
        names = list(module.evaluate(t))
        assert all(n.startswith(module.NAME + "_") for n in names)
        assert f"{module.NAME}_missing" in names and f"{module.NAME}_n_assumed_normal" in names
        assert len({s.column for s in module.INPUTS}) == len(module.INPUTS)


WORKED_EXAMPLE = case({"pf": 70 / 0.5, "fio2": 0.5, "imv": True, "vaso": 2, "lactate": 3.2,
                       "map": 40, "platelets": 85, "inr": 1.6, "gcs": 9, "pupils": False,
                       "infection": True, "age": 36.0})


def test_hand_worked_example(results):
    """§5.5: 36 months, IMV, P/F 140, epi + norepi, lactate 3.2, MAP 40, plt 85, INR 1.6, GCS 9."""
    r = results.loc[WORKED_EXAMPLE]
    assert (r.phoenix_respiratory_points, r.phoenix_cardiovascular_points,
            r.phoenix_coagulation_points, r.phoenix_neurologic_points) == (2, 3, 2, 1)
    assert r.phoenix_score == 8
    assert r.phoenix_sepsis == "met" and r.phoenix_septic_shock == "met"
    # S/F, D-dimer and fibrinogen were not measured: assumed normal and named.
    assert r.phoenix_missing == "sf_ratio,d_dimer,fibrinogen"
    assert r.phoenix_n_assumed_normal == 3


# IMV with P/F 150 -> respiratory 2; one vasoactive -> cardiovascular 1; P/F 500 -> 0.
TRI_STATE = cases({"pf": pf, "imv": True, "vaso": vaso, "infection": infection, "age": 36.0}
                  for pf, vaso, infection in [(150, 1, True), (150, 1, None), (500, 0, None),
                                              (150, 0, True)])


def test_sepsis_is_tri_state_on_infection(results):
    """§5.1: sepsis needs suspected infection; an unrecorded infection is unknown, not 'no'."""
    r = results.loc[TRI_STATE]
    assert list(r.phoenix_score) == [3, 3, 0, 2]
    assert list(r.phoenix_score_ge_2) == [True, True, False, True]
    assert list(r.phoenix_sepsis) == ["met", "unknown", "not_met", "met"]
    assert list(r.phoenix_septic_shock) == ["met", "unknown", "not_met", "not_met"]


#: §5.5 boundary checks of the reference code: (input, value, age in months, points).
CARDIOVASCULAR_BOUNDARIES = [
    ("lactate", 5.0, 36.0, 1), ("lactate", 4.99, 36.0, 0),
    ("lactate", 11.0, 36.0, 2), ("lactate", 10.99, 36.0, 1),
    ("map", 30.0, 216.0, 2), ("map", 30.0, 216.5, 0),
    ("map", 31.0, 0.5, 0), ("map", 30.99, 0.5, 1), ("map", 17.0, 0.5, 1),
    ("map", 16.99, 0.5, 2), ("map", 52.0, 144.0, 0), ("map", 51.9, 144.0, 1),
]
#: §5.5: S/F 292 with support -> 0, 291.9 -> 1; support = FiO2 > 0.21 (room air: none).
SF_BOUNDARIES = [(292.0, 0.5, 0), (291.9, 0.5, 1), (291.9, 0.21, 0), (291.9, None, 0)]
CARDIOVASCULAR_CASES = [case({key: value, "age": age})
                        for key, value, age, _ in CARDIOVASCULAR_BOUNDARIES]
SF_CASES = [case({"sf": sf, "fio2": fio2, "age": 36.0}) for sf, fio2, _ in SF_BOUNDARIES]


@pytest.mark.parametrize("key, value, age, points, row",
                         [(*b, k) for b, k in zip(CARDIOVASCULAR_BOUNDARIES, CARDIOVASCULAR_CASES)])
def test_cardiovascular_boundaries(results, key, value, age, points, row):
    assert results.loc[row].phoenix_cardiovascular_points == points


@pytest.mark.parametrize("sf, fio2, points, row",
                         [(*b, k) for b, k in zip(SF_BOUNDARIES, SF_CASES)])
def test_sf_boundary_with_other_support(results, sf, fio2, points, row):
    """§5.5: S/F 292 with support -> 0, 291.9 -> 1; support = FiO2 > 0.21 (room air: none)."""
    assert results.loc[row].phoenix_respiratory_points == points


RENAL_QUIRK = cases({"creatinine": creatinine, "map": 20, "age": age}
                    for creatinine, age in [(0.8, np.nan), (0.79, np.nan), (0.8, 36.0),
                                            (None, np.nan)])


def test_renal_missing_age_quirk_is_replicated_and_flagged(results):
    """§5.4 / §12 row 35: missing age counts as 0 months in the renal subscore only."""
    r = results.loc[RENAL_QUIRK]
    assert list(r.phoenix8_renal_points) == [1, 0, 1, 0]
    assert list(r.phoenix8_renal_age_imputed) == [True, True, False, False]
    assert list(r.phoenix_cardiovascular_points) == [0, 0, 2, 0]  # missing age: no MAP points
    assert r.phoenix_missing.iloc[0].endswith("age_months")


def _in_other_units():
    """Two patients in canonical units and the same two in other units (§11.1 factors)."""
    vocab = load()
    canonical = {"platelets": [99.0, 150.0], "fibrinogen": [99.0, 250.0],
                 "creatinine": [1.2, 0.5], "glucose_max": [200.0, 120.0], "lactate": [6.0, 1.0]}
    converted = {
        "platelets": [vocab.convert("platelets", v * 1000, "/uL") for v in canonical["platelets"]],
        "fibrinogen": [vocab.convert("fibrinogen", v / 100, "g/L")
                       for v in canonical["fibrinogen"]],
        "creatinine": [vocab.convert("creatinine", v * 88.40, "umol/L")
                       for v in canonical["creatinine"]],
        "glucose_max": [vocab.convert("glucose", v / 18.016, "mmol/L")
                        for v in canonical["glucose_max"]],
        "lactate": [vocab.convert("lactate", v * 9.008, "mg/dL") for v in canonical["lactate"]],
    }
    return [cases({"age": 60.0, **{k: values[i] for k, values in columns.items()}}
                  for i in range(2)) for columns in (canonical, converted)]


CANONICAL_UNITS, OTHER_UNITS = _in_other_units()


def test_same_patient_in_other_units(results):
    """Fibrinogen in g/L, platelets in /uL, creatinine in umol/L, glucose in mmol/L, converted with
    the vocabulary factors of §11.1, give the same Phoenix-8 result as canonical units."""
    a = results.loc[CANONICAL_UNITS].reset_index(drop=True)
    b = results.loc[OTHER_UNITS].reset_index(drop=True)
    cols = ["phoenix_coagulation_points", "phoenix_cardiovascular_points", "phoenix8_renal_points",
            "phoenix8_endocrine_points", "phoenix8_score"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert list(a.phoenix8_score) == [2 + 1 + 1 + 1, 0]


# --- (a) the package's bundled example data, through features/derived.py ----------------------------------

#: Clinical reference §5.5 table (pid: resp, cardio, coag, neuro, phoenix, endo, immuno, renal,
#: hepatic, phoenix8), hand-checked output of the reference code.
REFERENCE_TABLE = {
    1: (0, 2, 1, 0, 3, 0, 0, 1, 0, 4),
    2: (3, 2, 1, 1, 7, 0, 0, 0, 0, 7),
    4: (0, 0, 1, 0, 1, 0, 1, 0, 1, 3),
    7: (3, 4, 2, 0, 9, 0, 0, 1, 1, 11),
    10: (3, 0, 0, 1, 4, 0, 0, 0, 0, 4),
    11: (3, 3, 1, 2, 9, 1, 0, 1, 0, 11),
    20: (0, 1, 1, 0, 2, 1, 0, 0, 0, 3),
}
VASOACTIVE_COLUMNS = ["dobutamine", "dopamine", "epinephrine", "milrinone", "norepinephrine",
                      "vasopressin"]


@pytest.fixture(scope="module")
def example():
    path = importlib.resources.files("phoenix") / "data" / "sepsis.csv"
    with path.open() as handle:
        return pd.read_csv(handle)


def example_wide(con, ex: pd.DataFrame) -> pd.DataFrame:
    """Long measurements of the example -> hyperinflam.features.derived (P/F, S/F, MAP) -> wide table."""
    time = pd.Timestamp("2024-03-01 12:00")
    long = []
    for var in ["fio2", "pao2", "spo2", "sbp", "dbp"]:
        part = ex[["pid", var]].dropna()
        long.append(pd.DataFrame({"person_id": "p" + part.pid.astype(str), "time": time,
                                  "variable": var, "value": part[var].astype(float)}))
    derived = con.execute(derived_measurements(ibis.memtable(pd.concat(long))))
    pivot = derived.pivot_table(index="person_id", columns="variable", values="value",
                                aggfunc="min")
    ids = "p" + ex.pid.astype(str)
    pick = lambda var: pivot[var].reindex(ids).to_numpy() if var in pivot else np.full(len(ex), np.nan)  # noqa: E731
    df = wide_frame({
        "pf": pick("pf_ratio"), "sf": pick("sf_ratio"), "map": pick("map_any"),
        "fio2": ex.fio2, "imv": ex.vent, "vaso": ex[VASOACTIVE_COLUMNS].sum(axis=1),
        "lactate": ex.lactate, "platelets": ex.platelets, "inr": ex.inr, "d_dimer": ex.d_dimer,
        "fibrinogen": ex.fibrinogen, "gcs": ex.gcs_total,
        "pupils": (ex.pupil == "both-fixed").astype(float),
        "glucose_min": ex.glucose, "glucose_max": ex.glucose, "anc": ex.anc, "alc": ex.alc,
        "creatinine": ex.creatinine, "bilirubin": ex.bilirubin, "alt": ex.alt,
        "infection": [True] * len(ex),
    }, ex.age)
    df["person_id"] = ids.to_numpy()
    return df


def reference_phoenix8(ex: pd.DataFrame) -> pd.DataFrame:
    """phx.phoenix8 on the example, inputs prepared per §5.2/§5.4 (S/F only when SpO2 <= 97)."""
    sf = np.where(ex.spo2 <= 97, ex.spo2 / ex.fio2, np.nan)
    return phx.phoenix8(
        pf_ratio=(ex.pao2 / ex.fio2).to_numpy(), sf_ratio=sf, imv=ex.vent.to_numpy(float),
        other_respiratory_support=(ex.fio2 > 0.21).to_numpy(float),
        vasoactives=ex[VASOACTIVE_COLUMNS].sum(axis=1).to_numpy(float),
        lactate=ex.lactate.to_numpy(), age=ex.age.to_numpy(),
        map=phx.map(ex.sbp.to_numpy(), ex.dbp.to_numpy()),
        platelets=ex.platelets.to_numpy(), inr=ex.inr.to_numpy(), d_dimer=ex.d_dimer.to_numpy(),
        fibrinogen=ex.fibrinogen.to_numpy(), gcs=ex.gcs_total.to_numpy(),
        fixed_pupils=(ex.pupil == "both-fixed").to_numpy(float), glucose=ex.glucose.to_numpy(),
        anc=ex.anc.to_numpy(), alc=ex.alc.to_numpy(), creatinine=ex.creatinine.to_numpy(),
        bilirubin=ex.bilirubin.to_numpy(), alt=ex.alt.to_numpy(),
    )


OURS_VS_PACKAGE = {
    "phoenix_respiratory_points": "phoenix_respiratory_score",
    "phoenix_cardiovascular_points": "phoenix_cardiovascular_score",
    "phoenix_coagulation_points": "phoenix_coagulation_score",
    "phoenix_neurologic_points": "phoenix_neurologic_score",
    "phoenix_score": "phoenix_sepsis_score",
    "phoenix8_endocrine_points": "phoenix_endocrine_score",
    "phoenix8_immunologic_points": "phoenix_immunologic_score",
    "phoenix8_renal_points": "phoenix_renal_score",
    "phoenix8_hepatic_points": "phoenix_hepatic_score",
    "phoenix8_score": "phoenix8_sepsis_score",
}


def test_example_data_matches_package_and_reference_table(backend, example):
    ours = evaluate(backend, example_wide(backend, example))
    ref = reference_phoenix8(example)
    for mine, theirs in OURS_VS_PACKAGE.items():
        np.testing.assert_array_equal(ours[mine].to_numpy(int), ref[theirs].to_numpy(int),
                                      err_msg=mine)
    # infection recorded for every row, so met/not_met follow the package's flags exactly
    assert list(ours.phoenix_sepsis) == ["met" if s else "not_met" for s in ref.phoenix_sepsis]
    assert list(ours.phoenix_septic_shock) == ["met" if s else "not_met"
                                               for s in ref.phoenix_septic_shock]
    for pid, expected in REFERENCE_TABLE.items():
        r = ours.loc[f"p{pid}"]
        got = (r.phoenix_respiratory_points, r.phoenix_cardiovascular_points,
               r.phoenix_coagulation_points, r.phoenix_neurologic_points, r.phoenix_score,
               r.phoenix8_endocrine_points, r.phoenix8_immunologic_points,
               r.phoenix8_renal_points, r.phoenix8_hepatic_points, r.phoenix8_score)
        assert got == expected, pid


# --- (b) >= 100,000 randomised rows ---------------------------------------------------------------

N_RANDOM = 100_000
N_RANDOM_SPARK = 10_000
THRESHOLDS = {  # every threshold of §5.2/§5.3, plus the reference's substitution values
    "pf": ([100, 200, 400, 500], 20, 700), "sf": ([148, 220, 292, 500], 30, 480),
    "fio2": ([0.21], 0.21, 1.0), "lactate": ([5, 11], 0, 20),
    "map": ([17, 31, 25, 39, 44, 45, 32, 36, 49, 38, 52, 100], 5, 120),
    "platelets": ([100, 1000], 0, 500), "inr": ([1.3], 0.8, 4), "d_dimer": ([2], 0, 10),
    "fibrinogen": ([100, 1000], 20, 600), "glucose_min": ([50, 150, 100], 5, 400),
    "glucose_max": ([50, 150, 100], 5, 400), "anc": ([0.5, 555], 0, 15),
    "alc": ([1.0, 1111], 0, 8), "creatinine": ([0.3, 0.4, 0.6, 0.7, 0.8, 1.0], 0, 3),
    "bilirubin": ([4], 0, 12), "alt": ([102], 0, 400),
}
AGE_EDGES = [0, 1, 12, 24, 60, 144, 216, 222, 216.5, -1]


def _draw(rng, n, edges, lo, hi):
    """15 % missing, 30 % exactly at a threshold, 20 % just either side, 35 % uniform."""
    edges = np.asarray(edges, dtype=float)
    kind = rng.choice(4, size=n, p=[0.15, 0.30, 0.20, 0.35])
    at = rng.choice(edges, size=n)
    near = at + rng.choice([-1e-6, 1e-6, -0.01, 0.01], size=n)
    out = np.where(kind == 1, at, np.where(kind == 2, near, rng.uniform(lo, hi, size=n)))
    return np.where(kind == 0, np.nan, out)


def _with_missing(rng, values, p=0.15):
    values = np.asarray(values, dtype=float)
    return np.where(rng.random(len(values)) < p, np.nan, values)


@pytest.fixture(scope="module")
def randomised():
    rng = np.random.default_rng(20240301)
    n = N_RANDOM
    x = {k: _draw(rng, n, *v) for k, v in THRESHOLDS.items()}
    x["imv"] = _with_missing(rng, rng.integers(0, 2, n), 0.05)
    x["vaso"] = _with_missing(rng, rng.integers(0, 4, n), 0.05)
    x["gcs"] = _with_missing(rng, rng.integers(3, 16, n))
    x["pupils"] = _with_missing(rng, rng.integers(0, 2, n))
    x["infection"] = np.where(rng.random(n) < 0.5, 1.0, np.nan)
    age = np.where(rng.random(n) < 0.5, rng.choice(AGE_EDGES, n), rng.uniform(0, 230, n))
    age = _with_missing(rng, age, 0.05)
    return x, age


def _package_expected(x, age):
    ors = ((x["fio2"] > 0.21) | (x["imv"] == 1)).astype(float)
    common = dict(
        pf_ratio=x["pf"], sf_ratio=x["sf"], imv=x["imv"], other_respiratory_support=ors,
        vasoactives=x["vaso"], lactate=x["lactate"], map=x["map"], platelets=x["platelets"],
        inr=x["inr"], d_dimer=x["d_dimer"], fibrinogen=x["fibrinogen"], gcs=x["gcs"],
        fixed_pupils=x["pupils"], anc=x["anc"], alc=x["alc"], creatinine=x["creatinine"],
        bilirubin=x["bilirubin"], alt=x["alt"], age=age,
    )
    # The window's lowest and highest glucose: the system scores if either value would.
    low = phx.phoenix8(glucose=x["glucose_min"], **common)
    high = phx.phoenix8(glucose=x["glucose_max"], **common)
    endo = np.maximum(low.phoenix_endocrine_score, high.phoenix_endocrine_score)
    expected = low.copy()
    expected["phoenix8_sepsis_score"] = low.phoenix8_sepsis_score - low.phoenix_endocrine_score + endo
    expected["phoenix_endocrine_score"] = endo
    return expected


def test_randomised_rows_match_package_exactly(backend, randomised):
    x, age = randomised
    n = N_RANDOM if backend.name == "duckdb" else N_RANDOM_SPARK
    x, age = {k: v[:n] for k, v in x.items()}, age[:n]
    ours = evaluate(backend, wide_frame(x, age))
    ref = _package_expected(x, age)
    assert len(ours) == n
    for mine, theirs in OURS_VS_PACKAGE.items():
        diff = np.flatnonzero(ours[mine].to_numpy(int) != ref[theirs].to_numpy(int))
        assert diff.size == 0, f"{mine}: {diff.size} rows differ, first {diff[:5]}"
    np.testing.assert_array_equal(ours.phoenix_score_ge_2.to_numpy(bool),
                                  ref.phoenix_sepsis.to_numpy(bool))
    infection = x["infection"] == 1
    sepsis = np.where(ref.phoenix_sepsis == 0, "not_met", np.where(infection, "met", "unknown"))
    shock = np.where((ref.phoenix_sepsis == 0) | (ref.phoenix_cardiovascular_score == 0),
                     "not_met", np.where(infection, "met", "unknown"))
    np.testing.assert_array_equal(ours.phoenix_sepsis.to_numpy(str), sepsis)
    np.testing.assert_array_equal(ours.phoenix_septic_shock.to_numpy(str), shock)
    # every substituted input is counted (13 scored inputs + age; Phoenix-8 adds 7)
    scored = ["pf", "sf", "fio2", "imv", "vaso", "lactate", "map", "platelets", "inr", "d_dimer",
              "fibrinogen", "gcs", "pupils"]
    n_missing = sum(np.isnan(x[k]).astype(int) for k in scored) + np.isnan(age).astype(int)
    np.testing.assert_array_equal(ours.phoenix_n_assumed_normal.to_numpy(int), n_missing)
    extra = ["glucose_min", "glucose_max", "anc", "alc", "creatinine", "bilirubin", "alt"]
    n_missing8 = n_missing + sum(np.isnan(x[k]).astype(int) for k in extra)
    np.testing.assert_array_equal(ours.phoenix8_n_assumed_normal.to_numpy(int), n_missing8)
    lengths = ours.phoenix_missing.map(lambda s: 0 if s == "" else len(s.split(",")))
    np.testing.assert_array_equal(lengths.to_numpy(int), n_missing)

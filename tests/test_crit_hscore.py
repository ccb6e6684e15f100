"""HScore (clinical reference §2): worked examples of §2.5, every band edge just below / at /
just above in native units, unit invariance, missing items (observed vs maximum possible) and the
published probability band of §2.3."""

from __future__ import annotations

import ibis
import pandas as pd
import pytest

from hyperinflam import vocabulary
from widetable import CaseBook
from hyperinflam.criteria import hscore as MODULE

VOCAB = vocabulary.load()


BOOK = CaseBook(MODULE)
CASES, case, wide = BOOK.cases, BOOK.case, BOOK.wide


@pytest.fixture(scope="module")
def results(backend):
    """Every case of this module, in one query per engine (DuckDB, Spark)."""
    return BOOK.evaluate(backend)


hs = MODULE
C = {name: spec.column for name, spec in {
    "immuno": hs.IMMUNOSUPPRESSION, "temp": hs.TEMPERATURE, "liver": hs.HEPATOMEGALY,
    "spleen": hs.SPLENOMEGALY, "hb": hs.HEMOGLOBIN, "wbc": hs.WBC, "plt": hs.PLATELETS,
    "ferritin": hs.FERRITIN, "tg": hs.TRIGLYCERIDES, "fib": hs.FIBRINOGEN, "ast": hs.AST,
    "marrow": hs.MARROW_HEMOPHAGOCYTOSIS}.items()}


def row(**values) -> dict:
    return {C[k]: v for k, v in values.items()}


# Everything measured and scoring 0, to isolate one item.
ZERO_ROW = row(immuno=False, temp=37.0, liver=False, spleen=False, hb=12.0, wbc=8.0, plt=300.0,
               ferritin=100.0, tg=100.0, fib=300.0, ast=20.0, marrow=False)


def one(**values) -> str:
    """A case where every item scores 0 except the given ones."""
    return case(**{**ZERO_ROW, **row(**values)})


# §2.5 worked examples in canonical units (TG mg/dL = mmol/L x 88.57; fibrinogen mg/dL).
EXAMPLE_1 = case(**row(immuno=False, temp=39.6, liver=True, spleen=True, hb=8.9, wbc=2.8,
                       plt=72.0, ferritin=8450.0, tg=3.1 * 88.57, fib=190.0, ast=120.0))
EXAMPLE_1_OTHER_UNITS = case(**row(
    immuno=False, liver=True, spleen=True,
    temp=VOCAB.convert("temperature", 103.28, "degF"),   # 39.6 °C
    hb=VOCAB.convert("hemoglobin", 89, "g/L"),
    wbc=VOCAB.convert("wbc", 2800, "/uL"),
    plt=VOCAB.convert("platelets", 72000, "/uL"),
    ferritin=VOCAB.convert("ferritin", 8450, "ug/L"),
    tg=VOCAB.convert("triglycerides", 3.1, "mmol/L"),
    fib=VOCAB.convert("fibrinogen", 1.9, "g/L"),
    ast=VOCAB.convert("ast", 2.0, "ukat/L"),             # 120 U/L
))
EXAMPLE_2 = case(**row(immuno=True, temp=38.6, liver=False, spleen=False, hb=11.0, wbc=7.0,
                       plt=95.0, ferritin=1200.0, tg=180.0, fib=310.0, ast=45.0))
ALL_ZERO = one()
NOTHING = case()


def test_module_contract(results):
    new = [c for c in results.columns if c not in wide({"x": {}}).columns]
    assert new and all(c.startswith("hscore_") for c in new)
    assert all(c == c.lower() for c in results.columns)


def test_all_zero_patient_scores_zero_and_is_not_met(results):
    r = results.loc[ALL_ZERO]
    assert (r.hscore_points, r.hscore_max_possible, r.hscore_n_missing) == (0, 0, 0)
    assert r.hscore_ge_169 == "not_met"
    assert r.hscore_missing == ""


def test_worked_example_1(results):
    r = results.loc[EXAMPLE_1]
    points = {k: r[f"hscore_{k}_points"] for k in (
        "immunosuppression", "temperature", "organomegaly", "cytopenias", "ferritin",
        "triglycerides", "fibrinogen", "ast")}
    assert points == {"immunosuppression": 0, "temperature": 49, "organomegaly": 38,
                      "cytopenias": 34, "ferritin": 50, "triglycerides": 44, "fibrinogen": 30,
                      "ast": 19}
    assert pd.isna(r.hscore_marrow_hemophagocytosis_points)
    assert r.hscore_points == 264
    assert r.hscore_max_possible == 264 + 35
    assert r.hscore_ge_169 == "met"
    assert r.hscore_probability_band == ">99%"
    assert r.hscore_probability_fit_approx_pct == pytest.approx(99.8, abs=0.05)
    assert r.hscore_missing == "hemophagocytosis_bone_marrow"
    assert r.hscore_n_missing == 1


def test_worked_example_2(results):
    r = results.loc[EXAMPLE_2]
    assert r.hscore_immunosuppression_points == 18
    assert r.hscore_temperature_points == 33
    assert r.hscore_organomegaly_points == 0
    assert r.hscore_cytopenias_points == 0
    assert r.hscore_ferritin_points == 0
    assert r.hscore_tg_mmol_l == pytest.approx(2.03)
    assert r.hscore_triglycerides_points == 44
    assert r.hscore_fibrinogen_g_l == pytest.approx(3.1)
    assert r.hscore_fibrinogen_points == 0
    assert r.hscore_ast_points == 19
    assert r.hscore_points == 114
    assert r.hscore_max_possible == 149  # with marrow 35
    assert r.hscore_ge_169 == "not_met"
    assert r.hscore_probability_band == "3–5%"
    assert (r.hscore_probability_band_low_pct, r.hscore_probability_band_high_pct) == (3, 5)
    assert r.hscore_probability_fit_approx_pct == pytest.approx(3.3, abs=0.05)


def test_example_1_in_other_units_gives_the_same_points(results):
    out = results.filter(like="hscore_")
    pd.testing.assert_series_equal(out.loc[EXAMPLE_1], out.loc[EXAMPLE_1_OTHER_UNITS],
                                   check_names=False)


TEMPERATURE = [({"temp": v}, p) for v, p in
               ((38.3, 0), (38.4, 33), (38.5, 33), (39.3, 33), (39.4, 33), (39.5, 49))]
# Each lineage with one other lineage abnormal: abnormal -> 2 lineages (24), normal -> 0.
CYTOPENIAS = [({"hb": v, "plt": 50.0}, p) for v, p in ((9.1, 24), (9.2, 24), (9.3, 0))] + [
    ({"hb": VOCAB.convert("hemoglobin", 92, "g/L"), "plt": 50.0}, 24),
] + [({"wbc": v, "plt": 50.0}, p) for v, p in ((4.9, 24), (5.0, 24), (5.1, 0))] + [
    ({"plt": VOCAB.convert("platelets", v, "/uL"), "hb": 8.0}, p)
    for v, p in ((109000, 24), (110000, 24), (111000, 0))
] + [({"hb": 8.0, "wbc": 2.0, "plt": 50.0}, 34)]
FERRITIN = [({"ferritin": v}, p) for v, p in ((1999.0, 0), (2000.0, 35), (2001.0, 35),
                                                (5999.0, 35), (6000.0, 35), (6001.0, 50))]
TRIGLYCERIDES = [({"tg": VOCAB.convert("triglycerides", v, "mmol/L")}, p) for v, p in (
    (1.49, 0), (1.5, 44), (1.51, 44), (3.99, 44), (4.0, 44), (4.01, 64))] + [
    # §2.5 boundary example: 354.3 mg/dL / 88.57 = 4.0004 -> 4.00 mmol/L (2 dp) -> 44, not 64.
    ({"tg": 354.3}, 44)]
FIBRINOGEN = [({"fib": VOCAB.convert("fibrinogen", v, "g/L")}, p)
              for v, p in ((2.49, 30), (2.5, 30), (2.51, 0))]
AST = [({"ast": v}, p) for v, p in ((29.0, 0), (30.0, 19), (31.0, 19))]
BINARY = {"immunosuppression": [({"immuno": True}, 18)],
          "marrow_hemophagocytosis": [({"marrow": True}, 35)]}

BAND_CASES = [(one(**values), item, points) for item, cases in {
    "temperature": TEMPERATURE, "cytopenias": CYTOPENIAS, "ferritin": FERRITIN,
    "triglycerides": TRIGLYCERIDES, "fibrinogen": FIBRINOGEN, "ast": AST, **BINARY}.items()
    for values, points in cases]


@pytest.mark.parametrize(("key", "item", "points"), BAND_CASES)
def test_item_points_at_every_edge(results, key, item, points):
    r = results.loc[key]
    assert r[f"hscore_{item}_points"] == points
    assert r.hscore_points == points


def test_triglycerides_354_3_mg_dl_is_4_mmol_l(results):
    key = next(k for k, v in CASES.items() if v.get(hs.TRIGLYCERIDES.column) == 354.3)
    assert results.loc[key].hscore_tg_mmol_l == 4.0


@pytest.mark.parametrize(("key", "item", "observed", "maximum"), [
    (one(liver=liver, spleen=spleen), "organomegaly", observed, maximum)
    for liver, spleen, observed, maximum in (
        (True, True, 38, 38), (True, False, 23, 23), (False, True, 23, 23), (False, False, 0, 0),
        (True, None, 23, 38), (False, None, 0, 23), (None, None, None, 38))
] + [
    (one(hb=8.0, wbc=None, plt=None), "cytopenias", 0, 34),   # 1 lineage met, 2 unknown
    (one(hb=8.0, wbc=2.0, plt=None), "cytopenias", 24, 34),   # 2 met, 1 unknown
])
def test_partly_known_items_observed_and_maximum(results, key, item, observed, maximum):
    r = results.loc[key]
    if observed is None:
        assert pd.isna(r[f"hscore_{item}_points"])
    else:
        assert r[f"hscore_{item}_points"] == observed
    assert r.hscore_points == (observed or 0)
    assert r.hscore_max_possible == maximum


def test_all_missing(results):
    r = results.loc[NOTHING]
    assert r.hscore_points == 0
    assert r.hscore_max_possible == 18 + 49 + 38 + 34 + 50 + 64 + 30 + 19 + 35 == 337
    assert r.hscore_ge_169 == "unknown"
    assert r.hscore_n_missing == 12


@pytest.mark.parametrize(("key", "observed", "maximum", "expected"), [
    # 49 + 38 + 34 + 50 = 171, nothing missing -> met
    (one(temp=39.6, liver=True, spleen=True, hb=8.0, wbc=2.0, plt=50.0, ferritin=7000.0),
     171, 171, "met"),
    # 33 + 38 + 34 + 64 = 169 exactly -> met
    (one(temp=39.0, liver=True, spleen=True, hb=8.0, wbc=2.0, plt=50.0, tg=500.0),
     169, 169, "met"),
    # 49 + 38 + 50 + 30 = 167, nothing missing -> not met
    (one(temp=39.6, liver=True, spleen=True, ferritin=7000.0, fib=200.0), 167, 167, "not_met"),
    # 167 observed but marrow unknown (+35 possible) -> unknown, never not met
    (one(temp=39.6, liver=True, spleen=True, ferritin=7000.0, fib=200.0, marrow=None),
     167, 202, "unknown"),
])
def test_cutoff_169_tristate(results, key, observed, maximum, expected):
    r = results.loc[key]
    assert (r.hscore_points, r.hscore_max_possible, r.hscore_ge_169) == (
        observed, maximum, expected)


def test_probability_band_from_published_table(backend):
    # Expected bands read off the §2.3 table by hand.
    expected = [(0, "<1%", 0, 1), (90, "<1%", 0, 1), (95, "<1–1%", 0, 1), (100, "1%", 1, 1),
                (114, "3–5%", 3, 5), (169, "40–54%", 40, 54), (170, "54%", 54, 54),
                (245, "99–>99%", 99, 100), (250, ">99%", 99, 100), (337, ">99%", 99, 100)]
    t = ibis.memtable(pd.DataFrame({"p": [e[0] for e in expected]}), schema={"p": "int64"})
    label, low, high = hs.probability_band(t.p)
    out = backend.execute(t.mutate(label=label, low=low, high=high).order_by("p"))
    assert list(out.itertuples(index=False, name=None)) == expected


def test_project_fit_matches_reference_values_and_table_rows(backend):
    rows = [100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200, 210, 220, 230, 240]
    t = ibis.memtable(pd.DataFrame({"i": range(17), "p": [169, 250, *rows]}),
                      schema={"i": "int64", "p": "int64"})
    fit = backend.execute(t.mutate(f=hs.probability_fit_pct(t.p)).order_by("i")).f.tolist()
    assert fit[0] == pytest.approx(52.0, abs=0.05)
    assert fit[1] == pytest.approx(99.4, abs=0.05)
    published = {r: float(p) for r, p in hs.PROBABILITY_TABLE if p[0].isdigit()}
    assert max(abs(f - published[r]) for f, r in zip(fit[2:], rows)) <= 1.9

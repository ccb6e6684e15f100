"""HLH-2004 (clinical reference §1): worked examples of §1.5, every threshold just below / at /
just above in native units, unit invariance, and missing inputs -> unknown / indeterminate."""

from __future__ import annotations

import pandas as pd
import pytest

from hyperinflam import vocabulary
from widetable import CaseBook
from hyperinflam.criteria import hlh2004 as MODULE

VOCAB = vocabulary.load()


BOOK = CaseBook(MODULE)
CASES, case, wide = BOOK.cases, BOOK.case, BOOK.wide


@pytest.fixture(scope="module")
def results(backend):
    """Every case of this module, in one query per engine (DuckDB, Spark)."""
    return BOOK.evaluate(backend)


hlh = MODULE
C = {name: spec.column for name, spec in {
    "temp": hlh.TEMPERATURE, "spleen": hlh.SPLENOMEGALY, "hb": hlh.HEMOGLOBIN,
    "plt": hlh.PLATELETS, "anc": hlh.ANC, "tg": hlh.TRIGLYCERIDES, "fib": hlh.FIBRINOGEN,
    "nk": hlh.LOW_NK_ACTIVITY, "ferritin": hlh.FERRITIN, "scd25": hlh.SCD25,
    "gene": hlh.HLH_GENE_VARIANT, "bm": hlh.HEMOPHAGOCYTOSIS[0],
    "spleen_hpc": hlh.HEMOPHAGOCYTOSIS[1], "ln": hlh.HEMOPHAGOCYTOSIS[2]}.items()}


def row(**values) -> dict:
    return {C[k]: v for k, v in values.items()}


# §1.5 worked examples, values in canonical units (TG mg/dL = mmol/L x 88.57, fib mg/dL).
EXAMPLE_1 = case(**row(temp=39.2, spleen=True, hb=8.5, plt=85.0, anc=1.6,
                       tg=3.4 * 88.57, ferritin=12500.0))
EXAMPLE_1_OTHER_UNITS = case(**row(
    temp=VOCAB.convert("temperature", 102.56, "degF"),       # 39.2 °C
    spleen=True,
    hb=VOCAB.convert("hemoglobin", 85, "g/L"),
    plt=VOCAB.convert("platelets", 85000, "/uL"),
    anc=VOCAB.convert("anc", 1600, "cells/uL"),
    tg=VOCAB.convert("triglycerides", 3.4, "mmol/L"),
    ferritin=VOCAB.convert("ferritin", 12500, "ug/L"),
))
EXAMPLE_2 = case(**row(temp=38.9, hb=10.5, plt=60.0, anc=3.0, fib=140.0, ferritin=900.0))
NOTHING = case()
ALL_DONE_TWO_MET = case(**row(temp=39.0, spleen=False, hb=12.0, plt=250.0, anc=4.0, tg=100.0,
                              fib=300.0, bm=False, spleen_hpc=False, ln=False, nk=False,
                              ferritin=800.0, scd25=1000.0))
GENE_ONLY = case(**row(gene=True))


def test_module_contract(results):
    new = [c for c in results.columns if c not in wide({"x": {}}).columns]
    assert new and all(c.startswith("hlh2004_") for c in new)
    assert len(set(results.columns)) == len(results.columns)
    assert all(c == c.lower() for c in results.columns)


def test_worked_example_1_fulfilled(results):
    r = results.loc[EXAMPLE_1]
    assert r.hlh2004_fever == "met"
    assert r.hlh2004_splenomegaly == "met"
    assert r.hlh2004_cytopenias == "met"
    assert r.hlh2004_cytopenia_lineages_met == 2
    assert r.hlh2004_tg_or_fibrinogen == "met"
    assert r.hlh2004_hemophagocytosis == "unknown"
    assert r.hlh2004_low_nk_activity == "unknown"
    assert r.hlh2004_ferritin == "met"
    assert r.hlh2004_scd25 == "unknown"
    assert (r.hlh2004_met_count, r.hlh2004_unknown_count) == (5, 3)
    assert r.hlh2004_result == "met"


def test_worked_example_2_indeterminate(results):
    r = results.loc[EXAMPLE_2]
    assert r.hlh2004_fever == "met"
    assert r.hlh2004_splenomegaly == "unknown"
    assert r.hlh2004_cytopenias == "not_met"  # 1 lineage met, none unknown
    assert r.hlh2004_tg_or_fibrinogen == "met"  # fibrinogen 1.4 g/L, TG not done
    assert r.hlh2004_fibrinogen_g_l == pytest.approx(1.4)
    assert r.hlh2004_ferritin == "met"
    assert (r.hlh2004_met_count, r.hlh2004_unknown_count) == (3, 4)
    assert r.hlh2004_result == "indeterminate"
    assert "splenomegaly" in r.hlh2004_missing.split(",")
    assert "triglycerides" in r.hlh2004_missing.split(",")


def test_example_1_in_other_units_gives_the_same_result(results):
    out = results.filter(like="hlh2004_")
    pd.testing.assert_series_equal(out.loc[EXAMPLE_1], out.loc[EXAMPLE_1_OTHER_UNITS],
                                   check_names=False)


def test_not_fulfilled_when_five_cannot_be_reached(results):
    r = results.loc[ALL_DONE_TWO_MET]  # only fever and ferritin met, nothing unknown
    assert (r.hlh2004_met_count, r.hlh2004_unknown_count) == (2, 0)
    assert r.hlh2004_result == "not_met"
    assert r.hlh2004_missing == "hlh_gene_variant"


def test_all_missing_is_indeterminate_never_not_met(results):
    r = results.loc[NOTHING]
    assert (r.hlh2004_met_count, r.hlh2004_unknown_count) == (0, 8)
    assert r.hlh2004_result == "indeterminate"
    for name in ("fever", "splenomegaly", "cytopenias", "tg_or_fibrinogen", "hemophagocytosis",
                 "low_nk_activity", "ferritin", "scd25", "molecular"):
        assert r[f"hlh2004_{name}"] == "unknown"
    assert len(r.hlh2004_missing.split(",")) == len(hlh.INPUTS)


def test_molecular_diagnosis_is_a_separate_flag(results):
    r = results.loc[GENE_ONLY]
    assert r.hlh2004_molecular == "met"
    assert r.hlh2004_met_count == 0
    assert r.hlh2004_result == "indeterminate"


@pytest.mark.parametrize(("key", "expected"), [
    (case(**row(temp=38.4)), "not_met"), (case(**row(temp=38.5)), "met"),
    (case(**row(temp=38.6)), "met"),
    (case(**row(temp=VOCAB.convert("temperature", 101.3, "degF"))), "met"),  # 38.5 °C
])
def test_fever_boundary(results, key, expected):
    assert results.loc[key].hlh2004_fever == expected


# Hb < 90 g/L (Example 3: exactly 90 -> not met), given in g/L and converted to canonical g/dL;
# platelets met and ANC normal, so the criterion is met only if Hb is.
@pytest.mark.parametrize(("key", "expected"), [
    (case(**row(hb=VOCAB.convert("hemoglobin", g_l, "g/L"), plt=50.0, anc=2.0)), expected)
    for g_l, expected in ((89, "met"), (90, "not_met"), (91, "not_met"))
] + [
    (case(**row(hb=9.0, plt=50.0, anc=2.0)), "not_met"),
    (case(**row(hb=8.95, plt=50.0, anc=2.0)), "not_met"),  # 89.5 g/L -> 90 g/L (0 dp, §12)
])
def test_hemoglobin_boundary_in_g_l(results, key, expected):
    assert results.loc[key].hlh2004_cytopenias == expected


@pytest.mark.parametrize(("key", "expected"), [
    (case(**row(hb=hb, plt=50.0, anc=2.0), age_days=age), expected)
    for hb, age, expected in ((9.9, 27.9, "met"), (10.0, 27.9, "not_met"),
                              (10.1, 27.9, "not_met"), (9.5, 27.9, "met"),
                              (9.5, 28.0, "not_met"))
])
def test_hemoglobin_threshold_under_4_weeks(results, key, expected):
    assert results.loc[key].hlh2004_cytopenias == expected


@pytest.mark.parametrize(("key", "expected"), [
    (case(**row(hb=8.0, plt=VOCAB.convert("platelets", per_ul, "/uL"), anc=2.0)), expected)
    for per_ul, expected in ((99000, "met"), (100000, "not_met"), (101000, "not_met"))
])
def test_platelet_boundary(results, key, expected):
    assert results.loc[key].hlh2004_cytopenias == expected


@pytest.mark.parametrize(("key", "expected"), [
    (case(**row(hb=8.0, plt=200.0, anc=VOCAB.convert("anc", per_ul, "cells/uL"))), expected)
    for per_ul, expected in ((990, "met"), (1000, "not_met"), (1010, "not_met"))
])
def test_anc_boundary(results, key, expected):
    assert results.loc[key].hlh2004_cytopenias == expected


@pytest.mark.parametrize(("key", "expected"), [
    (case(**row(hb=8.0)), "unknown"),              # 1 met, 2 unknown -> could reach 2
    (case(**row(hb=12.0, plt=200.0)), "not_met"),  # 0 met, 1 unknown -> at most 1
    (case(**row(hb=8.0, plt=50.0)), "met"),        # 2 met
    (case(**row(hb=12.0, plt=50.0)), "unknown"),   # 1 met, 1 unknown
])
def test_cytopenia_tristate_with_missing_lineages(results, key, expected):
    assert results.loc[key].hlh2004_cytopenias == expected


@pytest.mark.parametrize(("key", "expected"), [
    (case(**row(tg=VOCAB.convert("triglycerides", mmol, "mmol/L"), fib=300.0)), expected)
    for mmol, expected in ((2.99, "not_met"), (3.0, "met"), (3.01, "met"))
] + [
    # The printed 265 mg/dL is 2.992 -> 2.99 mmol/L: below 3.0 in the native unit (§12 row 11).
    (case(**row(tg=265.0, fib=300.0)), "not_met"),
])
def test_triglyceride_boundary_in_mmol_l(results, key, expected):
    assert results.loc[key].hlh2004_tg_or_fibrinogen == expected


@pytest.mark.parametrize(("key", "expected"), [
    (case(**row(tg=100.0, fib=VOCAB.convert("fibrinogen", g_l, "g/L"))), expected)
    for g_l, expected in ((1.49, "met"), (1.5, "met"), (1.51, "not_met"))
])
def test_fibrinogen_boundary_in_g_l(results, key, expected):
    assert results.loc[key].hlh2004_tg_or_fibrinogen == expected


@pytest.mark.parametrize(("key", "expected"), [
    (case(**row(tg=100.0)), "unknown"),            # TG normal, fibrinogen not done
    (case(**row(fib=120.0)), "met"),               # fibrinogen low alone suffices
    (case(**row(tg=100.0, fib=300.0)), "not_met"),  # both measured and normal
])
def test_tg_or_fibrinogen_tristate(results, key, expected):
    assert results.loc[key].hlh2004_tg_or_fibrinogen == expected


@pytest.mark.parametrize(("key", "expected"), [
    (case(**row(ferritin=499.0)), "not_met"), (case(**row(ferritin=500.0)), "met"),
    (case(**row(ferritin=501.0)), "met"),
    (case(**row(ferritin=VOCAB.convert("ferritin", 500.0 * 2.247, "pmol/L"))), "met"),
])
def test_ferritin_boundary(results, key, expected):
    assert results.loc[key].hlh2004_ferritin == expected


@pytest.mark.parametrize(("key", "expected"), [
    (case(**row(scd25=2399.0)), "not_met"), (case(**row(scd25=2400.0)), "met"),
    (case(**row(scd25=2401.0)), "met"),
])
def test_scd25_boundary(results, key, expected):
    assert results.loc[key].hlh2004_scd25 == expected


@pytest.mark.parametrize(("key", "expected"), [
    (case(**row(ln=True)), "met"),
    (case(**row(bm=False)), "unknown"),  # other sites not examined
    (case(**row(bm=False, spleen_hpc=False, ln=False)), "not_met"),
])
def test_hemophagocytosis_any_site_unknown_unless_all_negative(results, key, expected):
    assert results.loc[key].hlh2004_hemophagocytosis == expected

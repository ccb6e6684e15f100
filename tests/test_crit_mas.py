"""MAS-2016 classification and the MS score (clinical reference §3): worked examples of §3.3,
every threshold just below / at / just above in native units, unit invariance, and missing inputs
-> unknown / indeterminate, never not met."""

from __future__ import annotations

import types

import pandas as pd
import pytest

from hyperinflam import vocabulary
from widetable import CaseBook
from hyperinflam.criteria import mas2016 as mas
from hyperinflam.criteria import ms_score as ms

VOCAB = vocabulary.load()
# Both criteria evaluated on one wide table holding the union of their inputs.
MODULE = types.SimpleNamespace(
    INPUTS=list(dict.fromkeys(mas.INPUTS + ms.INPUTS)),
    evaluate=lambda t: {**mas.evaluate(t), **ms.evaluate(t)},
)


BOOK = CaseBook(MODULE)
CASES, case, wide = BOOK.cases, BOOK.case, BOOK.wide


@pytest.fixture(scope="module")
def results(backend):
    """Every case of this module, in one query per engine (DuckDB, Spark)."""
    return BOOK.evaluate(backend)


C = {name: spec.column for name, spec in {
    "temp": mas.TEMPERATURE, "sjia": mas.SYSTEMIC_JIA, "ferritin": mas.FERRITIN,
    "plt": mas.PLATELETS, "ast": mas.AST, "tg": mas.TRIGLYCERIDES, "fib": mas.FIBRINOGEN,
    "cns": ms.CNS, "haem": ms.HEMORRHAGE, "arthritis": ms.ARTHRITIS, "ldh": ms.LDH}.items()}
assert ms.PLATELETS == mas.PLATELETS and ms.FERRITIN == mas.FERRITIN
assert ms.FIBRINOGEN == mas.FIBRINOGEN


def row(**values) -> dict:
    return {C[k]: v for k, v in values.items()}


# §3.3 worked examples (canonical units: platelets 10⁹/L, TG and fibrinogen mg/dL).
EXAMPLE_1_ROW = row(temp=39.0, sjia=True, ferritin=2300.0, plt=160.0, ast=85.0, tg=140.0,
                    fib=290.0, cns=False, haem=False, arthritis=True, ldh=800.0)
EXAMPLE_1 = case(**EXAMPLE_1_ROW)
EXAMPLE_1_OTHER_UNITS = case(**{**EXAMPLE_1_ROW, **row(
    temp=VOCAB.convert("temperature", 102.2, "degF"),        # 39.0 °C
    ferritin=VOCAB.convert("ferritin", 2300, "ug/L"),
    plt=VOCAB.convert("platelets", 160000, "/uL"),
    ast=VOCAB.convert("ast", 85 / 60, "ukat/L"),
    tg=VOCAB.convert("triglycerides", 1.58, "mmol/L"),       # 139.9 mg/dL
    fib=VOCAB.convert("fibrinogen", 2.9, "g/L"),
    ldh=VOCAB.convert("ldh", 800 / 60, "ukat/L"),
)})
EXAMPLE_2 = case(**row(temp=39.0, sjia=True, ferritin=400.0, plt=450.0, ast=30.0, tg=120.0,
                       fib=550.0, cns=False, haem=False, arthritis=True, ldh=350.0))
NOTHING = case()

# Ferritin > 684 and all four components measured and normal; one component varied at a time
# together with a second component met (platelets, or AST when platelets are varied).
NORMAL = row(temp=39.0, sjia=True, ferritin=2000.0, plt=300.0, ast=20.0, tg=100.0, fib=400.0)


def mas_case(**values) -> str:
    return case(**{**NORMAL, **row(**values)})


def test_module_contract(results):
    new = [c for c in results.columns if c not in wide({"x": {}}).columns]
    assert all(c.startswith(("mas2016_", "ms_score_")) for c in new)
    assert all(c == c.lower() for c in results.columns)


def test_mas2016_worked_example_1(results):
    r = results.loc[EXAMPLE_1]
    assert r.mas2016_ferritin == "met"
    assert (r.mas2016_platelets, r.mas2016_ast, r.mas2016_triglycerides,
            r.mas2016_fibrinogen) == ("met", "met", "not_met", "met")
    assert (r.mas2016_lab_met_count, r.mas2016_lab_unknown_count) == (3, 0)
    assert r.mas2016_lab_pattern == "met"
    assert r.mas2016_result == "met"
    assert r.mas2016_note == ""
    assert r.mas2016_missing == ""


def test_mas2016_worked_example_2(results):
    r = results.loc[EXAMPLE_2]
    assert r.mas2016_ferritin == "not_met"
    assert r.mas2016_lab_met_count == 0
    assert r.mas2016_lab_pattern == "not_met"
    assert r.mas2016_result == "not_met"


def test_ms_score_worked_examples(results):
    one, two = results.loc[EXAMPLE_1], results.loc[EXAMPLE_2]
    assert one.ms_score_value == pytest.approx(-1.91, abs=1e-9)
    assert one.ms_score_ge_cutoff == "met"
    assert two.ms_score_value == pytest.approx(-4.46, abs=1e-9)
    assert two.ms_score_ge_cutoff == "not_met"
    assert one.ms_score_n_missing == 0 and one.ms_score_missing == ""


def test_example_1_in_other_units_gives_the_same_result(results):
    a, b = results.loc[EXAMPLE_1], results.loc[EXAMPLE_1_OTHER_UNITS]
    for column in results.columns:
        if column.startswith("mas2016_") or column == "ms_score_ge_cutoff":
            assert a[column] == b[column], column
    assert b.ms_score_value == pytest.approx(-1.91, abs=1e-6)


@pytest.mark.parametrize(("key", "component", "expected"), [
    (mas_case(plt=v, ast=60.0), "platelets", e)
    for v, e in ((180.0, "met"), (181.0, "met"), (182.0, "not_met"))
] + [
    (mas_case(plt=VOCAB.convert("platelets", 181000, "/uL"), ast=60.0), "platelets", "met"),
    (mas_case(ast=VOCAB.convert("ast", 0.8, "ukat/L"), plt=100.0), "ast", "not_met"),  # 48 U/L
] + [
    (mas_case(ast=v, plt=100.0), "ast", e)
    for v, e in ((47.0, "not_met"), (48.0, "not_met"), (49.0, "met"))
] + [
    (mas_case(tg=v, plt=100.0), "triglycerides", e)
    for v, e in ((155.0, "not_met"), (156.0, "not_met"), (157.0, "met"))
] + [
    # 1.76 mmol/L (the printed equivalent) = 155.88 mg/dL: not above 156 in the native mg/dL.
    (mas_case(tg=VOCAB.convert("triglycerides", 1.76, "mmol/L"), plt=100.0), "triglycerides",
     "not_met"),
] + [
    (mas_case(fib=v, plt=100.0), "fibrinogen", e)
    for v, e in ((359.0, "met"), (360.0, "met"), (361.0, "not_met"))
] + [
    (mas_case(fib=VOCAB.convert("fibrinogen", 3.6, "g/L"), plt=100.0), "fibrinogen", "met"),
])
def test_component_edges(results, key, component, expected):
    r = results.loc[key]
    assert r[f"mas2016_{component}"] == expected
    assert r.mas2016_lab_met_count == (2 if expected == "met" else 1)
    assert r.mas2016_result == expected


@pytest.mark.parametrize(("key", "expected"), [
    (mas_case(ferritin=683.0, plt=100.0, ast=60.0), "not_met"),
    (mas_case(ferritin=684.0, plt=100.0, ast=60.0), "not_met"),   # strict >
    (mas_case(ferritin=685.0, plt=100.0, ast=60.0), "met"),
    (mas_case(ferritin=VOCAB.convert("ferritin", 685 * 2.247, "pmol/L"), plt=100.0, ast=60.0),
     "met"),
])
def test_ferritin_edge(results, key, expected):
    r = results.loc[key]
    assert r.mas2016_ferritin == expected
    assert r.mas2016_lab_pattern == expected


@pytest.mark.parametrize(("key", "pattern", "result"), [
    # ferritin missing -> indeterminate even with all four components met
    (case(**row(temp=39.0, sjia=True, plt=100.0, ast=60.0, tg=200.0, fib=200.0)),
     "indeterminate", "indeterminate"),
    # ferritin > 684, 1 met + 1 unknown -> could reach 2
    (case(**row(temp=39.0, sjia=True, ferritin=2000.0, plt=100.0, ast=20.0, tg=100.0)),
     "indeterminate", "indeterminate"),
    # ferritin > 684, 1 met + 3 normal -> not met
    (mas_case(plt=100.0), "not_met", "not_met"),
    # ferritin measured and <= 684, components unknown -> not met
    (case(**row(temp=39.0, sjia=True, ferritin=300.0)), "not_met", "not_met"),
    # ferritin > 684, nothing else measured -> indeterminate
    (case(**row(ferritin=2000.0)), "indeterminate", "indeterminate"),
])
def test_missing_inputs(results, key, pattern, result):
    r = results.loc[key]
    assert (r.mas2016_lab_pattern, r.mas2016_result) == (pattern, result)


def test_all_missing(results):
    r = results.loc[NOTHING]
    assert (r.mas2016_lab_pattern, r.mas2016_result) == ("indeterminate", "indeterminate")
    assert r.mas2016_ferritin == r.mas2016_fever == r.mas2016_sjia == "unknown"
    assert pd.isna(r.ms_score_value) and r.ms_score_ge_cutoff == "unknown"
    assert r.ms_score_n_missing == 7


@pytest.mark.parametrize(("key", "fever", "result"), [
    (mas_case(plt=100.0, ast=60.0, temp=37.9), "not_met", "not_met"),   # documented afebrile
    (mas_case(plt=100.0, ast=60.0, temp=38.0), "met", "met"),
    (mas_case(plt=100.0, ast=60.0, temp=38.1), "met", "met"),
    (mas_case(plt=100.0, ast=60.0, temp=None), "unknown", "indeterminate"),
])
def test_fever_requirement(results, key, fever, result):
    r = results.loc[key]
    assert (r.mas2016_lab_pattern, r.mas2016_fever, r.mas2016_result) == ("met", fever, result)


@pytest.mark.parametrize(("key", "sjia", "result", "note"), [
    (mas_case(plt=100.0, ast=60.0, sjia=None), "unknown", "indeterminate",
     mas.OUTSIDE_POPULATION_NOTE),
    (mas_case(plt=100.0, ast=60.0, sjia=False), "not_met", "not_met",
     mas.OUTSIDE_POPULATION_NOTE),
    (mas_case(plt=100.0, ast=60.0, sjia=True), "met", "met", ""),
])
def test_sjia_population(results, key, sjia, result, note):
    r = results.loc[key]
    assert (r.mas2016_sjia, r.mas2016_result, r.mas2016_note) == (sjia, result, note)
    assert r.mas2016_lab_pattern == "met"


# MS score: -1.30 (arthritis) - 0.003*100 - 0.004*200 + 0.001*LDH + 0.0001*1000
#   = -2.1 at LDH 200, -2.11 at 190, -2.09 at 210 (computed by hand from §3.2).
MS_BASE = row(cns=False, haem=False, arthritis=True, plt=100.0, fib=200.0, ferritin=1000.0)


@pytest.mark.parametrize(("key", "value", "expected"), [
    (case(**MS_BASE, **row(ldh=190.0)), -2.11, "not_met"),
    (case(**MS_BASE, **row(ldh=200.0)), -2.10, "met"),
    (case(**MS_BASE, **row(ldh=210.0)), -2.09, "met"),
])
def test_ms_score_cutoff_edge(results, key, value, expected):
    r = results.loc[key]
    assert r.ms_score_value == pytest.approx(value, abs=1e-9)
    assert r.ms_score_ge_cutoff == expected


MS_ALL_BINARIES_FLIPPED = case(**{**MS_BASE, **row(cns=True, haem=True, arthritis=False,
                                                   ldh=200.0)})


def test_ms_score_binary_weights(results):
    # -2.1 + 2.44 (CNS) + 1.54 (haemorrhage) + 1.30 (no active arthritis)
    value = results.loc[MS_ALL_BINARIES_FLIPPED].ms_score_value
    assert value == pytest.approx(-2.1 + 2.44 + 1.54 + 1.30)


MS_MISSING_CNS = case(**{**MS_BASE, **row(cns=None, ldh=200.0)})
MS_MISSING_LAB = case(**{**MS_BASE, **row(ldh=None)})


def test_ms_score_missing_binary_gives_range_not_a_value(results):
    r = results.loc[MS_MISSING_CNS]
    assert pd.isna(r.ms_score_value)
    assert r.ms_score_ge_cutoff == "unknown"
    assert r.ms_score_min_possible == pytest.approx(-2.1)
    assert r.ms_score_max_possible == pytest.approx(-2.1 + 2.44)
    assert r.ms_score_missing == "cns_involvement"


def test_ms_score_missing_lab_is_unknown(results):
    r = results.loc[MS_MISSING_LAB]
    assert pd.isna(r.ms_score_value) and pd.isna(r.ms_score_max_possible)
    assert r.ms_score_ge_cutoff == "unknown"
    assert r.ms_score_missing == "ldh"

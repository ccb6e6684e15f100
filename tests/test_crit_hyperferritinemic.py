"""Hyperferritinaemic sepsis, HBD + DIC, MALS and the PRECISE pattern (clinical reference §4):
worked examples of §4.5, every threshold just below / at / just above, unit invariance, and
missing inputs -> unknown, never "no"."""

from __future__ import annotations

import pandas as pd
import pytest

from hyperinflam import vocabulary
from widetable import CaseBook
from hyperinflam.criteria import hscore as hs
from hyperinflam.criteria import hyperferritinemic_sepsis as MODULE

VOCAB = vocabulary.load()


BOOK = CaseBook(MODULE)
CASES, case, wide = BOOK.cases, BOOK.case, BOOK.wide


@pytest.fixture(scope="module")
def results(backend):
    """Every case of this module, in one query per engine (DuckDB, Spark)."""
    return BOOK.evaluate(backend)


hf = MODULE
C = {name: spec.column for name, spec in {
    "ferritin": hf.FERRITIN, "crp": hf.CRP, "bili": hf.BILIRUBIN, "alt": hf.ALT, "ast": hf.AST,
    "plt": hf.PLATELETS, "inr": hf.INR, "infection": hf.INFECTION}.items()}


def row(**values) -> dict:
    return {C[k]: v for k, v in values.items()}


PREFIX = "hyperferritinemic_sepsis_"
# §4.5 worked examples.
PATIENT_A = case(**row(infection=True, ferritin=650.0, bili=0.6, plt=210.0))
PATIENT_B_ROW = row(infection=True, ferritin=5200.0, bili=3.1, alt=260.0, plt=62.0, inr=1.9)
PATIENT_B = case(**PATIENT_B_ROW)
PATIENT_B_OTHER_UNITS = case(**{**PATIENT_B_ROW, **row(
    ferritin=VOCAB.convert("ferritin", 5200 * 2.247, "pmol/L"),
    bili=VOCAB.convert("bilirubin_total", 3.1 * 17.104, "umol/L"),
    alt=VOCAB.convert("alt", 260 / 60, "ukat/L"),
    plt=VOCAB.convert("platelets", 62000, "/uL"),
)})
PATIENT_C = case(**row(infection=True, ferritin=500.0))
NOTHING = case()


def flags(results, key, *names):
    r = results.loc[key]
    return tuple(r[PREFIX + n] for n in names)


def test_module_contract(results):
    new = [c for c in results.columns if c not in wide({"x": {}}).columns]
    assert new and all(c.startswith(PREFIX) for c in new)
    assert all(c == c.lower() for c in results.columns)


def test_patient_a(results):
    assert flags(results, PATIENT_A, "ferritin_gt_500", "result", "ferritin_gt_4420", "hbd",
                 "dic", "hbd_dic") == ("met", "met", "not_met", "not_met", "not_met", "not_met")


def test_patient_b(results):
    assert flags(results, PATIENT_B, "ferritin_gt_500", "result", "ferritin_gt_4420", "hbd",
                 "dic", "hbd_dic", "mals") == ("met",) * 7


def test_patient_b_in_other_units(results):
    a = results.loc[PATIENT_B].filter(like=PREFIX)
    b = results.loc[PATIENT_B_OTHER_UNITS].filter(like=PREFIX)
    pd.testing.assert_series_equal(a, b, check_names=False)


def test_patient_c_ferritin_exactly_500_is_not_hyperferritinaemic(results):
    assert flags(results, PATIENT_C, "ferritin_gt_500", "result") == ("not_met", "not_met")


def test_nothing_measured_is_unknown_never_no(results):
    values = flags(results, NOTHING, "ferritin_gt_500", "infection", "result",
                   "ferritin_gt_4420", "hbd", "dic", "hbd_dic", "hscore_positive", "mals",
                   "precise_ferritin_or_crp")
    assert set(values) == {"unknown"}


@pytest.mark.parametrize(("key", "flag", "expected"), [
    (case(**row(ferritin=v)), "ferritin_gt_500", e)
    for v, e in ((499.0, "not_met"), (500.0, "not_met"), (501.0, "met"))
] + [
    (case(**row(ferritin=v)), "ferritin_gt_4420", e)
    for v, e in ((4419.0, "not_met"), (4420.0, "not_met"), (4421.0, "met"))
] + [
    # HBD: bilirubin >= 2.0 mg/dL with ALT > 80 U/L (2 x ULN 40)
    (case(**row(bili=v, alt=100.0)), "hbd", e)
    for v, e in ((1.9, "not_met"), (2.0, "met"), (2.1, "met"))
] + [
    (case(**row(bili=3.0, alt=v)), "hbd", e)
    for v, e in ((79.0, "unknown"), (80.0, "unknown"), (81.0, "met"))  # AST unknown
] + [
    (case(**row(bili=3.0, alt=50.0, ast=v)), "hbd", e)
    for v, e in ((79.0, "not_met"), (80.0, "not_met"), (81.0, "met"))
] + [
    (case(**row(bili=1.0)), "hbd", "not_met"),          # bilirubin normal decides
    (case(**row(alt=300.0)), "hbd", "unknown"),         # bilirubin not measured
] + [
    # DIC: platelets < 100 and INR > 1.5
    (case(**row(plt=VOCAB.convert("platelets", v, "/uL"), inr=2.0)), "dic", e)
    for v, e in ((99000, "met"), (100000, "not_met"), (101000, "not_met"))
] + [
    (case(**row(plt=50.0, inr=v)), "dic", e)
    for v, e in ((1.4, "not_met"), (1.5, "not_met"), (1.6, "met"))
] + [
] + [
    (case(**row(plt=50.0)), "dic", "unknown"),
    (case(**row(plt=150.0)), "dic", "not_met"),
    # PRECISE: ferritin >= 500 or CRP >= 4 mg/dL (CRP stored in mg/L)
    (case(**row(ferritin=500.0, crp=5.0)), "precise_ferritin_or_crp", "met"),
    (case(**row(ferritin=499.0, crp=VOCAB.convert("crp", 3.99, "mg/dL"))),
     "precise_ferritin_or_crp", "not_met"),
    (case(**row(ferritin=499.0, crp=VOCAB.convert("crp", 4.0, "mg/dL"))),
     "precise_ferritin_or_crp", "met"),
    (case(**row(ferritin=100.0)), "precise_ferritin_or_crp", "unknown"),
    # hyperferritinaemic sepsis needs documented infection: none recorded -> unknown
    (case(**row(ferritin=900.0)), "result", "unknown"),
    (case(**row(ferritin=400.0)), "result", "not_met"),
])
def test_thresholds(results, key, flag, expected):
    assert results.loc[key][PREFIX + flag] == expected


HSCORE_HIGH = {hs.TEMPERATURE.column: 39.6, hs.HEPATOMEGALY.column: True,
               hs.SPLENOMEGALY.column: True, hs.HEMOGLOBIN.column: 8.0, hs.WBC.column: 2.0,
               hs.PLATELETS.column: 50.0, hs.FERRITIN.column: 7000.0}   # 49+38+34+50 = 171
HSCORE_ZERO = {hs.IMMUNOSUPPRESSION.column: False, hs.TEMPERATURE.column: 37.0,
               hs.HEPATOMEGALY.column: False, hs.SPLENOMEGALY.column: False,
               hs.HEMOGLOBIN.column: 12.0, hs.WBC.column: 8.0, hs.PLATELETS.column: 300.0,
               hs.FERRITIN.column: 100.0, hs.TRIGLYCERIDES.column: 100.0,
               hs.FIBRINOGEN.column: 300.0, hs.AST.column: 20.0,
               hs.MARROW_HEMOPHAGOCYTOSIS.column: False}


@pytest.mark.parametrize(("key", "hscore_positive", "mals"), [
    (case(**HSCORE_HIGH, **row(bili=0.5, plt=200.0)), "met", "met"),
    (case(**HSCORE_ZERO, **row(bili=0.5, plt=200.0)), "not_met", "not_met"),
    (case(**HSCORE_ZERO, **PATIENT_B_ROW), "not_met", "met"),         # HBD + DIC alone
    (case(**HSCORE_ZERO, **row(bili=0.5)), "not_met", "not_met"),     # HBD no -> HBD+DIC no
    (case(**row(bili=0.5, plt=200.0)), "unknown", "unknown"),         # HScore items unknown
])
def test_mals(results, key, hscore_positive, mals):
    assert flags(results, key, "hscore_positive", "mals") == (hscore_positive, mals)

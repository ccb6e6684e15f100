"""The vocabulary's factors against clinical reference 11.1, computed here by hand."""

import math

import pytest

from hyperinflam.errors import VocabularyError
from hyperinflam.vocabulary import load, normalize_unit


@pytest.fixture(scope="module")
def vocab():
    return load()


@pytest.mark.parametrize(
    "variable, value, unit, expected",
    [
        ("crp", 20.6, "mg/dL", 206.0),  # x 10
        ("crp", 206, "ug/mL", 206.0),
        ("ferritin", 8867, "ug/L", 8867.0),
        ("ferritin", 100, "ug/dL", 1000.0),
        ("ferritin", 2247.0, "pmol/L", 1000.0),  # / 2.247
        ("fibrinogen", 1.58, "g/L", 158.0),  # x 100
        ("fibrinogen", 8.0, "umol/L", 272.0),  # x 34.0
        ("triglycerides", 3.0, "mmol/L", 265.71),  # x 88.57
        ("platelets", 85000, "/uL", 85.0),  # / 1000
        ("platelets", 85, "10^9/L", 85.0),
        ("platelets", 85, "K/µL", 85.0),
        ("anc", 1500, "cells/uL", 1.5),
        ("alc", 1.5, "x10^9/L", 1.5),
        ("hemoglobin", 90, "g/L", 9.0),
        ("hemoglobin", 6.206, "mmol/L", 10.0),
        ("ast", 2, "ukat/L", 120.0),
        ("bilirubin_total", 171.04, "umol/L", 10.0),
        ("creatinine", 88.4, "umol/L", 1.0),
        ("lactate", 90.08, "mg/dL", 10.0),
        ("glucose", 5.0, "mmol/L", 90.08),
        ("bun", 10, "mmol/L", 28.014),
        ("d_dimer", 500, "ng/mL FEU", 0.5),
        ("temperature", 101.3, "[degF]", 38.5),  # (F - 32) x 5/9
        ("temperature", 98.6, "°F", 37.0),
        ("pao2", 10, "kPa", 75.0062),
        ("fio2", 40, "%", 0.40),
        ("spo2", 0.95, "1", 95.0),
        ("weight", 22, "lb", 9.97903214),
        ("weight", 3500, "g", 3.5),
    ],
)
def test_conversion_factors_match_clinical_reference(vocab, variable, value, unit, expected):
    assert vocab.convert(variable, value, unit) == pytest.approx(expected, rel=1e-9)


def test_every_variable_accepts_its_canonical_unit_unchanged(vocab):
    for name, var in vocab.variables.items():
        entry = vocab.units.get((name, normalize_unit(var.canonical_unit)))
        assert entry is not None, f"{name}: canonical unit {var.canonical_unit} not in units.csv"
        assert entry["factor"] == 1.0 and entry["offset"] == 0.0


@pytest.mark.parametrize("variable, unit", [("crp", "nmol/L"), ("d_dimer", "ng/mL DDU"),
                                            ("scd25", "pg/mL")])
def test_ambiguous_units_are_never_converted(vocab, variable, unit):
    assert vocab.units[(variable, normalize_unit(unit))]["status"] == "needs_configuration"
    with pytest.raises(VocabularyError):
        vocab.convert(variable, 10, unit)


def test_fio2_ambiguous_band_is_data(vocab):
    fio2 = vocab.variables["fio2"]
    assert (fio2.ambiguous_gt, fio2.ambiguous_lt) == (1.0, 21.0)
    assert (fio2.accept_min, fio2.accept_max) == (0.21, 1.0)


def test_unit_folding():
    assert normalize_unit(" K/µL ") == "k/ul"
    assert normalize_unit("x10³/μL") == "x103/ul"
    assert normalize_unit("mg/dL") == normalize_unit("MG/DL")


def test_site_units_file_adds_and_overrides(tmp_path):
    site = tmp_path / "site_units.csv"
    site.write_text(
        "variable,unit,factor,offset,status,reference\n"
        "d_dimer,ng/mL DDU,2/1000,0,ok,local assay: DDU x 2 = FEU\n"
        "crp,mg/100mL,10,,ok,local spelling\n"
    )
    vocab = load(site)
    assert vocab.convert("d_dimer", 500, "ng/mL DDU") == pytest.approx(1.0)
    assert vocab.convert("crp", 2.5, "mg/100mL") == pytest.approx(25.0)


def test_site_units_file_errors_name_the_line(tmp_path):
    site = tmp_path / "site_units.csv"
    site.write_text("variable,unit,factor\ncrp,mg/L,1\nferitin,ng/mL,1\n")
    with pytest.raises(VocabularyError, match=r"line 3: unknown variable 'feritin'"):
        load(site)
    site.write_text("variable,unit\ncrp,mg/L\n")
    with pytest.raises(VocabularyError, match="missing column"):
        load(site)


def test_ranges_from_clinical_reference_11_2(vocab):
    v = vocab.variables
    assert (v["crp"].accept_min, v["crp"].accept_max, v["crp"].extreme_above) == (0, 1000, 500)
    assert (v["ferritin"].accept_max, v["ferritin"].extreme_above) == (1_000_000, 100_000)
    assert (v["temperature"].accept_min, v["temperature"].accept_max) == (25, 45)
    assert (v["gcs_total"].accept_min, v["gcs_total"].accept_max) == (3, 15)
    assert math.isclose(v["weight"].accept_min, 0.3)


def test_drug_aliases(vocab):
    names = vocab.drug_names_frame.set_index("name_key")
    assert names.loc["kineret", "drug"] == "anakinra"
    assert names.loc["noradrenaline", "drug"] == "norepinephrine"
    assert set(vocab.drugs_in_class("vasoactive")) == {
        "dobutamine", "dopamine", "epinephrine", "milrinone", "norepinephrine", "vasopressin"}

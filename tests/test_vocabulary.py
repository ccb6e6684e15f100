"""The vocabulary's factors against clinical reference 11.1, computed here by hand."""

import math
from fractions import Fraction

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
        assert entry.factor == 1 and entry.offset == 0


@pytest.mark.parametrize("variable, unit", [("crp", "nmol/L"), ("d_dimer", "ng/mL DDU"),
                                            ("scd25", "pg/mL")])
def test_ambiguous_units_are_never_converted(vocab, variable, unit):
    assert vocab.units[(variable, normalize_unit(unit))].status == "needs_configuration"
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


# -- one dictionary: exact factors, one code layout, one loader -------------------------------------
def test_factors_are_kept_exactly_as_written(vocab):
    """units.csv writes factors as clinical reference 11.1 prints them; the loader keeps them as
    exact fractions (88.57 = 8857/100, 1/2.247 = 1000/2247, (F - 32) x 5/9)."""
    assert vocab.factor("fio2", "%") == Fraction(1, 100)
    assert vocab.factor("triglycerides", "mmol/L") == Fraction(8857, 100)
    assert vocab.factor("ferritin", "pmol/L") == Fraction(1000, 2247)
    assert vocab.factor("pao2", "kPa") == Fraction(750062, 100000)
    assert vocab.factor("hemoglobin", "g/L") == Fraction(1, 10)
    fahrenheit = vocab.unit("temperature", "[degF]")
    assert (fahrenheit.factor, fahrenheit.offset) == (Fraction(5, 9), Fraction(-160, 9))


@pytest.mark.parametrize("variable, text, unit, exact", [
    ("fio2", "35", "%", Fraction(35, 100)),           # not 0.35000000000000003
    ("platelets", "110000", "/uL", Fraction(110)),     # not 110.00000000000001
    ("hemoglobin", "92", "g/L", Fraction(92, 10)),     # not 9.200000000000001
    ("pao2", "13.3", "kPa", Fraction(133, 10) * Fraction(750062, 100000)),
    ("temperature", "101.3", "[degF]", Fraction(385, 10)),
])
def test_convert_gives_the_double_nearest_the_exact_result(vocab, variable, text, unit, exact):
    assert vocab.convert(variable, text, unit) == float(exact)


def test_codes_have_one_layout_and_every_target_exists(vocab):
    import csv
    from importlib import resources

    from hyperinflam.vocabulary import CODE_COLUMNS, CODE_KINDS

    with resources.files("hyperinflam.vocabulary").joinpath("codes.csv").open() as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == CODE_COLUMNS
        rows = list(reader)
    assert len(rows) == len(vocab.codes)
    keys = [(r["kind"], r["target"], r["system"], r["code"], r["concept_id"]) for r in rows]
    assert len(keys) == len(set(keys)), "a code row is repeated"
    assert {c.kind for c in vocab.codes} <= set(CODE_KINDS)
    # one row serves FHIR and OMOP: ferritin's LOINC code carries its OMOP concept id
    ferritin = [c for c in vocab.codes_of("measurement", target="ferritin") if c.code == "2276-4"]
    assert [(c.system, c.concept_id) for c in ferritin] == [("LOINC", 3001122)]
    assert vocab.drugs["anakinra"]["rxnorm_ingredient"] == "72435"
    assert vocab.drugs["anakinra"]["omop_ingredient_concept_id"] == "1114375"
    assert [c.code for c in vocab.concept_codes("splenomegaly")] == ["16294009", "R16.1", "R16.2"]


def test_site_codes_replace_and_add(tmp_path):
    site = tmp_path / "codes.csv"
    site.write_text("kind,target,system,code,concept_id,unit_when_missing,display,status,reference\n"
                    "measurement,glucose,loinc,15074-8,,,,,site lab\n"
                    "measurement,fio2,meds,LAB//223835,,%,,,site: percent\n"
                    "measurement,alt,LOINC,1920-8,,,,,site: this code is ALT here\n")
    vocab = load(site_codes=[site])
    assert vocab.codes[0].site and vocab.codes[0].system == "LOINC"
    mapped = {(c.system, c.code): c.target for c in vocab.codes_of("measurement")}
    assert mapped[("LOINC", "15074-8")] == "glucose"
    assert mapped[("LOINC", "1920-8")] == "alt"  # replaced the packaged AST row
    fio2 = vocab.first_code("measurement", "fio2", "MEDS")
    assert (fio2.code, fio2.unit_when_missing) == ("LAB//223835", "%")
    # three site rows: one added, two replacing packaged rows (AST's 1920-8, MEDS LAB//223835)
    assert len(vocab.codes) == len(load().codes) + 1


def test_site_codes_in_the_former_layouts_are_read(tmp_path):
    omop = tmp_path / "omop.csv"
    omop.write_text("kind,target,vocabulary_id,concept_code,concept_id,reference\n"
                    "inpatient_visit,er,Visit,ER,9203,site\n"
                    "ventilation_procedure,invasive_ventilation,SNOMED,243155002,4074666,site\n")
    meds = tmp_path / "meds.csv"
    meds.write_text("code,variable,drug,unit_when_unk,reference\n"
                    "LAB//223835,fio2,,%,site\nMEDICATION//Kineret,,Anakinra,,site\n")
    fhir = tmp_path / "fhir.csv"
    fhir.write_text("system,code,kind,target,display,status,reference\n"
                    "snomed,271649006,measurement,sbp,Systolic blood pressure,,site\n")
    vocab = load(site_codes=[omop, meds, fhir])
    site = [(c.kind, c.target, c.system, c.code, c.concept_id, c.unit_when_missing)
            for c in vocab.codes if c.site]
    # a later file's rows first (a later --codes file takes precedence), each file in its order
    assert site == [
        ("measurement", "sbp", "SNOMED", "271649006", None, None),
        ("measurement", "fio2", "MEDS", "LAB//223835", None, "%"),
        ("drug", "anakinra", "MEDS", "MEDICATION//Kineret", None, None),
        ("inpatient_visit", "er", "Visit", "ER", 9203, None),
        ("support", "invasive_ventilation", "SNOMED", "243155002", 4074666, None),
    ]


@pytest.mark.parametrize("text, message", [
    ("kind,target,system,code\nmeasurement,feritin,LOINC,2276-4\n",
     r"codes.csv line 2: variable 'feritin' is not in vocabulary/variables.csv"),
    ("kind,target,system,code\nlab,ferritin,LOINC,2276-4\n", r"line 2: kind 'lab' is not one of"),
    ("kind,target,system,code,concept_id\nmeasurement,ferritin,LOINC,2276-4,x1\n",
     r"line 2, column concept_id: 'x1' is not an integer"),
    ("kind,target,system,code\nmeasurement,ferritin,,2276-4\n", r"line 2: code '2276-4' has no system"),
    ("system,code\nloinc,1\n", r"line 1: missing column\(s\) kind, target"),
])
def test_site_codes_errors_name_the_line_and_the_fix(tmp_path, text, message):
    site = tmp_path / "codes.csv"
    site.write_text(text)
    with pytest.raises(VocabularyError, match=message):
        load(site_codes=[site])


def test_only_the_vocabulary_package_reads_its_files():
    """One loader: no other module opens a file of the dictionary."""
    from pathlib import Path

    import hyperinflam
    from hyperinflam.vocabulary import FILES

    root = Path(hyperinflam.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.parent.name == "vocabulary":
            continue
        text = path.read_text(encoding="utf-8")
        if 'files("hyperinflam.vocabulary")' in text or any(
                f'"{name}"' in text or f"'{name}'" in text for name in FILES):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []

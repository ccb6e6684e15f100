"""Every real sample end to end, as a new user runs it (issue 12, first "Done when" item).

Each public sample of tests/data (Eunomia OMOP, the FHIR R4 specification examples, Synthea
patient Bundles and bulk NDJSON, the MIMIC-IV demo in MEDS; origin and licence in each SOURCE.md)
goes through the installed ``hyperinflam`` command in real processes: ``load``, ``screen``, the
founding study (``rajasekaran2014``, index drug anakinra) and a study with another index drug
(dexamethasone, ages 0-120 years: the MIMIC-IV demo is adult-only, loaded with ``--all-icu
--any-age``). Every command exits 0 without a traceback, both studies write a report, and every
figure that reads a domain the sample does not record says "not recorded at this site".

Expected values never come from hyperinflam: counts are read from the raw sample files with
pyarrow, pandas or the json module (persons, ICU stays, emergency encounters, dexamethasone
patients), or from the
canonical tables with plain SQL (the stays the flow starts from); the domains each sample lacks
are stated per sample below with the reason found in its raw files.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"
HYPERINFLAM = str(Path(sys.executable).with_name("hyperinflam"))
MEDS_EVENTS = DATA / "mimic_iv_demo_meds" / "mimic_iv_demo_meds_events.parquet"

#: A study whose index drug is not anakinra (docs/study-definition.md; every key given).
DEXAMETHASONE_STUDY = """
[study]
id = "dexamethasone_any_age"
title = "Dexamethasone in intensive care, any age"
reference = "tests/test_real_samples.py"
description = "Inflammatory markers at the first dexamethasone dose and 7 days later."

[cohort]
age_min_years = 0
age_max_years = 120
index_drug = "dexamethasone"
first_qualifying_stay_only = true

[windows]
baseline_from_hours = -24
baseline_to_hours = 12
day7_target_hours = 168
day7_tolerance_hours = 24
trajectory_from_days = -2
trajectory_to_days = 10

[markers]
variables = ["crp", "ferritin", "fibrinogen", "anc", "alc"]

[cotherapies]
classes = ["corticosteroid", "ivig"]
window_from_hours = -24
window_to_hours = 168
any_time_in_stay = true

[outcomes]
infections = true
deaths = true
followup_days = 28

[analysis]
tests = ["paired_t", "wilcoxon"]
alternative = "two-sided"
wilcoxon_exact_max_n = 25
wilcoxon_zero_method = "wilcox"
wilcoxon_correction = false
sem_ddof = 1
headline_change = "pct_change_of_means"
"""

#: The results rows (docs/results-format.md: section, variable) that read each domain.
DOMAIN_ROWS = {
    "conditions": {("baseline", "health_status")},
    "invasive_ventilation": {("baseline", "invasive_ventilation")},
    "vasoactive_infusion": {("baseline", "vasoactive_infusion")},
    "drugs": {("cotherapy", "corticosteroid"), ("cotherapy", "ivig")},
    "infection": {("safety", "infection")},
    "death": {("safety", "death"), ("outcome", "picu_outcome"), ("outcome", "alive_at_followup")},
}


@dataclass
class Sample:
    name: str
    load: list[str]
    #: domains the sample does not record (the reason, from its raw files, beside each)
    absent: set[str]
    stays: int | None = None          # PICU stays expected, counted from the raw files
    persons: int | None = None
    extra: dict = field(default_factory=dict)


def _eunomia_er_codes(folder: Path) -> Path:
    """A site codes file: Eunomia's children have emergency-room visits only (SOURCE.md), which a
    site may declare PICU-like inpatient stays for the fallback rule (as tests/test_load_omop)."""
    path = folder / "site_codes.csv"
    path.write_text("kind,target,system,code,concept_id,unit_when_missing,display,status,reference\n"
                    "inpatient_visit,er,Visit,ER,9203,,,,test site: ER visits as fallback stays\n")
    return path


def _eunomia_cultures() -> int:
    """Eunomia's cultures (tests for infection ordered, clinical reference §5.1, §12.43): the
    measurement rows of concept 4024958, SNOMED CT 117015009 Throat culture in its concept.csv,
    counted with DuckDB over the extract's CSV (6)."""
    raw = duckdb.connect()
    try:
        return raw.execute(f"SELECT count(*) FROM read_csv('{DATA}/eunomia_synthea27nj/csv/"
                           f"measurement.csv') WHERE measurement_concept_id = 4024958"
                           ).fetchone()[0]
    finally:
        raw.close()


def _completed_years(birth: pd.Series, at: pd.Series) -> pd.Series:
    years = at.dt.year - birth.dt.year
    before_birthday = (at.dt.month * 100 + at.dt.day) < (birth.dt.month * 100 + birth.dt.day)
    return years - before_birthday.astype(int)


def _eunomia_expected_stays() -> int:
    """Inpatient (9201, 262) and, by the site file, ER (9203) visits of persons aged 0-21
    completed years at the visit start (the age rule of clinical reference §11.2)."""
    visits = pq.read_table(DATA / "eunomia_synthea27nj" / "omop" / "visit_occurrence.parquet"
                           ).to_pandas()
    person = pq.read_table(DATA / "eunomia_synthea27nj" / "omop" / "person.parquet").to_pandas()
    v = visits.merge(person[["person_id", "birth_datetime"]], on="person_id")
    age = _completed_years(pd.to_datetime(v["birth_datetime"]),
                           pd.to_datetime(v["visit_start_datetime"]))
    return int((v["visit_concept_id"].isin([9201, 262, 9203]) & (age >= 0) & (age <= 21)).sum())


def _meds_frame() -> pd.DataFrame:
    return pq.read_table(MEDS_EVENTS, columns=["subject_id", "time", "code"]).to_pandas()


def _meds_dexamethasone_patients() -> int:
    """Subjects with a dexamethasone dose given (status Administered, Delayed Administered or
    Administered in Other Location: docs/sources-meds.md) inside one of their ICU stays (each
    ICU_ADMISSION paired with the next ICU_DISCHARGE), counted with pandas from the raw events."""
    ev = _meds_frame()
    parts = ev["code"].str.split("//")
    icu = ev[parts.str[0].isin(["ICU_ADMISSION", "ICU_DISCHARGE"])].copy()
    icu["is_admission"] = icu["code"].str.startswith("ICU_ADMISSION")
    icu = icu.sort_values(["subject_id", "time", "is_admission"])
    stays = []
    for subject, group in icu.groupby("subject_id"):  # ten subjects: a test's own count
        rows = list(group.itertuples())
        for a, b in zip(rows, rows[1:]):
            if a.is_admission and not b.is_admission:
                stays.append((subject, a.time, b.time))
    given = ("administered", "delayed administered", "administered in other location")
    dex = ev[(parts.str[0] == "MEDICATION") & (parts.str[1].str.lower() == "dexamethasone")
             & (parts.str[2].str.lower().isin(given))]
    subjects = {s for s, start, end in stays
                if ((dex["subject_id"] == s) & (dex["time"] >= start) & (dex["time"] <= end)).any()}
    return len(subjects)


def _fhir_encounters_of_class(code: str, folder: Path) -> int:
    """Encounter resources whose class code is ``code``, counted with the json module in the
    sample's Bundles (.json) and bulk NDJSON lines (.ndjson)."""
    resources = []
    for path in sorted(folder.rglob("*.json")):
        bundle = json.loads(path.read_text())
        resources += [e.get("resource", {}) for e in bundle.get("entry", [])]
    for path in sorted(folder.rglob("*.ndjson")):
        resources += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sum(r.get("resourceType") == "Encounter" and r.get("class", {}).get("code") == code
               for r in resources)


def _samples(tmp: Path) -> dict[str, Sample]:
    meds = _meds_frame()
    fhir_spec = DATA / "fhir_r4_spec_examples"
    return {
        # Eunomia: conditions, drugs and deaths present in the raw tables; no procedure or device
        # row is a ventilation or vasoactive concept; no drug_exposure row is a vocabulary drug
        # (all 80 are outside drugs.csv); infections come from its SNOMED infection diagnoses
        # (viral sinusitis 444814009, acute bronchitis 10509002, ...: sources/infections.py);
        # its procedures record supplemental oxygen, so respiratory support is recorded (one
        # record, sources/domains.py) and invasive ventilation is "no", not "not recorded".
        "eunomia_omop": Sample(
            "eunomia_omop", ["omop", str(DATA / "eunomia_synthea27nj" / "omop"),
                             "--codes", str(_eunomia_er_codes(tmp))],
            absent={"vasoactive_infusion", "drugs"},
            stays=_eunomia_expected_stays(),
            persons=pq.read_metadata(DATA / "eunomia_synthea27nj" / "omop" / "person.parquet"
                                     ).num_rows,
            extra={"infection_tests": _eunomia_cultures()}),
        # FHIR specification examples: no Encounter is an ICU encounter, so no stay; the
        # examples have no ventilation or vasoactive records; infections from the Conditions
        # coded bacterial sepsis 10001005 and bacterial infectious disease 87628006.
        "fhir_spec": Sample(
            "fhir_spec", ["fhir", str(fhir_spec)],
            absent={"invasive_ventilation", "vasoactive_infusion", "drugs"},
            stays=0),
        # Synthea Bundles: no deceased patient, no ICU encounter; a site that counts emergency
        # encounters as stays (--picu-class EMER, as the Eunomia ER codes row) gets one;
        # infections from SNOMED infection diagnoses (acute viral pharyngitis 195662009, ...);
        # drugs are recorded: one amoxicillin (an antimicrobial of drugs.csv) is a drug row.
        "synthea_bundles": Sample(
            "synthea_bundles", ["fhir", str(DATA / "synthea_r4_bundles_smart" / "bundles"),
                                "--picu-class", "EMER"],
            absent={"invasive_ventilation", "vasoactive_infusion", "death"},
            stays=_fhir_encounters_of_class("EMER", DATA / "synthea_r4_bundles_smart")),
        # Synthea bulk NDJSON: no Observation, Procedure or MedicationAdministration file;
        # infections from SNOMED infection diagnoses (Condition.ndjson).
        "synthea_bulk": Sample(
            "synthea_bulk", ["fhir", str(DATA / "synthea_bulk_ndjson_smart10" / "ndjson"),
                             "--picu-class", "EMER"],
            absent={"invasive_ventilation", "vasoactive_infusion", "drugs"},
            stays=_fhir_encounters_of_class("EMER", DATA / "synthea_bulk_ndjson_smart10")),
        # MIMIC-IV demo (MEDS): diagnoses (DIAGNOSIS//ICD//...), invasive ventilation
        # (PROCEDURE//START//225792), vasoactive infusions (INFUSION_START//221906 ...), drugs
        # and deaths are recorded; infections from the ICD-10-CM and ICD-9-CM infection diagnoses.
        "mimic_meds": Sample(
            "mimic_meds", ["meds", str(MEDS_EVENTS), "--all-icu", "--any-age"],
            absent=set(),
            stays=int(meds["code"].str.startswith("ICU_ADMISSION//").sum()),
            persons=int(meds.loc[meds["code"].str.startswith("ICU_ADMISSION//"),
                                 "subject_id"].nunique()),
            extra={"dexamethasone_patients": _meds_dexamethasone_patients()}),
    }


def run(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([HYPERINFLAM, *args], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stdout + done.stderr, f"{' '.join(args)}\n{done.stderr}"
    return done


@dataclass
class Outcome:
    sample: Sample
    db: Path
    load: str
    screen: str
    studies: dict[str, Path]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return _samples(tmp_path_factory.mktemp("codes"))


@pytest.fixture(scope="module", params=["eunomia_omop", "fhir_spec", "synthea_bundles",
                                        "synthea_bulk", "mimic_meds"])
def outcome(request, samples, tmp_path_factory) -> Outcome:
    sample = samples[request.param]
    folder = tmp_path_factory.mktemp(sample.name)
    db = folder / "site.duckdb"
    study_file = folder / "dexamethasone.toml"
    study_file.write_text(DEXAMETHASONE_STUDY)
    load = run("load", *sample.load, "--db", str(db), "--quiet").stdout
    screen = run("screen", "--db", str(db), "-o", str(folder / "screen.parquet")).stdout
    studies = {}
    for name, study in (("founding", "rajasekaran2014"), ("dexamethasone", str(study_file))):
        out = folder / name
        run("study", "run", study, "--db", str(db), "-o", str(out), "--quiet")
        studies[name] = out
    return Outcome(sample, db, load, screen, studies)


def _sql(db: Path, query: str):
    raw = duckdb.connect(str(db), read_only=True)
    try:
        return raw.execute(query).fetchall()
    finally:
        raw.close()


def _results(folder: Path) -> list[dict]:
    with open(folder / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_load_reconciles_and_counts_the_raw_sample(outcome):
    s = outcome.sample
    rows = _sql(outcome.db, "SELECT target_table, rows_read, rows_loaded, rows_already_present, "
                            "rows_quarantined FROM load_log")
    assert rows, outcome.load
    for table, read, loaded, present, quarantined in rows:
        assert read == loaded + present + quarantined, table
    quarantined = _sql(outcome.db, "SELECT count(*) FROM quarantine")[0][0]
    assert quarantined == sum(r[4] for r in rows)
    if s.persons is not None:
        assert _sql(outcome.db, "SELECT count(*) FROM person")[0][0] == s.persons
    assert _sql(outcome.db, "SELECT count(*) FROM stay")[0][0] == s.stays
    if "infection_tests" in s.extra:
        assert s.extra["infection_tests"] == 6  # Eunomia (the _eunomia_cultures query)
        assert _sql(outcome.db, "SELECT count(*) FROM event WHERE event_type = "
                                "'infection_test'")[0][0] == s.extra["infection_tests"]


def test_screen_completes(outcome):
    stays = outcome.sample.stays
    if stays:
        assert re.search(rf"evaluations? of {stays} stays?\b", outcome.screen.replace(",", ""))
    else:
        assert "holds no PICU stays" in " ".join(outcome.screen.split())


@pytest.mark.parametrize("study", ["founding", "dexamethasone"])
def test_study_completes_with_a_report(outcome, study):
    folder = outcome.studies[study]
    html = (folder / "report.html").read_text()
    assert "<html" in html.lower() and "Traceback" not in html
    json.loads((folder / "results.json").read_text())
    results = _results(folder)
    flow = {r["variable"]: r["value"] for r in results
            if r["section"] == "flow" and r["stat_name"] == "count" and r["group"] == "cohort"}
    stays = _sql(outcome.db, "SELECT count(*) FROM stay")[0][0]
    assert float(flow["stays"]) == stays
    # fewer than 2 pairs for a marker (every marker with no patient; MIMIC's fibrinogen, n = 1):
    # no p-value, and the error says why
    pairs = {r["variable"]: float(r["value"] or 0) for r in results if r["section"] == "marker"
             and r["timepoint"] == "baseline" and r["stat_name"] == "n"}
    assert pairs
    for r in results:
        if r["section"] == "marker" and r["stat_name"] in ("p_paired_t", "p_wilcoxon") \
                and pairs.get(r["variable"], 0) < 2:
            assert r["value"] == "" and r["error"], r
    if study == "founding":  # no sample records anakinra (each SOURCE.md)
        assert float(flow["cohort"]) == 0
    elif "dexamethasone_patients" in outcome.sample.extra:
        assert float(flow["cohort"]) == outcome.sample.extra["dexamethasone_patients"] > 0


def test_the_raw_sample_as_db_is_a_clear_error(outcome):
    """A user who gives the sample itself as --db (a folder or a file that is not a database)
    is told so in one message (exit status 2), never a traceback or a silent '0 stays'."""
    path = outcome.sample.load[1]
    done = subprocess.run([HYPERINFLAM, "study", "run", "rajasekaran2014", "--db", path, "-o",
                           str(outcome.db.parent / "wrong")], capture_output=True, text=True,
                          timeout=300)
    text = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, text
    assert "Traceback" not in text
    assert ("is a folder, not a database" if Path(path).is_dir() else "is not a DuckDB database") \
        in text
    assert not (outcome.db.parent / "wrong").exists()


@pytest.mark.parametrize("study", ["founding", "dexamethasone"])
def test_absent_domains_are_not_recorded(outcome, study):
    """Every results row that reads a domain the sample lacks says "not recorded at this site";
    no row of a domain it records does. The canonical tables hold no row of an absent domain."""
    s = outcome.sample
    vasoactive = []
    drugs_csv = ROOT.parent / "src" / "hyperinflam" / "vocabulary" / "drugs.csv"
    with open(drugs_csv, newline="") as handle:
        vasoactive = [r["drug"] for r in csv.DictReader(handle) if r["drug_class"] == "vasoactive"]
    in_list = ", ".join(f"'{d}'" for d in vasoactive)
    rows_of = {
        "conditions": "SELECT count(*) FROM condition",
        "invasive_ventilation": "SELECT count(*) FROM organ_support "
                                "WHERE support = 'invasive_ventilation'",
        "vasoactive_infusion": f"SELECT count(*) FROM organ_support WHERE support IN ({in_list})",
        "drugs": "SELECT count(*) FROM drug_administration",
        "infection": "SELECT count(*) FROM event WHERE event_type = 'infection'",
        "death": "SELECT count(*) FROM event WHERE event_type = 'death'",
    }
    for domain in s.absent:
        assert _sql(outcome.db, rows_of[domain])[0][0] == 0, domain
    results = _results(outcome.studies[study])
    said = {(r["section"], r["variable"]) for r in results
            if "not recorded at this site" in (r["method"] + r["warning"] + r["error"])}
    expected = set().union(*(DOMAIN_ROWS[d] for d in s.absent))
    recorded = set().union(*(rows for d, rows in DOMAIN_ROWS.items() if d not in s.absent))
    assert expected <= said, sorted(expected - said)
    assert not (said & recorded), sorted(said & recorded)
    html = (outcome.studies[study] / "report.html").read_text()
    if s.absent:
        assert "not recorded" in html

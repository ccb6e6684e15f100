#!/usr/bin/env python3
"""Rebuild the real-data test fixtures in tests/data from the full public samples.

    python scripts/extract_test_data.py DATA_DIR [--out tests/data]

DATA_DIR is a folder holding the full samples, laid out as described in tests/data/README.md
(``eunomia_synthea27nj/``, ``fhir_r4_spec_examples/``, ``synthea_r4_bundles_smart/``,
``synthea_bulk_ndjson_smart10/``, ``mimic_iv_demo_meds/``, ``omop_cdm54_spec/``; each one is the
upstream release named in the matching tests/data/*/SOURCE.md, with file names lower-cased).
The output is deterministic: run it into an empty folder and ``diff -r`` against tests/data to
check the committed fixtures (Parquet files are byte-identical with the same pyarrow version).

What is kept (and why) is stated next to each selection below and in each SOURCE.md. Nothing is
changed inside a kept row: CSV and NDJSON lines are copied byte for byte, Parquet rows keep
their columns and types (DECIMAL, float32, timestamp), JSON files are copied byte for byte,
except the Synthea patient Bundles, which lose their billing entries (see below).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# ---------------------------------------------------------------------------------------------
# Eunomia Synthea27Nj (OMOP CDM 5.4): all 5 children (2, 3, 6, 15, 27), plus three persons
# chosen for what the loaders must handle: 11 (the only ferritin rows, AST/ALT with
# unit_concept_id 0, inpatient visits, a death), 12 (born 1996: an inpatient visit, ER visits at
# 15.4 and 20.4 years, on both sides of the 18th birthday and inside 0-21 years), 23 (born 1998,
# died; an ER visit in infancy). (device_exposure's one row, an implantable defibrillator of
# person 16, is left out with that person: the reader reads ventilation devices only.)
EUNOMIA_PERSONS = (2, 3, 6, 15, 27, 11, 12, 23)

# FHIR R4 examples: every Bundle and every resource of the types the reader maps, except
# Medication, MedicationRequest and Observation, of which a selection is kept (the quirks listed
# in SOURCE.md); MedicationStatement and Specimen: one each (types the reader ignores).
FHIR_RESOURCE_PREFIXES = ("patient-", "encounter-", "condition-", "procedure-",
                          "medicationadministration-")
FHIR_RESOURCES = (
    # med0316 is the one Medication referenced (from medrx002); the others are contained
    "medication-med0301.json", "medication-med0316.json", "medication-medicationexample1.json",
    "medicationrequest-medrx002.json", "medicationrequest-medrx0301.json",
    "medicationrequest-medrx0302.json", "medicationrequest-medrx0303.json",
    "medicationrequest-medrx0310.json", "medicationrequest-medrx0320.json",
    "medicationstatement-example005.json", "specimen-sst.json",
    # Observations: CBC/labs with UCUM and SNOMED units, vitals, components only, no value,
    # cancelled / entered-in-error, date-only and period times, text / coded / boolean values.
    "observation-f001.json", "observation-f002.json", "observation-f003.json",
    "observation-f004.json", "observation-f005.json", "observation-f202.json",
    "observation-f203.json", "observation-f204.json", "observation-f205.json",
    "observation-f206.json", "observation-blood-pressure.json",
    "observation-blood-pressure-cancel.json", "observation-blood-pressure-dar.json",
    "observation-body-temperature.json", "observation-heart-rate.json",
    "observation-respiratory-rate.json", "observation-sato2.json", "observation-mbp.json",
    "observation-vitals-panel.json", "observation-unsat.json", "observation-glasgow.json",
    "observation-1minute-apgar-score.json", "observation-decimal.json",
    "observation-bmi.json", "observation-body-height.json", "observation-example.json",
    "observation-date-lastmp.json", "observation-eye-color.json", "observation-656.json",
    "observation-bgpanel.json", "observation-map-sitting.json", "observation-rhstatus.json",
    "observation-secondsmoke.json", "observation-vomiting.json", "observation-abdo-tender.json",
)

# Synthea patient Bundles: the youngest child (born 2019), an adolescent (born 2004) with an oral
# temperature, and the only adult (the only Bundle with AST and triglycerides).
SYNTHEA_BUNDLES = ("dana_feest_fc11f507-fd6d-4512-a77b-c997a24c5c10.json",
                   "erick_auer_84b1062d-2455-4238-ad4f-36a1cc6baaca.json",
                   "tom_goodwin_e20de9eb-6f2d-4871-a43f-bbede53293ed.json")
#: Billing resources (about half of every Bundle's bytes), which no reader maps.
SYNTHEA_DROPPED_TYPES = ("Claim", "ExplanationOfBenefit")

# Synthea bulk NDJSON: the 3 children, one adult who died (deceasedDateTime) and one adult with
# an inpatient (IMP) encounter.
BULK_PATIENTS = ("63ee2253-bdd5-da55-2ad2-b4984d0ad700",   # born 2011-03-23
                 "bb6a9034-2f23-2508-d29d-35efee156dc9",   # born 2007-07-11
                 "fb7c882a-f897-e7c5-67e0-825e7fd55d15",   # born 2002-07-30
                 "3af3708d-41f1-cd80-f3dd-ec5ac76072bf",   # died 1971-10-01
                 "a4a401d1-a46a-eb4a-8a38-760d5d79d6ec")   # one IMP encounter
BULK_BY_SUBJECT = ("encounter.000.ndjson", "condition.000.ndjson",
                   "medicationrequest.000.ndjson")
BULK_WHOLE = ("location.000.ndjson", "organization.000.ndjson", "log.ndjson")

# MIMIC-IV demo (MEDS): every event of these subjects.
MIMIC_SUBJECTS = (
    10000032,  # first subject of the file: ferritin, fibrinogen, death, one ICU stay
    10002930,  # ferritin, ANC/ALC, death, two ICU stays
    10005348,  # temperature in degrees Celsius (223762), FiO2 223835 (UNK)
    10008287,  # dexamethasone (Administered, Administered in Other Location)
    10010471,  # norepinephrine / vasopressin administrations and infusions, death
    10014354,  # the longest ferritin series (13), fibrinogen, ANC/ALC (134), the only D-dimer
               # (unit 'ng/mL FEU')
    10015860,  # CRP (17), ferritin, ANC/ALC, a lab row without value
    10026354,  # dexamethasone ophthalmic (not systemic), a 'Not Given' status
    10035631,  # all five founding markers, FiO2, temperature degF, Hb 15.1, rows without value,
               # dexamethasone, vasoactives, invasive ventilation, death
    10038992,  # ferritin, CRP, fibrinogen, ANC/ALC, FiO2, temperature degF and degC
)

OMOP_DDL = (("duckdb", "omopcdm_duckdb_5.4_ddl.sql"),
            ("postgresql", "omopcdm_postgresql_5.4_ddl.sql"))


# ---------------------------------------------------------------------------------------------
def _filter_csv_lines(src: Path, dst: Path, column: str, keep: set[str]) -> int:
    """Copy the header and every line whose ``column`` is in keep, byte for byte. Returns the
    number of data lines kept. Every source file has one record per line (checked)."""
    raw = src.read_bytes()
    lines = raw.splitlines(keepends=True)
    records = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    if len(records) != len(lines):
        raise SystemExit(f"{src}: a record spans several lines; this script cannot filter it")
    index = records[0].index(column)
    out = [lines[0]] + [line for line, rec in zip(lines[1:], records[1:]) if rec[index] in keep]
    dst.write_bytes(b"".join(out))
    return len(out) - 1


def _write_parquet(table: pa.Table, dst: Path) -> None:
    """One row group, zstd (the MIMIC events file upstream is snappy-compressed: only the
    compression differs; columns, types and schema metadata are kept)."""
    pq.write_table(table, dst, compression="zstd")


def eunomia(src: Path, dst: Path) -> dict[str, int]:
    counts = {}
    (dst / "omop").mkdir(parents=True, exist_ok=True)
    (dst / "csv").mkdir(exist_ok=True)
    keep = pa.array(EUNOMIA_PERSONS, pa.int64())
    for file in sorted((src / "omop").glob("*.parquet")):
        table = pq.read_table(file)
        if "person_id" in table.column_names and table.num_rows:
            table = table.filter(pc.is_in(table["person_id"], keep.cast(table["person_id"].type)))
        _write_parquet(table, dst / "omop" / file.name)
        counts[f"omop/{file.stem}"] = table.num_rows
    concept_ids = {str(i) for i in pq.read_table(src / "omop" / "concept.parquet")["concept_id"]
                   .to_pylist()}
    persons = {str(p) for p in EUNOMIA_PERSONS}
    for file in sorted((src / "csv").glob("*.csv")):
        header = file.read_text(encoding="utf-8").splitlines()[0].split(",")
        if file.stem == "concept":   # the concept rows of the Parquet concept table
            n = _filter_csv_lines(file, dst / "csv" / file.name, "concept_id", concept_ids)
        elif "person_id" in header:
            n = _filter_csv_lines(file, dst / "csv" / file.name, "person_id", persons)
        else:
            shutil.copyfile(file, dst / "csv" / file.name)
            n = len(file.read_bytes().splitlines()) - 1
        counts[f"csv/{file.stem}"] = n
    return counts


def fhir_spec(src: Path, dst: Path) -> dict[str, int]:
    (dst / "resources").mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "bundles", dst / "bundles")
    shutil.copyfile(src / "package.json", dst / "package.json")
    chosen = sorted(p.name for p in (src / "resources").glob("*.json")
                    if p.name.startswith(FHIR_RESOURCE_PREFIXES) or p.name in FHIR_RESOURCES)
    missing = set(FHIR_RESOURCES) - set(chosen)
    if missing:
        raise SystemExit(f"FHIR examples missing from {src}: {sorted(missing)}")
    for name in chosen:
        shutil.copyfile(src / "resources" / name, dst / "resources" / name)
    counts: dict[str, int] = {}
    for name in chosen:
        rtype = json.loads((src / "resources" / name).read_text(encoding="utf-8"))["resourceType"]
        counts[f"resources/{rtype}"] = counts.get(f"resources/{rtype}", 0) + 1
    counts["bundles"] = len(list((src / "bundles").glob("*.json")))
    return counts


def synthea_bundles(src: Path, dst: Path) -> dict[str, int]:
    (dst / "bundles").mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name in SYNTHEA_BUNDLES:
        doc = json.loads((src / "bundles" / name).read_text(encoding="utf-8"))
        doc["entry"] = [e for e in doc["entry"]
                        if e["resource"]["resourceType"] not in SYNTHEA_DROPPED_TYPES]
        for e in doc["entry"]:
            rtype = e["resource"]["resourceType"]
            counts[rtype] = counts.get(rtype, 0) + 1
        # compact JSON (upstream is indented by 4 spaces); values and key order unchanged
        (dst / "bundles" / name).write_text(
            json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    return dict(sorted(counts.items()))


def synthea_bulk(src: Path, dst: Path) -> dict[str, int]:
    (dst / "ndjson").mkdir(parents=True, exist_ok=True)
    counts = {}
    folder = src / "ndjson"
    lines = folder.joinpath("patient.000.ndjson").read_bytes().splitlines(keepends=True)
    kept = [line for line in lines if json.loads(line)["id"] in BULK_PATIENTS]
    if len(kept) != len(BULK_PATIENTS):
        raise SystemExit(f"{folder}/patient.000.ndjson: not every selected patient was found")
    (dst / "ndjson" / "patient.000.ndjson").write_bytes(b"".join(kept))
    counts["patient.000.ndjson"] = len(kept)
    refs = {f"Patient/{p}" for p in BULK_PATIENTS}
    for name in BULK_BY_SUBJECT:
        lines = folder.joinpath(name).read_bytes().splitlines(keepends=True)
        kept = [line for line in lines if json.loads(line)["subject"]["reference"] in refs]
        (dst / "ndjson" / name).write_bytes(b"".join(kept))
        counts[name] = len(kept)
    for name in BULK_WHOLE:
        shutil.copyfile(folder / name, dst / "ndjson" / name)
        counts[name] = len(folder.joinpath(name).read_bytes().splitlines())
    return counts


def mimic(src: Path, dst: Path) -> dict[str, int]:
    dst.mkdir(parents=True, exist_ok=True)
    counts = {}
    keep = pa.array(MIMIC_SUBJECTS, pa.int64())
    for name in ("mimic_iv_demo_meds_events.parquet", "labs_vitals_long.parquet"):
        table = pq.read_table(src / name)
        table = table.filter(pc.is_in(table["subject_id"], keep.cast(table["subject_id"].type)))
        _write_parquet(table, dst / name)
        counts[name] = table.num_rows
    subjects = {str(s) for s in MIMIC_SUBJECTS}
    for name in ("admission_icu_events.csv", "hyperinflammation_labs_long.csv"):
        counts[name] = _filter_csv_lines(src / name, dst / name, "subject_id", subjects)
    return counts


def omop_ddl(src: Path, dst: Path) -> dict[str, int]:
    """The two DDL files the exporter needs, into the package (src/hyperinflam/omop_cdm54)."""
    counts = {}
    for dialect, name in OMOP_DDL:
        (dst / dialect).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / "ddl" / dialect / name, dst / dialect / name)
        counts[f"{dialect}/{name}"] = sum(line.startswith("CREATE TABLE") for line in
                                          (src / "ddl" / dialect / name).read_text().splitlines())
    return counts


FOLDERS = {"eunomia_synthea27nj": eunomia, "fhir_r4_spec_examples": fhir_spec,
           "synthea_r4_bundles_smart": synthea_bundles,
           "synthea_bulk_ndjson_smart10": synthea_bulk, "mimic_iv_demo_meds": mimic}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder holding the full samples")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1]
                        / "tests" / "data", help="fixture folder (default: tests/data)")
    parser.add_argument("--ddl-out", type=Path, default=None,
                        help="also copy the OMOP CDM 5.4 DDL files the exporter ships into this "
                             "folder (the package's src/hyperinflam/omop_cdm54/ddl)")
    args = parser.parse_args(argv)
    for folder, extract in FOLDERS.items():
        src, dst = args.data / folder, args.out / folder
        if not src.is_dir():
            print(f"{src}: missing", file=sys.stderr)
            return 2
        # SOURCE.md is written by hand; every data file is rebuilt
        for child in (dst.iterdir() if dst.is_dir() else ()):
            if child.name != "SOURCE.md":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        dst.mkdir(parents=True, exist_ok=True)
        counts = extract(src, dst)
        print(f"{folder}:")
        for key, n in counts.items():
            print(f"  {key}: {n}")
    if args.ddl_out is not None:
        counts = omop_ddl(args.data / "omop_cdm54_spec", args.ddl_out)
        print("omop_cdm54_spec (CREATE TABLE statements):")
        for key, n in counts.items():
            print(f"  {key}: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

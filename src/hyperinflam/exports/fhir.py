"""Write the canonical tables as FHIR R4 bulk-data NDJSON (one file per resource type).

Used for the round trip (CSV -> canonical -> FHIR -> canonical gives identical tables) and to hand
a cohort to FHIR tooling. Mapping (the reverse of :mod:`hyperinflam.sources.fhir.reader`,
docs/sources-fhir.md):

* person -> Patient (id = person_id, birthDate, gender);
* stay -> Encounter (id = stay_id, class IMP, period, reasonCode.text, location = the PICU
  Location of type PEDICU, admission weight in the extension ``WEIGHT_EXTENSION``);
* measurement -> Observation (the variable's first LOINC code in vocabulary/codes.csv, value
  and unit exactly as received: ``value_original`` as a JSON number, ``unit_original``; the UCUM
  system and code only when the unit is the canonical UCUM unit);
* drug_administration -> MedicationAdministration (RxNorm ingredient when codes.csv has it, text =
  drug name; dose, route text, dosing weight extension); a vasoactive organ_support row ->
  MedicationAdministration with ``dosage.rateQuantity``; a respiratory support interval
  (invasive ventilation and the other kinds of supports.csv) -> Procedure (the kind's first
  SNOMED ``support`` code of codes.csv);
* condition -> Condition (code.text = condition; category problem-list-item when underlying);
  event -> Condition with category system ``EVENT_SYSTEM`` (code infection / death).

Rows are streamed from DuckDB in batches; no table sits in memory at once.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from hyperinflam.sources.fhir.parse import EVENT_SYSTEM, UCUM, WEIGHT_EXTENSION
from hyperinflam.vocabulary import Vocabulary

__all__ = ["export_fhir_ndjson"]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SYSTEM_URIS = {"SNOMED": SNOMED, "ICD-10-CM": "http://hl7.org/fhir/sid/icd-10-cm",
               "ICD-10": "http://hl7.org/fhir/sid/icd-10",
               "ICD-9-CM": "http://hl7.org/fhir/sid/icd-9-cm", "LOINC": LOINC}
PICU_LOCATION_ID = "picu"
#: A number exactly as JSON writes it (no '+', no leading zeros, no bare '.5' or '5.').
_JSON_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
BATCH = 50_000


def _time(value) -> str | None:
    return None if value is None else value.isoformat() + "+00:00"


def _number(text: str):
    """The received value text as a JSON number (orjson Fragment keeps its exact digits)."""
    text = text.strip()
    if _JSON_NUMBER.fullmatch(text):
        return orjson.Fragment(text.encode())
    try:
        return float(text)  # '+5', '.5', '007': the value, in JSON's spelling
    except ValueError:
        return text  # not a number: written as-is (the reader quarantines it)


def _rows(raw, sql: str):
    cur = raw.execute(sql)
    cols = [d[0] for d in cur.description]
    while True:
        batch = cur.fetchmany(BATCH)
        if not batch:
            return
        for row in batch:
            yield dict(zip(cols, row))


def _weight_ext(weight) -> list:
    if weight is None:
        return []
    return [{"url": WEIGHT_EXTENSION, "valueQuantity": {"value": weight, "unit": "kg",
                                                        "system": UCUM, "code": "kg"}}]


def export_fhir_ndjson(con, out_dir, *, vocabulary: Vocabulary | None = None) -> dict[str, int]:
    """Write the canonical tables of ``con`` as bulk NDJSON files into ``out_dir``; returns the
    number of resources written per file."""
    vocab = vocabulary or Vocabulary()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = con.con
    loinc = {}
    for c in vocab.codes_of("measurement", system="LOINC"):
        loinc.setdefault(c.target, c.code)
    support_code = {kind: vocab.first_code("support", kind, "SNOMED").code
                    for kind in vocab.supports}
    kinds = ", ".join("'" + k.replace("'", "''") + "'" for k in vocab.supports)
    counts: dict[str, int] = {}

    def write(name: str, resources) -> None:
        n = 0
        with open(out / f"{name}.000.ndjson", "wb") as handle:
            for resource in resources:
                handle.write(orjson.dumps(resource) + b"\n")
                n += 1
        counts[name] = n

    def subject(pid):
        return {"reference": f"Patient/{pid}"}

    def encounter(sid):
        return {"encounter": {"reference": f"Encounter/{sid}"}} if sid is not None else {}

    write("Location", [{"resourceType": "Location", "id": PICU_LOCATION_ID,
                        "name": "Pediatric intensive care unit",
                        "type": [{"coding": [{
                            "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                            "code": "PEDICU", "display": "Pediatric intensive care unit"}]}]}])
    write("Patient", ({"resourceType": "Patient", "id": r["person_id"], "gender": r["sex"],
                       "birthDate": r["birth_date"].isoformat()}
                      for r in _rows(raw, "SELECT * FROM person ORDER BY person_id")))
    write("Encounter", ({
        "resourceType": "Encounter", "id": r["stay_id"], "status": "finished",
        "extension": _weight_ext(r["weight_kg"]),
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": subject(r["person_id"]),
        "period": {k: v for k, v in (("start", _time(r["admit_time"])),
                                     ("end", _time(r["discharge_time"]))) if v},
        **({"reasonCode": [{"text": r["admission_reason"]}]} if r["admission_reason"] else {}),
        "location": [{"location": {"reference": f"Location/{PICU_LOCATION_ID}"}}],
    } for r in _rows(raw, "SELECT * FROM stay ORDER BY stay_id")))

    def observation(i, r):
        var = r["variable"]
        unit = r["unit_original"]
        quantity = {"value": _number(r["value_original"]), "unit": unit}
        if unit == vocab.variables[var].canonical_unit:
            quantity.update(system=UCUM, code=unit)
        return {"resourceType": "Observation", "id": f"m{i}", "status": "final",
                "code": {"coding": [{"system": LOINC, "code": loinc[var]}],
                         "text": vocab.variables[var].label},
                "subject": subject(r["person_id"]), **encounter(r["stay_id"]),
                "effectiveDateTime": _time(r["time"]), "valueQuantity": quantity}

    write("Observation", (observation(i, r) for i, r in enumerate(_rows(
        raw, "SELECT * FROM measurement ORDER BY person_id, time, variable"), 1)))

    def medication(drug):
        rx = (vocab.drugs.get(drug) or {}).get("rxnorm_ingredient")
        return {"coding": [{"system": RXNORM, "code": rx, "display": drug}] if rx else [],
                "text": drug}

    def period(start, end):
        if end is None:
            return {"effectiveDateTime": _time(start)}
        return {"effectivePeriod": {"start": _time(start), "end": _time(end)}}

    def administrations():
        for i, r in enumerate(_rows(raw, "SELECT * FROM drug_administration "
                                         "ORDER BY person_id, start_time, drug"), 1):
            dosage = {}
            if r["route"]:
                dosage["route"] = {"text": r["route"]}
            if r["dose"] is not None:
                dosage["dose"] = {"value": r["dose"], "unit": r["dose_unit"]}
            yield {"resourceType": "MedicationAdministration", "id": f"d{i}",
                   "extension": _weight_ext(r["weight_kg"]), "status": "completed",
                   "medicationCodeableConcept": medication(r["drug"]),
                   "subject": subject(r["person_id"]),
                   **({"context": {"reference": f"Encounter/{r['stay_id']}"}}
                      if r["stay_id"] else {}),
                   **period(r["start_time"], r["end_time"]),
                   **({"dosage": dosage} if dosage else {})}
        for i, r in enumerate(_rows(raw, f"SELECT * FROM organ_support WHERE support NOT IN "
                                         f"({kinds}) ORDER BY person_id, start_time"), 1):
            yield {"resourceType": "MedicationAdministration", "id": f"v{i}", "status": "completed",
                   "medicationCodeableConcept": medication(r["support"]),
                   "subject": subject(r["person_id"]),
                   **({"context": {"reference": f"Encounter/{r['stay_id']}"}}
                      if r["stay_id"] else {}),
                   **period(r["start_time"], r["end_time"]),
                   **({"dosage": {"rateQuantity": {"value": r["dose"], "unit": r["dose_unit"]}}}
                      if r["dose"] is not None else {})}

    write("MedicationAdministration", administrations())
    write("Procedure", ({
        "resourceType": "Procedure", "id": f"p{i}", "status": "completed",
        "code": {"coding": [{"system": SNOMED, "code": support_code[r["support"]]}],
                 "text": r["support"].replace("_", " ")},
        "subject": subject(r["person_id"]), **encounter(r["stay_id"]),
        **({"performedPeriod": {k: v for k, v in (("start", _time(r["start_time"])),
                                                  ("end", _time(r["end_time"]))) if v}}),
    } for i, r in enumerate(_rows(raw, f"SELECT * FROM organ_support WHERE support IN ({kinds}) "
                                       f"ORDER BY person_id, start_time, support"), 1)))

    def conditions():
        for i, r in enumerate(_rows(raw, "SELECT * FROM condition ORDER BY person_id, condition"), 1):
            code = {"text": r["condition"]}
            if r["code"]:
                code["coding"] = [{"system": SYSTEM_URIS.get(r["code_system"], r["code_system"]),
                                   "code": r["code"]}]
            category = "problem-list-item" if r["is_underlying"] else "encounter-diagnosis"
            yield {"resourceType": "Condition", "id": f"c{i}",
                   "category": [{"coding": [{
                       "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                       "code": category}]}],
                   "code": code, "subject": subject(r["person_id"]), **encounter(r["stay_id"]),
                   **({"onsetDateTime": _time(r["onset_time"])} if r["onset_time"] else {})}
        for i, r in enumerate(_rows(raw, "SELECT * FROM event ORDER BY person_id, time"), 1):
            yield {"resourceType": "Condition", "id": f"e{i}",
                   "category": [{"coding": [{"system": EVENT_SYSTEM, "code": r["event_type"]}]}],
                   "code": {"text": r["detail"]} if r["detail"] else {},
                   "subject": subject(r["person_id"]), **encounter(r["stay_id"]),
                   "onsetDateTime": _time(r["time"])}

    write("Condition", conditions())
    return counts

"""Streaming FHIR R4 parsing for :mod:`hyperinflam.sources.fhir.reader`: JSON in, flat staging rows out.

Only the fields the canonical tables use are read and checked ("parse fast and validate what we
use", docs/stack.md, "FHIR speed"). NDJSON is read line by line with orjson, and
rows are flushed to DuckDB every :data:`FLUSH_ROWS` rows, so a bulk export of millions of lines
never sits in memory at once. A Bundle file is one JSON document and is parsed whole.

Every staged row gets a global sequence number ``seq`` (the ``_line`` handed to the shared
pipeline) and a location: the file and its line (NDJSON) or entry number (Bundle, 1-based; a
single-resource file is entry 1), plus the component number for Observation components.

References are reduced to one key form here (:func:`ref_key`); they are resolved set-based in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow as pa

#: FHIR code system URIs -> the short names used in the code files (vocabulary/codes_*.csv).
SYSTEMS: dict[str, str] = {
    "http://loinc.org": "loinc",
    "http://snomed.info/sct": "snomed",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "rxnorm",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd10cm",
    "http://hl7.org/fhir/sid/icd-10": "icd10",
    "http://hl7.org/fhir/sid/icd-9-cm": "icd9cm",
}
UCUM = "http://unitsofmeasure.org"
#: hyperinflam's own code system for events exported as Conditions (round trip; docs/sources-fhir.md).
EVENT_SYSTEM = "https://hyperinflam.org/fhir/CodeSystem/event"
#: Extension carrying a weight in kg (dosing weight on MedicationAdministration; admission weight
#: on Encounter); clinical reference §12.34.
WEIGHT_EXTENSION = "https://hyperinflam.org/fhir/StructureDefinition/weight-kg"

#: Statuses meaning "did not happen": the row is quarantined as ``not_done``.
NOT_DONE_STATUS: dict[str, frozenset] = {
    "Observation": frozenset({"entered-in-error", "cancelled"}),
    "MedicationAdministration": frozenset({"entered-in-error", "not-done"}),
    "MedicationRequest": frozenset({"entered-in-error", "cancelled", "draft"}),
    "Procedure": frozenset({"entered-in-error", "not-done"}),
    "Encounter": frozenset({"entered-in-error", "cancelled"}),
    "Condition": frozenset({"entered-in-error", "refuted"}),
    # R4 DeviceUseStatement.status: active | completed | entered-in-error | intended | stopped |
    # on-hold. "intended" is a plan (not yet used); stopped and on-hold were in use: loaded.
    "DeviceUseStatement": frozenset({"entered-in-error", "intended"}),
}
#: Resource types read; every other type is counted in the load notes and ignored.
READ_TYPES = ("Patient", "Encounter", "Location", "Medication", "Observation",
              "MedicationAdministration", "MedicationRequest", "Procedure", "Condition", "Device",
              "DeviceUseStatement")
#: Resource type -> canonical table (to file a malformed NDJSON line under the right table).
TABLE_OF_TYPE = {"Patient": "person", "Encounter": "stay", "Observation": "measurement",
                 "MedicationAdministration": "drug_administration",
                 "MedicationRequest": "drug_administration", "Procedure": "organ_support",
                 "DeviceUseStatement": "organ_support", "Condition": "condition"}
FLUSH_ROWS = 50_000

_S = pa.string()
_L = pa.list_(pa.string())
#: Staging tables: name -> columns (all text except seq and list columns).
STAGING: dict[str, list[tuple[str, pa.DataType]]] = {
    "loc": [("seq", pa.int64()), ("file", _S), ("loc", pa.int64()), ("comp", pa.int64()),
            ("rtype", _S), ("rid", _S)],
    "keys": [("key", _S), ("rtype", _S), ("rid", _S)],
    "patient": [("seq", pa.int64()), ("rid", _S), ("birth_date", _S), ("gender", _S),
                ("deceased_time", _S), ("deceased", _S)],
    "encounter": [("seq", pa.int64()), ("rid", _S), ("subject", _S), ("start_time", _S),
                  ("end_time", _S), ("class_code", _S), ("location_refs", _L),
                  ("location_text", _L), ("reason", _S), ("weight_kg", _S), ("status_reason", _S),
                  ("status_detail", _S)],
    "location": [("rid", _S), ("type_codes", _L), ("name", _S)],
    "medication": [("rid", _S), ("codes", _L), ("text", _S)],
    "obs": [("seq", pa.int64()), ("subject", _S), ("encounter", _S), ("time", _S), ("codes", _L),
            ("code_text", _S), ("value", _S), ("unit", _S), ("status_reason", _S),
            ("status_detail", _S)],
    "med": [("seq", pa.int64()), ("kind", _S), ("subject", _S), ("encounter", _S), ("med_ref", _S),
            ("codes", _L), ("med_text", _S), ("dose", _S), ("dose_unit", _S), ("rate", _S),
            ("rate_unit", _S), ("route_codes", _L), ("route_text", _S), ("start_time", _S),
            ("end_time", _S), ("weight_kg", _S), ("status_reason", _S), ("status_detail", _S)],
    "device": [("rid", _S), ("codes", _L), ("text", _S)],
    # Procedure and DeviceUseStatement (kind): the codes are Procedure.code, or the type of a
    # contained Device; device_ref is a Device to resolve in SQL (same Bundle or load).
    "proc": [("seq", pa.int64()), ("kind", _S), ("subject", _S), ("encounter", _S), ("codes", _L),
             ("text", _S), ("start_time", _S), ("end_time", _S), ("device_ref", _S),
             ("status_reason", _S), ("status_detail", _S)],
    "cond": [("seq", pa.int64()), ("subject", _S), ("encounter", _S), ("codes", _L), ("text", _S),
             ("onset", _S), ("categories", _L), ("event_type", _S), ("status_reason", _S),
             ("status_detail", _S)],
}


def ref_key(reference) -> str | None:
    """One key form for every kind of FHIR reference.

    ``urn:uuid:...`` and ``#contained`` stay as they are; relative (``Patient/123``) and absolute
    (``https://server/fhir/Patient/123/_history/2``) references become ``Patient/123``; a
    conditional reference (``Location?identifier=system|value``) stays as it is and is matched
    against the identifiers of the resources read.
    """
    if isinstance(reference, dict):
        reference = reference.get("reference")
    if not reference or not isinstance(reference, str):
        return None
    if reference.startswith(("urn:", "#")) or "?" in reference:
        return reference
    parts = reference.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    return "/".join(parts[-2:]) if len(parts) >= 2 else reference


def _codes(concept) -> list[str]:
    if not isinstance(concept, dict):
        return []
    out = []
    for coding in concept.get("coding") or ():
        if isinstance(coding, dict) and coding.get("code") is not None:
            system = coding.get("system") or ""
            out.append(f"{SYSTEMS.get(system, system)}|{coding['code']}")
    return out


def _text(concept) -> str | None:
    if not isinstance(concept, dict):
        return None
    if concept.get("text"):
        return concept["text"]
    for coding in concept.get("coding") or ():
        if isinstance(coding, dict) and coding.get("display"):
            return coding["display"]
    return None


def _num(value) -> str | None:
    """JSON number -> text (shortest repr that reads back as the same float)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    return str(value)


def quantity_unit(q: dict) -> str | None:
    """The unit of a Quantity: the code when the system is UCUM, else the human unit text, else a
    code without a system."""
    code, unit, system = q.get("code"), q.get("unit"), q.get("system")
    if code and system == UCUM:
        return code
    return unit or (code if not system else None)


def _weight(resource) -> str | None:
    for ext in resource.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == WEIGHT_EXTENSION:
            return _num((ext.get("valueQuantity") or {}).get("value"))
    return None


def _status(rtype: str, status) -> tuple[str | None, str | None]:
    if status in NOT_DONE_STATUS.get(rtype, ()):
        return "not_done", f"{rtype}.status is '{status}': it did not happen; not loaded."
    return None, None


def _device_type(device: dict) -> tuple[list[str], str | None]:
    """(codes, text) of a Device's type (R4: one CodeableConcept; R5: a list), the text falling
    back to the first deviceName."""
    types = device.get("type")
    concepts = types if isinstance(types, list) else [types]
    codes = [c for t in concepts for c in _codes(t)]
    text = next((t for t in map(_text, concepts) if t), None)
    if text is None:
        text = next((n.get("name") for n in device.get("deviceName") or ()
                     if isinstance(n, dict) and n.get("name")), None)
    return codes, text


@dataclass
class Staging:
    """Rows per staging table, flushed to DuckDB tables ``_fhir_<name>`` in batches."""

    raw: object
    seq: int = 0
    rows: dict[str, list] = field(default_factory=lambda: {k: [] for k in STAGING})
    ignored: dict[str, int] = field(default_factory=dict)
    resources: dict[str, int] = field(default_factory=dict)
    malformed: list[tuple[str, int, str, str | None]] = field(default_factory=list)

    def create(self) -> None:
        for name, cols in STAGING.items():
            types = {pa.int64(): "BIGINT", _S: "VARCHAR", _L: "VARCHAR[]"}
            ddl = ", ".join(f"{c} {types[t]}" for c, t in cols)
            self.raw.execute(f"CREATE OR REPLACE TEMP TABLE _fhir_{name} ({ddl})")

    def flush(self, force: bool = False) -> None:
        for name, rows in self.rows.items():
            if rows and (force or len(rows) >= FLUSH_ROWS):
                cols = STAGING[name]
                arrays = [pa.array(list(col), type=t) for col, (_, t) in zip(zip(*rows), cols)]
                batch = pa.Table.from_arrays(arrays, names=[c for c, _ in cols])
                self.raw.register("_fhir_batch", batch)
                try:
                    self.raw.execute(f"INSERT INTO _fhir_{name} SELECT * FROM _fhir_batch")
                finally:
                    self.raw.unregister("_fhir_batch")
                rows.clear()

    def _next(self, file: str, loc: int, comp: int, rtype: str, rid) -> int:
        self.seq += 1
        self.rows["loc"].append((self.seq, file, loc, comp, rtype, rid))
        return self.seq

    # -- one resource ----------------------------------------------------------------------
    def add(self, r: dict, file: str, loc: int, full_url: str | None = None) -> None:
        rtype = r.get("resourceType")
        if rtype not in READ_TYPES:
            self.ignored[str(rtype)] = self.ignored.get(str(rtype), 0) + 1
            return
        self.resources[rtype] = self.resources.get(rtype, 0) + 1
        rid = r.get("id")
        if rtype in ("Patient", "Encounter", "Location", "Medication", "Device"):
            if rid is None and full_url:
                rid = full_url.rsplit(":", 1)[-1] if full_url.startswith("urn:") else ref_key(full_url)
            keys = self.rows["keys"]
            if rid is not None:
                keys.append((f"{rtype}/{rid}", rtype, rid))
            if full_url and rid is not None:
                keys.append((ref_key(full_url), rtype, rid))
            for ident in r.get("identifier") or ():
                if isinstance(ident, dict) and ident.get("value") is not None:
                    keys.append((f"{rtype}?identifier={ident.get('system', '')}|{ident['value']}",
                                 rtype, rid))
        getattr(self, "_" + rtype)(r, file, loc, rid)
        if len(self.rows["loc"]) >= FLUSH_ROWS:
            self.flush(force=True)

    def _Patient(self, r, file, loc, rid):
        seq = self._next(file, loc, 0, "Patient", rid)
        deceased = r.get("deceasedBoolean")
        self.rows["patient"].append((seq, rid, r.get("birthDate"), r.get("gender"),
                                     r.get("deceasedDateTime"),
                                     "true" if deceased is True or r.get("deceasedDateTime")
                                     else None))

    def _Location(self, r, file, loc, rid):
        types = [c for t in (r.get("type") or ()) for c in _codes(t)]
        self.rows["location"].append((rid, types, r.get("name")))

    def _Medication(self, r, file, loc, rid):
        self.rows["medication"].append((rid, _codes(r.get("code")), _text(r.get("code"))))

    def _Device(self, r, file, loc, rid):
        self.rows["device"].append((rid, *_device_type(r)))

    def _Encounter(self, r, file, loc, rid):
        seq = self._next(file, loc, 0, "Encounter", rid)
        cls = r.get("class")
        if isinstance(cls, list):  # R5-style list of CodeableConcepts
            cls = ((cls[0] or {}).get("coding") or [{}])[0] if cls else None
        period = r.get("period") or {}
        refs, texts = [], []
        for item in r.get("location") or ():
            ref = (item or {}).get("location") or {}
            if ref_key(ref):
                refs.append(ref_key(ref))
            if ref.get("display"):
                texts.append(ref["display"])
        reason = None
        for concept in r.get("reasonCode") or ():
            reason = _text(concept)
            if reason:
                break
        status = _status("Encounter", r.get("status"))
        self.rows["encounter"].append((
            seq, rid, ref_key(r.get("subject")), period.get("start"), period.get("end"),
            (cls or {}).get("code") if isinstance(cls, dict) else None, refs, texts, reason,
            _weight(r), *status))

    def _Observation(self, r, file, loc, rid):
        subject, encounter = ref_key(r.get("subject")), ref_key(r.get("encounter"))
        period = r.get("effectivePeriod") or {}
        time = r.get("effectiveDateTime") or period.get("start") or r.get("effectiveInstant")
        status = _status("Observation", r.get("status"))
        components = r.get("component") or ()
        has_value = "dataAbsentReason" in r or any(k.startswith("value") for k in r)
        if has_value or not components:
            self._observation_row(r, file, loc, 0, rid, subject, encounter, time, status)
        for i, comp in enumerate(components, 1):
            if isinstance(comp, dict):
                self._observation_row(comp, file, loc, i, rid, subject, encounter, time, status)

    def _observation_row(self, x, file, loc, comp, rid, subject, encounter, time, status):
        seq = self._next(file, loc, comp, "Observation", rid)
        value = unit = None
        reason, detail = status
        q = x.get("valueQuantity")
        if reason is None:
            if "dataAbsentReason" in x:
                reason = "data_absent"
                detail = (f"dataAbsentReason '{_text(x['dataAbsentReason']) or ''}': no value "
                          f"was measured; not loaded.")
            elif isinstance(q, dict) and q.get("comparator"):
                reason = "no_quantity"
                detail = (f"censored value {q.get('comparator')}{q.get('value')}: a bound, not a "
                          f"measurement; not loaded.")
            elif isinstance(q, dict) and isinstance(q.get("value"), (int, float)) \
                    and not isinstance(q.get("value"), bool):
                value, unit = _num(q["value"]), quantity_unit(q)
            else:
                kinds = [k for k in x if k.startswith("value")]
                reason = "no_quantity"
                detail = (f"{kinds[0]} is not a numeric valueQuantity; not loaded." if kinds
                          else "no value (a panel or a pending result); not loaded.")
        code = x.get("code")
        self.rows["obs"].append((seq, subject, encounter, time, _codes(code), _text(code), value,
                                 unit, reason, detail))

    def _medication(self, r) -> tuple[str | None, list[str], str | None]:
        concept = r.get("medicationCodeableConcept")
        if concept is not None:
            return None, _codes(concept), _text(concept)
        ref = ref_key(r.get("medicationReference"))
        display = (r.get("medicationReference") or {}).get("display")
        if ref and ref.startswith("#"):
            for c in r.get("contained") or ():
                if isinstance(c, dict) and c.get("id") == ref[1:]:
                    return None, _codes(c.get("code")), _text(c.get("code")) or display
        return ref, [], display

    def _MedicationAdministration(self, r, file, loc, rid):
        seq = self._next(file, loc, 0, "MedicationAdministration", rid)
        med_ref, codes, text = self._medication(r)
        period = r.get("effectivePeriod") or {}
        dosage = r.get("dosage") or {}
        dose = dosage.get("dose") or {}
        rate = dosage.get("rateQuantity") or {}
        route = dosage.get("route")
        self.rows["med"].append((
            seq, "MedicationAdministration", ref_key(r.get("subject")),
            ref_key(r.get("context")), med_ref, codes, text, _num(dose.get("value")),
            quantity_unit(dose) if dose else None, _num(rate.get("value")),
            quantity_unit(rate) if rate else None, _codes(route), _text(route),
            r.get("effectiveDateTime") or period.get("start"), period.get("end"), _weight(r),
            *_status("MedicationAdministration", r.get("status"))))

    def _MedicationRequest(self, r, file, loc, rid):
        seq = self._next(file, loc, 0, "MedicationRequest", rid)
        med_ref, codes, text = self._medication(r)
        instr = (r.get("dosageInstruction") or [{}])[0] or {}
        bounds = (((instr.get("timing") or {}).get("repeat") or {}).get("boundsPeriod") or {})
        dr = (instr.get("doseAndRate") or [{}])[0] or {}
        dose = dr.get("doseQuantity") or {}
        rate = dr.get("rateQuantity") or {}
        route = instr.get("route")
        self.rows["med"].append((
            seq, "MedicationRequest", ref_key(r.get("subject")), ref_key(r.get("encounter")),
            med_ref, codes, text, _num(dose.get("value")), quantity_unit(dose) if dose else None,
            _num(rate.get("value")), quantity_unit(rate) if rate else None, _codes(route),
            _text(route), bounds.get("start") or r.get("authoredOn"), bounds.get("end"),
            _weight(r), *_status("MedicationRequest", r.get("status"))))

    def _Procedure(self, r, file, loc, rid):
        seq = self._next(file, loc, 0, "Procedure", rid)
        period = r.get("performedPeriod") or {}
        self.rows["proc"].append((
            seq, "Procedure", ref_key(r.get("subject")), ref_key(r.get("encounter")),
            _codes(r.get("code")), _text(r.get("code")),
            r.get("performedDateTime") or period.get("start"), period.get("end"), None,
            *_status("Procedure", r.get("status"))))

    def _DeviceUseStatement(self, r, file, loc, rid):
        """Organ support recorded as the use of a device: the Device's type is the code (a
        contained Device is resolved here, any other in SQL); timingPeriod, else timingDateTime
        as performedPeriod / performedDateTime of a Procedure. R4 has no encounter element."""
        seq = self._next(file, loc, 0, "DeviceUseStatement", rid)
        period = r.get("timingPeriod") or {}
        device = r.get("device")
        ref = ref_key(device)
        codes, text = [], device.get("display") if isinstance(device, dict) else None
        if ref and ref.startswith("#"):
            for c in r.get("contained") or ():
                if isinstance(c, dict) and c.get("resourceType") == "Device" \
                        and c.get("id") == ref[1:]:
                    codes, found = _device_type(c)
                    text, ref = found or text, None
                    break
        self.rows["proc"].append((
            seq, "DeviceUseStatement", ref_key(r.get("subject")), None, codes, text,
            r.get("timingDateTime") or period.get("start"), period.get("end"), ref,
            *_status("DeviceUseStatement", r.get("status"))))

    def _Condition(self, r, file, loc, rid):
        seq = self._next(file, loc, 0, "Condition", rid)
        verification = [c.split("|", 1)[1] for c in _codes(r.get("verificationStatus"))]
        status = next((_status("Condition", v) for v in verification
                       if v in NOT_DONE_STATUS["Condition"]), (None, None))
        categories, event_type = [], None
        for concept in r.get("category") or ():
            for coding in (concept or {}).get("coding") or ():
                if (coding or {}).get("system") == EVENT_SYSTEM:
                    event_type = coding.get("code")
            categories += [c.split("|", 1)[1] for c in _codes(concept)]
        period = r.get("onsetPeriod") or {}
        onset = r.get("onsetDateTime") or period.get("start") or r.get("recordedDate")
        self.rows["cond"].append((
            seq, ref_key(r.get("subject")), ref_key(r.get("encounter")), _codes(r.get("code")),
            _text(r.get("code")), onset, categories, event_type, *status))

    # -- files ----------------------------------------------------------------------------
    def add_ndjson(self, path: Path, name: str) -> bool:
        """Stream one NDJSON file line by line. Returns False (nothing read) when its first
        non-blank line is not a FHIR resource (e.g. a bulk-export log.ndjson)."""
        type_hint = name.split(".", 1)[0].lower()
        table = next((t for rt, t in TABLE_OF_TYPE.items() if rt.lower() == type_hint), None)
        checked = False
        with open(path, "rb") as handle:
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    resource = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    self.malformed.append((str(path), line_no, f"not valid JSON ({exc})", table))
                    continue
                if not checked:
                    checked = True
                    if not isinstance(resource, dict) or "resourceType" not in resource:
                        return False
                if not isinstance(resource, dict) or "resourceType" not in resource:
                    self.malformed.append((str(path), line_no, "not a FHIR resource (no "
                                           "resourceType)", table))
                    continue
                self.add(resource, str(path), line_no)
        return True

    def add_json(self, path: Path) -> bool:
        """One JSON file: a Bundle (entries numbered from 1) or a single resource (entry 1).
        Returns False when it is not FHIR (no resourceType, e.g. package.json)."""
        try:
            doc = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            self.malformed.append((str(path), 1, f"not valid JSON ({exc})", None))
            return True
        if not isinstance(doc, dict) or "resourceType" not in doc:
            return False
        if doc["resourceType"] == "Bundle":
            for i, entry in enumerate(doc.get("entry") or (), 1):
                resource = (entry or {}).get("resource")
                if isinstance(resource, dict) and "resourceType" in resource:
                    self.add(resource, str(path), i, entry.get("fullUrl"))
        else:
            self.add(doc, str(path), 1)
        return True

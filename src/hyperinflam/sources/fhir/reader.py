"""Load FHIR R4 data (a Bundle file, a folder of JSON files, or a bulk-data NDJSON folder).

Flow (docs/sources-fhir.md):

1. :mod:`hyperinflam.sources.fhir.parse` streams the files (orjson, line by line for NDJSON)
   into flat DuckDB staging tables ``_fhir_*`` in batches, reading only the fields we use.
2. Set-based SQL resolves references of every form (relative, absolute, ``urn:uuid:``,
   conditional ``Type?identifier=``; contained ``#id`` Medications and Devices were resolved
   while parsing), maps codes through the dictionary (LOINC -> variable, RxNorm -> drug,
   SNOMED -> organ support (Procedure.code, or the type of the Device a DeviceUseStatement
   references) and route: ``vocabulary/codes.csv``, plus a site's ``--codes`` file) and stages
   the layout columns.
3. The shared pipeline (:func:`hyperinflam.sources.ingest.load_staged`) validates, converts units
   (clinical reference §11.1, plausible ranges §11.2) and quarantines. Rows that cannot even be
   mapped (``unknown_code``, ``data_absent``, ``no_quantity``, ``not_done``, ``malformed_line``)
   are quarantined here with the file and line (NDJSON) or entry number (Bundle).

Codes: clinical reference §11.3 (LOINC) and §11.5 (RxNorm ingredients; a product code maps to its
drug only when listed in a code file, otherwise the drug name is taken from the first word of the
medication text, RxNorm's naming convention "ingredient strength form").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from hyperinflam.errors import SourceError
from hyperinflam.sources import LoadReport
from hyperinflam.sources.atomic import cleanup, forget_rows, load_transaction, on_commit
from hyperinflam.sources.fhir.parse import EVENT_SYSTEM, Staging  # noqa: F401
from hyperinflam.sources.ingest import (fold_unit_sql, load_staged, open_load, register_vocabulary,
                                       with_site_codes)
from hyperinflam.sources.domains import read_declarations, record_domains
from hyperinflam.sources.infections import derive_infections
from hyperinflam.sources.suspected_infection import (INFECTION_TEST,
                                                        derive_suspected_infections)
from hyperinflam.sources.load_log import record_load
from hyperinflam.sources.quarantine import TableLoadCounts
from hyperinflam.vocabulary import Vocabulary

__all__ = ["FhirSettings", "load_fhir", "read_codes"]

#: The kinds of vocabulary/codes.csv rows the FHIR reader maps.
CODE_KINDS = ("measurement", "drug", "support", "route", "event")
#: Human labels of code systems stored in condition.code_system.
SYSTEM_LABELS = {"snomed": "SNOMED", "icd10cm": "ICD-10-CM", "icd10": "ICD-10",
                 "icd9cm": "ICD-9-CM", "loinc": "LOINC"}


@dataclass(frozen=True)
class FhirSettings:
    """How FHIR resources become canonical rows (documented in docs/sources-fhir.md).

    * ``picu_location_types``: Location.type codes (v3 RoleCode) of a PICU; an Encounter whose
      ``location`` references such a Location is a PICU stay. Default PEDICU (pediatric ICU) and
      ICU (intensive care unit: the age of the child decides pediatric scope elsewhere).
    * ``picu_location_pattern``: a regular expression (case-insensitive) matched against the
      Location name and the Encounter.location display.
    * ``picu_encounter_classes``: Encounter.class codes counted as PICU stays (default none:
      v3 ActCode has no ICU class; a site whose export holds only PICU encounters sets e.g. IMP).
    * ``underlying_categories``: Condition.category codes meaning a pre-existing underlying
      disease (condition.is_underlying).
    * ``read_requests``: load MedicationRequest as drug administrations (start = the dosage's
      boundsPeriod.start, else authoredOn), for exports without MedicationAdministration.
    """

    picu_location_types: tuple[str, ...] = ("PEDICU", "ICU")
    picu_location_pattern: str = r"\bpicu\b|p(a)?ediatric intensive care"
    picu_encounter_classes: tuple[str, ...] = ()
    underlying_categories: tuple[str, ...] = ("problem-list-item",)
    read_requests: bool = True


def _q(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _in_list(values) -> str:
    return "(" + (", ".join(_q(v) for v in values) or "NULL") + ")"


def read_codes(site_codes: Path | str | None = None, vocabulary: Vocabulary | None = None
               ) -> pd.DataFrame:
    """The code map of the dictionary (vocabulary/codes.csv, plus a site file of the same layout
    whose rows take precedence): ``key`` ('loinc|2276-4', system in lower case as
    :data:`hyperinflam.sources.fhir.parse.SYSTEMS` names it), ``kind``, ``target`` and ``priority``
    (site rows first, then the file order) of every code of the kinds FHIR reads."""
    vocab = with_site_codes(vocabulary or Vocabulary(), site_codes)
    rows = [{"key": f"{c.system.lower()}|{c.code}", "kind": c.kind, "target": c.target,
             "priority": i}
            for i, c in enumerate(vocab.codes)
            if c.kind in CODE_KINDS and c.code and c.system and c.system != "MEDS"]
    frame = pd.DataFrame(rows, columns=["key", "kind", "target", "priority"])
    return frame.sort_values("priority").drop_duplicates(["key", "kind"], keep="first")


def _files(path: Path) -> tuple[list[Path], list[Path]]:
    if path.is_file():
        return ([path], []) if path.suffix == ".ndjson" else ([], [path])
    if not path.is_dir():
        raise SourceError(f"{path}: no such file or folder; give a Bundle JSON file, a folder "
                          f"of them, or a bulk-data NDJSON folder.")
    ndjson = sorted(p for p in path.rglob("*.ndjson") if p.is_file())
    jsons = sorted(p for p in path.rglob("*.json") if p.is_file())
    if not ndjson and not jsons:
        raise SourceError(f"{path}: no .json or .ndjson files in this folder.")
    return ndjson, jsons


# -- SQL pieces over the staging tables --------------------------------------------------------
def _person(col: str, alias: str) -> tuple[str, str]:
    join = (f"LEFT JOIN (SELECT DISTINCT ON (key) key, rid FROM _fhir_keys WHERE rtype = 'Patient' "
            f"ORDER BY key, rid) {alias} ON {alias}.key = {col}")
    expr = (f"coalesce({alias}.rid, CASE WHEN {col} LIKE 'Patient/%' THEN substr({col}, 9) END, "
            f"{col})")
    return join, expr


def _stay(col: str, alias: str) -> tuple[str, str]:
    eid = (f"coalesce({alias}.rid, CASE WHEN {col} LIKE 'Encounter/%' THEN substr({col}, 11) END)")
    join = (f"LEFT JOIN (SELECT DISTINCT ON (key) key, rid FROM _fhir_keys WHERE rtype = "
            f"'Encounter' ORDER BY key, rid) {alias} ON {alias}.key = {col} "
            f"LEFT JOIN (SELECT DISTINCT stay_id AS sid FROM stay) {alias}s ON {alias}s.sid = {eid}")
    return join, f"{alias}s.sid"


def _referenced(rtype: str, table: str, ref: str, key_alias: str, alias: str) -> str:
    """LEFT JOINs of the resource of type ``rtype`` that the reference column ``ref`` names (the
    first by id among the load's resources, ``_fhir_keys``): ``key_alias.rid`` (NULL when the
    load holds none) and its staged row of ``table`` as ``alias`` (rid, codes, text). Used for
    a MedicationAdministration's Medication and a DeviceUseStatement's Device."""
    return (f"""LEFT JOIN (SELECT DISTINCT ON (key) key, rid FROM _fhir_keys WHERE rtype = '{rtype}'
                   ORDER BY key, rid) {key_alias} ON {key_alias}.key = {ref}
        LEFT JOIN (SELECT DISTINCT ON (rid) rid, codes, text FROM {table} ORDER BY rid) {alias}
               ON {alias}.rid = {key_alias}.rid""")


def _code_match(table: str, col: str, kind: str, out: str) -> str:
    """Per staged row, the target of the first code (in coding order) found in the code map."""
    return (f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT seq, arg_min(m.target, u.pos * 1e7 + "
            f"m.priority) AS target FROM (SELECT seq, unnest({col}) AS key, "
            f"generate_subscripts({col}, 1) AS pos FROM {table}) u JOIN _fhir_codes m "
            f"ON m.key = u.key AND m.kind = {_q(kind)} GROUP BY seq")


#: Why an Observation has no measurement value, which a test for infection does not need (its
#: result is irrelevant, §5.1): it is still the test ordered.
OBS_TEST_VALUE_REASONS = ("'no_quantity'", "'data_absent'")
OBS_TEST_VALUE_REASONS = "(" + ", ".join(OBS_TEST_VALUE_REASONS) + ")"


class _Loader:
    def __init__(self, con, source: str, vocab: Vocabulary, tz: str, settings: FhirSettings):
        self.con, self.raw, self.source = con, con.con, source
        self.vocab, self.tz, self.settings = vocab, tz, settings
        self.report = LoadReport(source=source)

    def load(self, table: str, staged_sql: str, rejects_sql: str | None) -> None:
        """Load mappable rows through the shared pipeline, then file the pipeline's quarantine
        rows and the unmappable rows (``rejects_sql``: seq, reason, detail, raw) under their
        file and line."""
        raw = self.raw
        placeholder = f"fhir:{table}"
        forget_rows(raw, "quarantine", "target_table = ? AND (source_file = ? OR source_file IN "
                    "(SELECT DISTINCT file FROM _fhir_loc))", [table, placeholder])
        counts = load_staged(self.con, table, staged_sql, source=placeholder,
                             vocabulary=self.vocab, tz=self.tz)
        raw.execute("""UPDATE quarantine SET source_file = m.file, source_line = m.loc,
                detail = CASE WHEN m.comp > 0 THEN detail || ' (' || m.rtype || ' ' || coalesce(m.rid, '')
                         || ', component ' || m.comp || ')' ELSE detail || ' (' || m.rtype || ' '
                         || coalesce(m.rid, '') || ')' END
            FROM _fhir_loc m
            WHERE quarantine.target_table = ? AND quarantine.source_file = ?
              AND quarantine.source_line = m.seq""", [table, placeholder])
        examples = {}
        for reason, example in counts.examples.items():
            seq = int(example.rsplit(":", 1)[-1])
            examples[reason] = self._where(seq)
        counts.examples = examples
        if rejects_sql:
            raw.execute(f"""CREATE OR REPLACE TEMP TABLE _fhir_rej AS
                SELECT r.*, m.file, m.loc, m.comp, m.rtype, m.rid FROM ({rejects_sql}) r
                JOIN _fhir_loc m ON m.seq = r.seq""")
            raw.execute(f"""INSERT INTO quarantine SELECT {_q(table)}, file, loc, reason,
                detail || ' (' || rtype || ' ' || coalesce(rid, '') ||
                CASE WHEN comp > 0 THEN ', component ' || comp ELSE '' END || ')', raw
                FROM _fhir_rej ORDER BY seq""")
            for reason, n, seq in raw.execute(
                    "SELECT reason, count(*), min(seq) FROM _fhir_rej GROUP BY reason").fetchall():
                counts.read += n
                counts.quarantined += n
                counts.reasons[reason] = counts.reasons.get(reason, 0) + n
                counts.examples[reason] = self._where(seq)
            raw.execute("DROP TABLE _fhir_rej")
        counts.source = self.source
        self.report.tables.append(counts)

    def _where(self, seq: int) -> str:
        file, loc, comp = self.raw.execute(
            "SELECT file, loc, comp FROM _fhir_loc WHERE seq = ?", [seq]).fetchone()
        return f"{Path(file).name}:{loc}" + (f" component {comp}" if comp else "")


def load_fhir(con, path, *, vocabulary: Vocabulary | None = None, codes: Path | str | None = None,
              tz: str = "UTC", settings: FhirSettings | None = None,
              domains: Iterable[str | Path] = ()) -> LoadReport:
    """Load FHIR R4 JSON (a Bundle or resource file, a folder of them, or a bulk NDJSON folder)
    into the canonical tables of ``con`` and return the reconciliation per table.

    ``codes``: a site codes file (layout of vocabulary/codes.csv). ``tz``: zone of times
    without an offset. ``settings``: :class:`FhirSettings` (PICU rule and friends).
    """
    path = Path(path)
    raw, vocab = open_load(con, vocabulary, tz)
    settings = settings or FhirSettings()
    code_map = read_codes(codes, vocab)
    declared = read_declarations(domains, vocab)
    ndjson, jsons = _files(path)

    staging = Staging(raw)
    staging.create()
    notes = []
    for file in ndjson:
        if not staging.add_ndjson(file, file.name):
            notes.append(f"{file}: not FHIR (its first line has no resourceType, e.g. a bulk-export "
                         f"log); skipped.")
    for file in jsons:
        if not staging.add_json(file):
            notes.append(f"{file}: not a FHIR resource or Bundle (no resourceType); skipped.")
    staging.flush(force=True)
    if not staging.resources and not staging.malformed:
        raise SourceError(f"{path}: no FHIR resources of the types read ({', '.join(READ_NOTE)}) "
                          f"were found.")

    raw.register("_fhir_codes_frame", code_map)
    raw.execute("CREATE OR REPLACE TEMP TABLE _fhir_codes AS SELECT key, kind, target, priority "
                "FROM _fhir_codes_frame")
    raw.unregister("_fhir_codes_frame")
    register_vocabulary(raw, vocab)
    loader = _Loader(con, str(path), vocab, tz, settings)
    try:
        with load_transaction(raw):  # every table or none (sources/atomic.py)
            on_commit(raw, lambda: record_load(raw, loader.report, reader="fhir", tz=tz))
            _load_all(loader, raw, settings)
            _malformed(loader, staging)
            site_vocab = with_site_codes(vocab, list(codes) if isinstance(codes, (list, tuple))
                                         else [codes] if codes else [])  # --codes rows too
            derive_infections(raw, loader.report, site_vocab)
            derive_suspected_infections(raw, loader.report)
            record_domains(raw, loader.report, vocab, reader="fhir", declared=declared)
    finally:
        cleanup(raw, [f"DROP TABLE IF EXISTS _fhir_{name}" for name in (
            "loc", "keys", "patient", "encounter", "location", "medication", "device", "obs", "med",
            "proc", "proc_codes", "cond", "codes", "obs_var", "med_drug", "proc_sup", "route")])
    report = loader.report
    report.notes = notes + report.notes
    if staging.ignored:
        report.notes.append("resource types not read: " + ", ".join(
            f"{k} {v:,}" for k, v in sorted(staging.ignored.items())) + ".")
    order = ["person", "stay", "measurement", "drug_administration", "organ_support", "condition",
             "event"]
    report.tables.sort(key=lambda t: order.index(t.table) if t.table in order else len(order))
    return report


READ_NOTE = ("Patient", "Encounter", "Observation", "MedicationAdministration",
             "MedicationRequest", "Procedure", "DeviceUseStatement", "Condition")


def _load_all(loader: _Loader, raw, s: FhirSettings) -> None:
    # person ------------------------------------------------------------------------------
    loader.load("person", """SELECT seq AS _line, rid AS person_id, birth_date,
        CASE gender WHEN 'other' THEN 'unknown' ELSE gender END AS sex FROM _fhir_patient""", None)

    # stay: PICU encounters only --------------------------------------------------------------
    raw.execute(f"""CREATE OR REPLACE TEMP TABLE _fhir_picu AS
        WITH l AS (SELECT e.seq, bool_or(
                      list_has_any(list_transform(loc.type_codes, c -> split_part(c, '|', 2)),
                                   {_list(s.picu_location_types)})
                      OR regexp_matches(lower(coalesce(loc.name, '')), {_q(s.picu_location_pattern)}))
                      AS by_location
                   FROM (SELECT seq, unnest(location_refs) AS ref FROM _fhir_encounter) e
                   JOIN _fhir_keys k ON k.key = e.ref AND k.rtype = 'Location'
                   JOIN _fhir_location loc ON loc.rid = k.rid GROUP BY e.seq)
        SELECT e.seq FROM _fhir_encounter e LEFT JOIN l USING (seq)
        WHERE coalesce(l.by_location, false)
           OR e.class_code IN {_in_list(s.picu_encounter_classes)}
           OR list_bool_or(list_transform(e.location_text,
                  t -> regexp_matches(lower(t), {_q(s.picu_location_pattern)})))""")
    pj, pe = _person("e.subject", "pk")
    loader.load("stay", f"""SELECT e.seq AS _line, e.rid AS stay_id, {pe} AS person_id,
        e.start_time AS admit_time, e.end_time AS discharge_time, e.reason AS admission_reason,
        e.weight_kg FROM _fhir_encounter e SEMI JOIN _fhir_picu p ON p.seq = e.seq {pj}
        WHERE e.status_reason IS NULL""",
        """SELECT e.seq, e.status_reason AS reason, e.status_detail AS detail,
           json_object('id', e.rid, 'subject', e.subject) AS raw
           FROM _fhir_encounter e SEMI JOIN _fhir_picu p ON p.seq = e.seq
           WHERE e.status_reason IS NOT NULL""")
    n_enc, n_picu = raw.execute("SELECT count(*), (SELECT count(*) FROM _fhir_picu) "
                                "FROM _fhir_encounter").fetchone()
    if n_enc:
        classes = raw.execute("""SELECT coalesce(class_code, '(none)'), count(*) FROM _fhir_encounter
            WHERE seq NOT IN (SELECT seq FROM _fhir_picu) GROUP BY 1 ORDER BY 2 DESC""").fetchall()
        loader.report.notes.append(
            f"{n_enc:,} Encounters read, {n_picu:,} PICU stays (settings: location types "
            f"{', '.join(s.picu_location_types)}, pattern '{s.picu_location_pattern}', classes "
            f"{', '.join(s.picu_encounter_classes) or 'none'}); not PICU, not loaded as stays: "
            + (", ".join(f"class {c} {n:,}" for c, n in classes) or "none") + ".")

    # measurement -----------------------------------------------------------------------------
    raw.execute(_code_match("_fhir_obs", "codes", "measurement", "_fhir_obs_var"))
    # an Observation coded as a test for infection (a culture: event,infection_test rows of
    # codes.csv) is an event 'infection_test' whatever its value (clinical reference §5.1)
    raw.execute(_code_match("_fhir_obs", "codes", "event", "_fhir_obs_test"))
    raw.execute(f"DELETE FROM _fhir_obs_test WHERE target IS DISTINCT FROM {_q(INFECTION_TEST)}")
    pj, pe = _person("o.subject", "pk")
    sj, se = _stay("o.encounter", "ek")
    loader.load("measurement", f"""SELECT o.seq AS _line, {pe} AS person_id, {se} AS stay_id,
        o.time, v.target AS variable, o.value, o.unit
        FROM _fhir_obs o JOIN _fhir_obs_var v ON v.seq = o.seq {pj} {sj}
        WHERE o.status_reason IS NULL""",
        """SELECT o.seq, CASE WHEN o.status_reason = 'not_done' THEN 'not_done'
                WHEN v.target IS NULL THEN 'unknown_code' ELSE o.status_reason END AS reason,
           CASE WHEN o.status_reason = 'not_done' OR v.target IS NOT NULL THEN o.status_detail
                ELSE 'no code of ' || coalesce(array_to_string(o.codes, ', '), '(none)') || ' ('
                     || coalesce(o.code_text, '') || ') is in the dictionary (vocabulary/'
                     || 'codes.csv, or a site file passed with --codes); not loaded.' END AS detail,
           json_object('codes', o.codes, 'text', o.code_text, 'value', o.value, 'unit', o.unit,
                       'time', o.time) AS raw
           FROM _fhir_obs o LEFT JOIN _fhir_obs_var v ON v.seq = o.seq
           WHERE (o.status_reason IS NOT NULL OR v.target IS NULL)
             AND o.seq NOT IN (SELECT seq FROM _fhir_obs_test)""")

    # drugs: code -> drug, else first word of the text; vasoactives are organ support -----------
    raw.execute(f"""CREATE OR REPLACE TEMP TABLE _fhir_med_codes AS
        SELECT m.seq, list_concat(m.codes, coalesce(md.codes, [])) AS codes
        FROM _fhir_med m {_referenced("Medication", "_fhir_medication", "m.med_ref", "mk", "md")}""")
    raw.execute(_code_match("_fhir_med_codes", "codes", "drug", "_fhir_med_drug"))
    raw.execute(_code_match("_fhir_med", "route_codes", "route", "_fhir_route"))
    requests = "" if s.read_requests else " AND m.kind <> 'MedicationRequest'"
    raw.execute(f"""CREATE OR REPLACE TEMP TABLE _fhir_med_resolved AS
        SELECT m.*, coalesce(d.target, dn.drug, m.med_text || coalesce(' (' ||
               array_to_string(mc.codes, ', ') || ')', ''), array_to_string(mc.codes, ', '))
               AS drug_staged,
               coalesce(d.target, dn.drug) AS drug_name,
               coalesce((SELECT min(drug_class) FROM drug_names_frame f
                         WHERE f.name_key = coalesce(d.target, dn.drug)), '') AS drug_class,
               coalesce(r.target, lower(m.route_text)) AS route
        FROM _fhir_med m JOIN _fhir_med_codes mc ON mc.seq = m.seq
        LEFT JOIN _fhir_med_drug d ON d.seq = m.seq
        LEFT JOIN _fhir_route r ON r.seq = m.seq
        LEFT JOIN (SELECT DISTINCT ON (name_key) name_key, drug FROM drug_names_frame
                   ORDER BY name_key, drug) dn
               ON dn.name_key = regexp_extract(lower(m.med_text), '^[a-z][a-z-]*')
        WHERE true {requests}""")
    dose_known = f"{fold_unit_sql('m.rate_unit')} IN (SELECT unit_key FROM dose_units_frame)"
    pj, pe = _person("m.subject", "pk")
    sj, se = _stay("m.encounter", "ek")
    loader.load("drug_administration", f"""SELECT m.seq AS _line, {pe} AS person_id,
        {se} AS stay_id, m.drug_staged AS drug,
        CASE WHEN m.dose IS NOT NULL THEN m.dose WHEN {dose_known} THEN m.rate END AS dose,
        CASE WHEN m.dose IS NOT NULL THEN m.dose_unit WHEN {dose_known} THEN m.rate_unit END
            AS dose_unit,
        m.route, m.start_time, m.end_time, m.weight_kg
        FROM _fhir_med_resolved m {pj} {sj}
        WHERE m.status_reason IS NULL AND m.drug_class <> 'vasoactive'""",
        """SELECT m.seq, m.status_reason AS reason, m.status_detail AS detail,
           json_object('drug', m.drug_staged, 'start', m.start_time) AS raw
           FROM _fhir_med_resolved m WHERE m.status_reason IS NOT NULL
             AND m.drug_class <> 'vasoactive'""")

    # organ support: vasoactive administrations (rate in ug/kg/min) + support Procedures and
    # DeviceUseStatements (the code of a DeviceUseStatement is its Device's type) ---------------
    raw.execute(f"""CREATE OR REPLACE TEMP TABLE _fhir_proc_codes AS
        SELECT p.seq, list_concat(p.codes, coalesce(d.codes, [])) AS codes,
               coalesce(d.text, p.text) AS text,
               p.device_ref IS NOT NULL AND dk.rid IS NULL AS device_missing
        FROM _fhir_proc p {_referenced("Device", "_fhir_device", "p.device_ref", "dk", "d")}""")
    raw.execute(_code_match("_fhir_proc_codes", "codes", "support", "_fhir_proc_sup"))
    pj, pe = _person("m.subject", "pk")
    sj, se = _stay("m.encounter", "ek")
    pj2, pe2 = _person("p.subject", "pk")
    sj2, se2 = _stay("p.encounter", "ek")
    loader.load("organ_support", f"""
        SELECT m.seq AS _line, {pe} AS person_id, {se} AS stay_id, m.drug_name AS support,
               m.start_time, m.end_time, coalesce(m.rate, m.dose) AS dose,
               CASE WHEN m.rate IS NOT NULL THEN m.rate_unit ELSE m.dose_unit END AS dose_unit
        FROM _fhir_med_resolved m {pj} {sj}
        WHERE m.status_reason IS NULL AND m.drug_class = 'vasoactive'
        UNION ALL
        SELECT p.seq, {pe2}, {se2}, ps.target, p.start_time, p.end_time, NULL, NULL
        FROM _fhir_proc p JOIN _fhir_proc_sup ps ON ps.seq = p.seq {pj2} {sj2}
        WHERE p.status_reason IS NULL""",
        """SELECT m.seq, m.status_reason AS reason, m.status_detail AS detail,
                  json_object('drug', m.drug_staged, 'start', m.start_time) AS raw
           FROM _fhir_med_resolved m WHERE m.status_reason IS NOT NULL
             AND m.drug_class = 'vasoactive'
           UNION ALL
           SELECT p.seq, CASE WHEN p.status_reason IS NOT NULL THEN p.status_reason
                              ELSE 'unknown_code' END,
                  CASE WHEN p.status_reason IS NOT NULL THEN p.status_detail
                  WHEN pc.device_missing THEN 'DeviceUseStatement.device ' || p.device_ref
                  || ' is not a Device of this load (same Bundle, Device NDJSON file or '
                  || 'contained): its type, the organ-support code, is unknown; not loaded.'
                  ELSE CASE p.kind WHEN 'DeviceUseStatement' THEN 'Device type '
                       ELSE 'Procedure code ' END
                  || coalesce(nullif(array_to_string(pc.codes, ', '), ''), '(none)') || ' ('
                  || coalesce(pc.text, '') || ') is not an organ-support code of '
                  || 'vocabulary/codes.csv (or a site file passed with --codes); not loaded.'
                  END AS detail,
                  json_object('codes', pc.codes, 'text', pc.text, 'start', p.start_time,
                              'device', p.device_ref)
           FROM _fhir_proc p JOIN _fhir_proc_codes pc ON pc.seq = p.seq
           LEFT JOIN _fhir_proc_sup ps ON ps.seq = p.seq
           WHERE p.status_reason IS NOT NULL OR ps.target IS NULL""")

    # condition (Conditions carrying hyperinflam's event category are events) ------------------
    labels = " ".join(f"WHEN {_q(k)} THEN {_q(v)}" for k, v in SYSTEM_LABELS.items())
    pj, pe = _person("c.subject", "pk")
    sj, se = _stay("c.encounter", "ek")
    loader.load("condition", f"""SELECT c.seq AS _line, {pe} AS person_id, {se} AS stay_id,
        coalesce(c.text, array_to_string(c.codes, ', ')) AS condition,
        CASE split_part(c.codes[1], '|', 1) {labels} ELSE nullif(split_part(c.codes[1], '|', 1), '')
        END AS code_system, nullif(split_part(c.codes[1], '|', 2), '') AS code,
        c.onset AS onset_time,
        CASE WHEN list_has_any(c.categories, {_list(s.underlying_categories)}) THEN 'true'
             ELSE 'false' END AS is_underlying
        FROM _fhir_cond c {pj} {sj} WHERE c.event_type IS NULL AND c.status_reason IS NULL""",
        """SELECT c.seq, c.status_reason AS reason, c.status_detail AS detail,
           json_object('codes', c.codes, 'text', c.text) AS raw
           FROM _fhir_cond c WHERE c.event_type IS NULL AND c.status_reason IS NOT NULL""")

    # event: Patient.deceased[x] and event Conditions -------------------------------------------
    pj2, pe2 = _person("c.subject", "pk")
    pjo, po = _person("o.subject", "pk")
    sjo, so = _stay("o.encounter", "ek")
    loader.load("event", f"""
        SELECT p.seq AS _line, p.rid AS person_id, NULL AS stay_id, 'death' AS event_type,
               p.deceased_time AS time, NULL AS detail
        FROM _fhir_patient p WHERE p.deceased IS NOT NULL
        UNION ALL
        SELECT c.seq, {pe2}, {se}, c.event_type, c.onset, c.text
        FROM _fhir_cond c {pj2} {sj} WHERE c.event_type IS NOT NULL AND c.status_reason IS NULL
        UNION ALL
        SELECT o.seq, {po}, {so}, {_q(INFECTION_TEST)}, o.time,
               coalesce(o.code_text, array_to_string(o.codes, ', '))
        FROM _fhir_obs o SEMI JOIN _fhir_obs_test t ON t.seq = o.seq {pjo} {sjo}
        WHERE o.status_reason IS NULL OR o.status_reason IN {OBS_TEST_VALUE_REASONS}""",
        f"""SELECT c.seq, c.status_reason AS reason, c.status_detail AS detail,
           json_object('event', c.event_type, 'text', c.text) AS raw
           FROM _fhir_cond c WHERE c.event_type IS NOT NULL AND c.status_reason IS NOT NULL
           UNION ALL
           SELECT o.seq, o.status_reason, o.status_detail,
                  json_object('codes', o.codes, 'text', o.code_text, 'time', o.time)
           FROM _fhir_obs o SEMI JOIN _fhir_obs_test t ON t.seq = o.seq
           WHERE o.status_reason IS NOT NULL
             AND o.status_reason NOT IN {OBS_TEST_VALUE_REASONS}""")
    raw.execute("DROP TABLE IF EXISTS _fhir_obs_test")
    raw.execute("DROP TABLE IF EXISTS _fhir_med_codes")
    raw.execute("DROP TABLE IF EXISTS _fhir_proc_codes")
    raw.execute("DROP TABLE IF EXISTS _fhir_med_resolved")


def _list(values) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]::VARCHAR[]"


def _malformed(loader: _Loader, staging: Staging) -> None:
    """Quarantine lines that are not valid JSON (file:line), under the table their file holds."""
    raw = loader.raw
    unknown = 0
    for file, line, message, table in staging.malformed:
        target = table or "(unknown)"
        forget_rows(raw, "quarantine", "target_table = ? AND source_file = ? AND source_line = ? "
                    "AND reason = 'malformed_line'", [target, file, line])
        raw.execute("INSERT INTO quarantine VALUES (?, ?, ?, 'malformed_line', ?, NULL)",
                    [target, file, line, f"{Path(file).name} line {line}: {message}. Fix or "
                     f"remove the line; the rest of the file was loaded."])
        counts = next((t for t in loader.report.tables if t.table == target), None)
        if counts is None:  # a file that is not JSON at all: counted on a row of its own
            unknown += table is None
            counts = TableLoadCounts(table=target, source=file)
            loader.report.tables.append(counts)
            loader.report.notes.append(f"{file}:{line}: {message}; quarantined, no table.")
        counts.read += 1
        counts.quarantined += 1
        counts.reasons["malformed_line"] = counts.reasons.get("malformed_line", 0) + 1
        if isinstance(counts, TableLoadCounts):
            counts.examples.setdefault("malformed_line", f"{Path(file).name}:{line}")

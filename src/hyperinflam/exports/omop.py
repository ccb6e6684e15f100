"""Write the canonical tables as an OMOP CDM 5.4 schema (issue 5 items 2 and 6).

``export_omop(con, target, schema="cdm")`` creates a fresh CDM 5.4 schema from the official DDL
(OHDSI/CommonDataModel v5.4.2, shipped as ``hyperinflam/omop_cdm54/ddl``; ``@cdmDatabaseSchema``
replaced) in a DuckDB file or in PostgreSQL (a ``postgresql://`` URL, through DuckDB's postgres
extension loaded from the wheel), and fills it set-based: one ``INSERT ... SELECT`` per OMOP
table, run by DuckDB over the canonical tables; no row passes through Python. Reading the
schema back with :func:`hyperinflam.sources.omop.load_omop` (``ids='source_value'``) gives
identical canonical tables (tests/test_roundtrip_omop.py).

The encoding (documented in docs/sources-omop.md; codes are data in vocabulary/codes.csv,
clinical reference §11.3-§11.5):

* ids: OMOP integer ids are dense ranks of the canonical ids; the canonical ids are kept in
  ``person_source_value`` and ``visit_source_value`` / ``visit_detail_source_value``.
* person: gender 8507 / 8532 (unknown: 0) with ``gender_source_value`` = the canonical sex;
  year / month / day of birth and ``birth_datetime``; race and ethnicity 0.
* stay: one inpatient ``visit_occurrence`` (9201) and one ``visit_detail`` (first ``picu_visit``
  code, 32037 Intensive Care) per stay. A stay still open (no discharge) gets the date of the
  data pull as end date and no end datetime (CDM convention), and ``cdm_source.
  source_release_date`` is that date. Admission weight and reason: ``observation`` rows with
  the local concepts 2000000001 (value_as_number, kg) and 2000000002 (value_as_string).
* measurement: concept = the variable's first code row with a concept id (else concept 0 and
  ``measurement_source_value`` = its LOINC / local code); ``value_as_number`` and
  ``value_source_value`` = the value as received, ``unit_concept_id`` = the UCUM concept whose
  code is exactly the unit as received (``unit`` rows), else 0 with ``unit_source_value`` = that
  unit. The reader converts to the canonical unit again, through the same units.csv.
* drug_administration and vasoactive organ_support: ``drug_exposure`` with the ingredient concept
  (the concept id of the drug's RxNorm row in codes.csv; else a local RxNorm-coded ingredient
  concept 2000000100 + its row in drugs.csv; else 0 with ``drug_source_value``), ``quantity`` = dose,
  ``dose_unit_source_value``, route concept and source value. A missing end is written as
  drug_exposure_end_date = start date, no end datetime and no ``verbatim_end_date`` (the end
  date is mandatory and then derived, CDM convention). Dosing weight: ``observation`` 2000000003
  with ``observation_event_id`` = drug_exposure_id.
* respiratory support (invasive ventilation and the other kinds of supports.csv):
  ``procedure_occurrence`` with the kind's first ``support`` code with a concept id (invasive
  ventilation 4230167) and its end datetime (CDM 5.4); a kind whose first code is a device
  ("physical object", e.g. high-flow nasal cannula 4139525): ``device_exposure``.
* condition: ``condition_occurrence`` with one local concept (2000001000 + k) per (name, code
  system, code), so the reader gets name, system and code back from ``concept``; uncoded
  conditions: concept 0 and ``condition_source_value``. ``condition_status_source_value`` =
  'underlying' / 'acute', plus '; onset unknown' when the onset is empty (the start date, which
  is mandatory, is then the stay's admission date, else the birth date).
* event: ``observation`` rows with local concepts 2000000004 (infection) / 2000000005 (death) /
  2000000006 (infection_test: a test for infection ordered, e.g. a culture; never the infection
  concept) carrying time, stay and detail; each person's first death also in ``death``.
* ``concept``: every concept the rows use (names are hyperinflam's labels: load the OHDSI
  vocabulary over it for official names); ``cdm_source``: cdm_version 5.4.

DuckDB targets: the DuckDB DDL declares ``NUMERIC``, which DuckDB stores as DECIMAL(18,3) and which
would round e.g. vasopressin 0.0004 U/kg/min to 0.000; those columns (``float`` in the CDM
field-level specification) are created as DOUBLE. PostgreSQL keeps ``NUMERIC`` (exact).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from hyperinflam import __version__
from hyperinflam.errors import SourceError
from hyperinflam.sources.ingest import _q
from hyperinflam.sources.omop.access import load_postgres_extension, redact_url
from hyperinflam.sources.omop.mapping import read_codes
from hyperinflam.vocabulary import EVENT_TYPES, INVASIVE_VENTILATION, Vocabulary

__all__ = ["export_omop", "DDL_DIR", "TYPE_CONCEPT_EHR", "INPATIENT_VISIT", "LOCAL_DRUG_BASE",
           "LOCAL_CONDITION_BASE", "TARGET"]

#: Folder of the official CDM 5.4 DDL (``duckdb/`` and ``postgresql/``), shipped in the package
#: (``hyperinflam/omop_cdm54``, see its SOURCE.md), unless HYPERINFLAM_OMOP_DDL names another.
DDL_DIR = Path(str(resources.files("hyperinflam") / "omop_cdm54" / "ddl"))
#: Type Concept 'EHR' (OMOP 5.4 Type Concept vocabulary; VERIFY in your vocabulary release).
TYPE_CONCEPT_EHR = 32817
#: visit_occurrence concept of a stay: Inpatient Visit (Eunomia concept table).
INPATIENT_VISIT = 9201
#: CDM version concept written to cdm_source (the id Eunomia's 5.4 cdm_source carries).
CDM_VERSION_CONCEPT = 756265
#: Local concept ids (OMOP reserves ids above 2,000,000,000 for site concepts).
LOCAL_DRUG_BASE = 2_000_000_100
LOCAL_CONDITION_BASE = 2_000_001_000
TARGET = "_omop_out"
#: The code system of hyperinflam's local concepts in codes.csv (and of their concept rows).
LOCAL_VOCABULARY = "hyperinflam"

_TABLES_WRITTEN = ("person", "visit_occurrence", "visit_detail", "measurement", "drug_exposure",
                   "procedure_occurrence", "condition_occurrence", "observation", "death",
                   "concept", "cdm_source")
#: Text columns with their CDM 5.4 lengths that receive free text (checked before writing).
_LIMITS = (("condition", "condition", 255, "concept.concept_name"),
           ("condition", "code_system", 20, "concept.vocabulary_id"),
           ("condition", "code", 50, "concept.concept_code"),
           ("stay", "admission_reason", 60, "observation.value_as_string"),
           ("event", "detail", 60, "observation.value_as_string"),
           ("measurement", "value_original", 50, "measurement.value_source_value"),
           ("measurement", "unit_original", 50, "measurement.unit_source_value"),
           ("person", "person_id", 50, "person.person_source_value"),
           ("stay", "stay_id", 50, "visit_detail.visit_detail_source_value"),
           ("drug_administration", "route", 50, "drug_exposure.route_source_value"))


def _ddl_dir() -> Path:
    import os

    folder = Path(os.environ.get("HYPERINFLAM_OMOP_DDL", DDL_DIR))
    if not folder.is_dir():
        raise SourceError(f"{folder}: the official OMOP CDM 5.4 DDL folder (duckdb/, postgresql/) "
                          f"is missing; set HYPERINFLAM_OMOP_DDL to its path (OHDSI/"
                          f"CommonDataModel inst/ddl/5.4).")
    return folder


def _ddl(dialect: str, target_schema: str) -> str:
    path = _ddl_dir() / dialect / f"omopcdm_{dialect}_5.4_ddl.sql"
    if not path.is_file():
        raise SourceError(f"{path}: DDL file missing.")
    text = path.read_text(encoding="utf-8").replace("@cdmDatabaseSchema", target_schema)
    if dialect == "duckdb":
        text = re.sub(r"\bNUMERIC\b", "DOUBLE", text)
    return text


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# ---------------------------------------------------------------------------------------------
def export_omop(con, target: str | Path, *, schema: str = "cdm", codes: str | Path | None = None,
                vocabulary: Vocabulary | None = None) -> dict[str, int]:
    """Write the canonical tables of ``con`` as a new OMOP CDM 5.4 schema ``schema`` in
    ``target`` (a DuckDB file, created if needed, or a ``postgresql://`` URL).

    Returns the rows written per OMOP table. Raises :class:`SourceError` (one clear message) when
    the schema already holds tables, the connection fails, or a text is longer than its CDM
    column. ``codes``: a site codes file (layout of vocabulary/codes.csv) whose rows come first.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", schema):
        raise SourceError(f"schema '{schema}': use letters, digits and _ (e.g. cdm).")
    vocab = vocabulary if vocabulary is not None else Vocabulary()
    raw = con.con
    _check_lengths(raw)
    code_rows = read_codes(codes, vocab)
    is_pg = str(target).startswith(("postgresql://", "postgres://"))
    raw.execute(f"DETACH DATABASE IF EXISTS {TARGET}")
    created = False
    try:
        if is_pg:
            _create_postgres(raw, str(target), schema)
        else:
            _create_duckdb(raw, Path(target), schema)
        created = True
        out = f"{TARGET}.{_ident(schema)}"
        _Writer(raw, out, vocab, code_rows).run()
        counts = {t: raw.execute(f"SELECT count(*) FROM {out}.{t}").fetchone()[0]
                  for t in _TABLES_WRITTEN}
    except BaseException:
        if created:  # never leave a half-written schema behind
            drop = f"DROP SCHEMA IF EXISTS {_ident(schema)} CASCADE"
            if is_pg:
                raw.execute(f"CALL postgres_execute('{TARGET}', {_q(drop)})")
            else:
                raw.execute(f"DROP SCHEMA IF EXISTS {TARGET}.{_ident(schema)} CASCADE")
        raise
    finally:
        for t in ("_x_person", "_x_stay", "_x_concept", "_x_var", "_x_unit", "_x_drug",
                  "_x_route", "_x_cond", "_x_drug_rows"):
            raw.execute(f"DROP TABLE IF EXISTS {t}")
        raw.execute(f"DETACH DATABASE IF EXISTS {TARGET}")
    return counts


def _check_lengths(raw) -> None:
    for table, column, limit, where in _LIMITS:
        row = raw.execute(f"SELECT {column}, count(*) OVER () FROM {table} "
                          f"WHERE length({column}) > {limit} LIMIT 1").fetchone()
        if row:
            raise SourceError(f"{table}.{column}: {row[1]} value(s) longer than {limit} characters "
                              f"(OMOP column {where}), e.g. '{row[0][:80]}'. Shorten them before "
                              f"exporting to OMOP.")


def _create_duckdb(raw, path: Path, schema: str) -> None:
    if path.exists() and path.is_dir():
        raise SourceError(f"{path} is a folder; give a DuckDB file name (e.g. site-omop.duckdb).")
    try:
        raw.execute(f"ATTACH {_q(str(path))} AS {TARGET} (READ_WRITE)")
    except Exception as exc:
        raise SourceError(f"{path}: cannot be opened as a DuckDB database "
                          f"({str(exc).splitlines()[0]}).") from None
    n = raw.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND "
                    "schema_name = ?", [TARGET, schema]).fetchone()[0]
    if n:
        raise SourceError(f"{path}: schema '{schema}' already holds {n} tables; export into a new "
                          f"schema (--schema NAME) or a new file.")
    raw.execute(f"CREATE SCHEMA IF NOT EXISTS {TARGET}.{_ident(schema)}")
    raw.execute(_ddl("duckdb", f"{TARGET}.{_ident(schema)}"))


def _create_postgres(raw, url: str, schema: str) -> None:
    load_postgres_extension(raw)
    try:
        raw.execute(f"ATTACH {_q(url)} AS {TARGET} (TYPE postgres)")
    except Exception as exc:
        raise SourceError(f"cannot connect to {redact_url(url)}: {str(exc).splitlines()[0]} Check "
                          f"host, port, database and user (postgresql://user@host:5432/db).") \
            from None
    exists = raw.execute("SELECT count(*) FROM duckdb_schemas() WHERE database_name = ? AND "
                         "schema_name = ?", [TARGET, schema]).fetchone()[0]
    if exists:
        raise SourceError(f"{redact_url(url)}: schema '{schema}' already exists; export into a new "
                          f"schema (--schema NAME) or drop it first.")
    raw.execute(f"CALL postgres_execute('{TARGET}', {_q('CREATE SCHEMA ' + _ident(schema))})")
    raw.execute(f"CALL postgres_execute('{TARGET}', ?)", [_ddl("postgresql", _ident(schema))])
    raw.execute("CALL pg_clear_cache()")


# ---------------------------------------------------------------------------------------------
class _Writer:
    """The INSERT ... SELECT statements, one per OMOP table, over the canonical tables."""

    def __init__(self, raw, out: str, vocab: Vocabulary, code_rows: list[dict]):
        self.raw, self.out, self.vocab, self.codes = raw, out, vocab, code_rows

    def first(self, kind: str, target: str | None = None, system: str | None = None
              ) -> dict | None:
        for r in self.codes:
            if r["kind"].strip() == kind and (target is None or r["target"].strip() == target) \
                    and (system is None or (r.get("vocabulary_id") or "").strip() == system) \
                    and (r.get("concept_id") or "").strip():
                return r
        return None

    def insert(self, table: str, select_sql: str) -> None:
        self.raw.execute(f"INSERT INTO {self.out}.{table} BY NAME {select_sql}")

    def run(self) -> None:
        self.lookups()
        self.persons()
        self.stays()
        self.measurements()
        self.drugs()
        self.ventilation()
        self.conditions()
        self.observations()
        self.deaths()
        self.concepts()
        self.cdm_source()

    # -- small lookup tables (vocabulary rows, not patient rows) -------------------------------
    def lookups(self) -> None:
        raw = self.raw
        variables = []
        for name, var in self.vocab.variables.items():
            rows = [r for r in self.codes if r["kind"].strip() == "measurement"
                    and r["target"].strip() == name]
            with_id = [r for r in rows if (r.get("concept_id") or "").strip()]
            with_code = [r for r in rows if (r.get("concept_code") or "").strip()]
            pick = with_id[0] if with_id else (with_code[0] if with_code else None)
            if pick is None:
                continue  # the export fails below if a measurement of this variable exists
            variables.append((name, int(pick["concept_id"]) if pick in with_id else 0,
                              (pick.get("concept_code") or "").strip() or None,
                              (pick.get("vocabulary_id") or "").strip() or None,
                              getattr(var, "label", name)))
        raw.execute("CREATE OR REPLACE TEMP TABLE _x_var (variable VARCHAR, concept_id BIGINT, "
                    "code VARCHAR, vocabulary_id VARCHAR, label VARCHAR)")
        raw.executemany("INSERT INTO _x_var VALUES (?, ?, ?, ?, ?)", variables)
        missing = raw.execute("SELECT DISTINCT variable FROM measurement WHERE variable NOT IN "
                              "(SELECT variable FROM _x_var) ORDER BY 1").fetchall()
        if missing:
            raise SourceError(f"no OMOP code for variable(s) {', '.join(m[0] for m in missing)}: "
                              f"add a 'measurement' row to a codes file (--codes).")
        units = {}
        for r in self.codes:
            if r["kind"].strip() == "unit" and (r.get("concept_id") or "").strip():
                units.setdefault(r["concept_code"].strip(), int(r["concept_id"]))
        raw.execute("CREATE OR REPLACE TEMP TABLE _x_unit (ucum VARCHAR, concept_id BIGINT)")
        raw.executemany("INSERT INTO _x_unit VALUES (?, ?)", list(units.items()))
        drugs = []
        for i, (name, info) in enumerate(self.vocab.drugs.items()):
            cid = (info.get("omop_ingredient_concept_id") or "").strip()
            rx = (info.get("rxnorm_ingredient") or "").strip()
            if cid:
                drugs.append((name, int(float(cid)), "RxNorm", rx or None, False))
            elif rx:
                drugs.append((name, LOCAL_DRUG_BASE + i, "RxNorm", rx, True))
            else:
                drugs.append((name, 0, None, None, False))
        raw.execute("CREATE OR REPLACE TEMP TABLE _x_drug (drug VARCHAR, concept_id BIGINT, "
                    "vocabulary_id VARCHAR, code VARCHAR, local BOOLEAN)")
        raw.executemany("INSERT INTO _x_drug VALUES (?, ?, ?, ?, ?)", drugs)
        routes = {}
        for r in self.codes:
            if r["kind"].strip() == "route" and (r.get("concept_id") or "").strip():
                routes.setdefault(r["target"].strip(), (int(r["concept_id"]),
                                                        r["vocabulary_id"], r["concept_code"]))
        raw.execute("CREATE OR REPLACE TEMP TABLE _x_route (route VARCHAR, concept_id BIGINT, "
                    "vocabulary_id VARCHAR, code VARCHAR)")
        raw.executemany("INSERT INTO _x_route VALUES (?, ?, ?, ?)",
                        [(k, *v) for k, v in routes.items()])
        self.picu = self.first("picu_visit")
        self.vent = self.first("support", INVASIVE_VENTILATION)
        self.supports = {kind: row for kind in self.vocab.supports
                         if (row := self.first("support", kind)) is not None}
        raw.execute("CREATE OR REPLACE TEMP TABLE _x_support (support VARCHAR, concept_id BIGINT, "
                    "is_device BOOLEAN)")
        raw.executemany("INSERT INTO _x_support VALUES (?, ?, ?)", [
            (kind, int(row["concept_id"]), "physical object" in (row.get("display") or ""))
            for kind, row in self.supports.items()])
        self.local = {kind: self.first(kind) for kind in ("stay_weight", "stay_reason",
                                                          "dosing_weight")}
        # one local concept per event type (a culture's LOINC row is a code the reader
        # recognises, not the concept every infection_test is written with)
        self.events = {t: self.first("event", t, LOCAL_VOCABULARY) for t in EVENT_TYPES}
        self.sex = {t: self.first("sex", t) for t in ("male", "female")}
        for what, row in (("picu_visit", self.picu), (f"support {INVASIVE_VENTILATION}", self.vent),
                          *self.local.items(), *(("event " + k, v) for k, v in self.events.items())):
            if row is None:
                raise SourceError(f"vocabulary/codes.csv has no '{what}' row with a concept_id; the "
                                  f"export needs it.")
        # ids: dense ranks of the canonical ids
        raw.execute("""CREATE OR REPLACE TEMP TABLE _x_person AS
            SELECT person_id, birth_date, row_number() OVER (ORDER BY person_id) AS omop_id
            FROM person""")
        raw.execute("""CREATE OR REPLACE TEMP TABLE _x_stay AS
            SELECT s.stay_id, s.person_id, s.admit_time, p.omop_id AS omop_person_id,
                   row_number() OVER (ORDER BY s.stay_id) AS visit_id
            FROM stay s JOIN _x_person p USING (person_id)""")
        raw.execute(f"""CREATE OR REPLACE TEMP TABLE _x_cond AS
            SELECT condition, code_system, code,
                   {LOCAL_CONDITION_BASE} + row_number() OVER (ORDER BY condition, code_system, code)
                       - 1 AS concept_id
            FROM (SELECT DISTINCT condition, code_system, code FROM condition
                  WHERE code_system IS NOT NULL AND code IS NOT NULL)""")

    def _visit(self, alias: str) -> str:
        return f"LEFT JOIN _x_stay {alias} ON {alias}.stay_id = x.stay_id"

    # -- tables ---------------------------------------------------------------------------------
    def persons(self) -> None:
        male, female = (int(self.sex[k]["concept_id"]) if self.sex[k] else 0
                        for k in ("male", "female"))
        self.insert("person", f"""
            SELECT p.omop_id AS person_id,
                   CASE x.sex WHEN 'male' THEN {male} WHEN 'female' THEN {female} ELSE 0 END
                       AS gender_concept_id,
                   year(x.birth_date) AS year_of_birth, month(x.birth_date) AS month_of_birth,
                   day(x.birth_date) AS day_of_birth,
                   CAST(x.birth_date AS TIMESTAMP) AS birth_datetime,
                   0 AS race_concept_id, 0 AS ethnicity_concept_id,
                   x.person_id AS person_source_value, x.sex AS gender_source_value
            FROM person x JOIN _x_person p USING (person_id)""")

    def stays(self) -> None:
        # still in the PICU: the date of the data pull (CDM convention; = source_release_date)
        end_date = "coalesce(CAST(x.discharge_time AS DATE), current_date)"
        self.insert("visit_occurrence", f"""
            SELECT s.visit_id AS visit_occurrence_id, s.omop_person_id AS person_id,
                   {INPATIENT_VISIT} AS visit_concept_id,
                   CAST(x.admit_time AS DATE) AS visit_start_date, x.admit_time AS visit_start_datetime,
                   {end_date} AS visit_end_date, x.discharge_time AS visit_end_datetime,
                   {TYPE_CONCEPT_EHR} AS visit_type_concept_id, x.stay_id AS visit_source_value
            FROM stay x JOIN _x_stay s USING (stay_id)""")
        self.insert("visit_detail", f"""
            SELECT s.visit_id AS visit_detail_id, s.omop_person_id AS person_id,
                   {int(self.picu['concept_id'])} AS visit_detail_concept_id,
                   CAST(x.admit_time AS DATE) AS visit_detail_start_date,
                   x.admit_time AS visit_detail_start_datetime,
                   {end_date} AS visit_detail_end_date, x.discharge_time AS visit_detail_end_datetime,
                   {TYPE_CONCEPT_EHR} AS visit_detail_type_concept_id,
                   x.stay_id AS visit_detail_source_value, s.visit_id AS visit_occurrence_id
            FROM stay x JOIN _x_stay s USING (stay_id)""")

    def measurements(self) -> None:
        self.insert("measurement", f"""
            SELECT row_number() OVER (ORDER BY x.person_id, x.time, x.variable, x.value_original,
                                      x.unit_original) AS measurement_id,
                   p.omop_id AS person_id, v.concept_id AS measurement_concept_id,
                   CAST(x.time AS DATE) AS measurement_date, x.time AS measurement_datetime,
                   {TYPE_CONCEPT_EHR} AS measurement_type_concept_id,
                   TRY_CAST(x.value_original AS DOUBLE) AS value_as_number,
                   coalesce(u.concept_id, 0) AS unit_concept_id,
                   s.visit_id AS visit_occurrence_id, s.visit_id AS visit_detail_id,
                   v.code AS measurement_source_value, x.unit_original AS unit_source_value,
                   x.value_original AS value_source_value
            FROM measurement x JOIN _x_person p USING (person_id)
            JOIN _x_var v ON v.variable = x.variable
            LEFT JOIN _x_unit u ON u.ucum = x.unit_original
            {self._visit('s')}""")

    def _drug_select(self, table: str, drug: str, route: str, first_id: str) -> str:
        return f"""
            SELECT {first_id} + row_number() OVER (ORDER BY x.person_id, x.start_time, {drug},
                                                  x.end_time, x.dose) AS drug_exposure_id,
                   p.omop_id AS person_id, d.concept_id AS drug_concept_id,
                   CAST(x.start_time AS DATE) AS drug_exposure_start_date,
                   x.start_time AS drug_exposure_start_datetime,
                   coalesce(CAST(x.end_time AS DATE), CAST(x.start_time AS DATE))
                       AS drug_exposure_end_date,
                   x.end_time AS drug_exposure_end_datetime,
                   CAST(x.end_time AS DATE) AS verbatim_end_date,
                   {TYPE_CONCEPT_EHR} AS drug_type_concept_id, x.dose AS quantity,
                   r.concept_id AS route_concept_id, {route} AS route_source_value,
                   x.dose_unit AS dose_unit_source_value, {drug} AS drug_source_value,
                   s.visit_id AS visit_occurrence_id, s.visit_id AS visit_detail_id
            FROM {table} x JOIN _x_person p USING (person_id)
            JOIN _x_drug d ON d.drug = {drug}
            LEFT JOIN _x_route r ON r.route = {route}
            {self._visit('s')}"""

    def drugs(self) -> None:
        missing = self.raw.execute("SELECT DISTINCT support FROM organ_support WHERE support NOT IN "
                                   f"({self._kinds}) AND support NOT IN (SELECT drug FROM "
                                   "_x_drug WHERE concept_id <> 0)").fetchall()
        no_code = self.raw.execute(f"SELECT DISTINCT support FROM organ_support WHERE support IN "
                                   f"({self._kinds}) AND support NOT IN (SELECT support FROM "
                                   f"_x_support)").fetchall()
        if no_code:
            raise SourceError(f"organ-support kind(s) {', '.join(m[0] for m in no_code)} have no "
                              f"support code with a concept_id in vocabulary/codes.csv.")
        if missing:
            raise SourceError(f"vasoactive(s) {', '.join(m[0] for m in missing)} have neither an "
                              f"OMOP ingredient concept nor an RxNorm code in vocabulary/codes.csv.")
        self.raw.execute("CREATE OR REPLACE TEMP TABLE _x_drug_rows AS " + self._drug_select(
            "drug_administration", "x.drug", "x.route", "0").replace(
            "AS drug_exposure_id,", "AS drug_exposure_id, x.weight_kg AS _weight_kg,"))
        self.raw.execute("INSERT INTO " + self.out + ".drug_exposure BY NAME SELECT * EXCLUDE "
                         "(_weight_kg) FROM _x_drug_rows")
        first = "(SELECT count(*) FROM drug_administration)"
        self.insert("drug_exposure", self._drug_select(
            f"(SELECT * FROM organ_support WHERE support NOT IN ({self._kinds}))", "x.support",
            "CAST(NULL AS VARCHAR)", first))

    @property
    def _kinds(self) -> str:
        """The organ-support kinds of supports.csv as an SQL list (the rest are vasoactives)."""
        return ", ".join(_q(k) for k in self.vocab.supports)

    def ventilation(self) -> None:
        """Respiratory support: procedure_occurrence, or device_exposure for a device code."""
        rows = f"""FROM organ_support x JOIN _x_person p USING (person_id)
            JOIN _x_support k ON k.support = x.support {self._visit('s')}"""
        order = "ORDER BY x.person_id, x.start_time, x.support"
        self.insert("procedure_occurrence", f"""
            SELECT row_number() OVER ({order}) AS procedure_occurrence_id,
                   p.omop_id AS person_id, k.concept_id AS procedure_concept_id,
                   CAST(x.start_time AS DATE) AS procedure_date, x.start_time AS procedure_datetime,
                   CAST(x.end_time AS DATE) AS procedure_end_date,
                   x.end_time AS procedure_end_datetime,
                   {TYPE_CONCEPT_EHR} AS procedure_type_concept_id,
                   x.support AS procedure_source_value,
                   s.visit_id AS visit_occurrence_id, s.visit_id AS visit_detail_id
            {rows} WHERE NOT k.is_device""")
        self.insert("device_exposure", f"""
            SELECT row_number() OVER ({order}) AS device_exposure_id,
                   p.omop_id AS person_id, k.concept_id AS device_concept_id,
                   CAST(x.start_time AS DATE) AS device_exposure_start_date,
                   x.start_time AS device_exposure_start_datetime,
                   CAST(x.end_time AS DATE) AS device_exposure_end_date,
                   x.end_time AS device_exposure_end_datetime,
                   {TYPE_CONCEPT_EHR} AS device_type_concept_id,
                   x.support AS device_source_value,
                   s.visit_id AS visit_occurrence_id, s.visit_id AS visit_detail_id
            {rows} WHERE k.is_device""")

    def conditions(self) -> None:
        self.insert("condition_occurrence", f"""
            SELECT row_number() OVER (ORDER BY x.person_id, x.condition, x.onset_time, x.code_system,
                                      x.code) AS condition_occurrence_id,
                   p.omop_id AS person_id, coalesce(c.concept_id, 0) AS condition_concept_id,
                   coalesce(CAST(x.onset_time AS DATE), CAST(s.admit_time AS DATE), p.birth_date)
                       AS condition_start_date,
                   x.onset_time AS condition_start_datetime,
                   {TYPE_CONCEPT_EHR} AS condition_type_concept_id,
                   left(x.condition, 50) AS condition_source_value,
                   CASE WHEN x.is_underlying THEN 'underlying' ELSE 'acute' END
                       || CASE WHEN x.onset_time IS NULL THEN '; onset unknown' ELSE '' END
                       AS condition_status_source_value,
                   s.visit_id AS visit_occurrence_id, s.visit_id AS visit_detail_id
            FROM condition x JOIN _x_person p USING (person_id)
            LEFT JOIN _x_cond c ON c.condition = x.condition AND c.code_system = x.code_system
                               AND c.code = x.code
            {self._visit('s')}""")
        n = self.raw.execute("SELECT count(*) FROM condition WHERE (code_system IS NULL OR code IS "
                             "NULL) AND length(condition) > 50").fetchone()[0]
        if n:
            raise SourceError(f"condition: {n} uncoded condition name(s) longer than 50 characters "
                              f"(OMOP condition_source_value); give them a code_system and code.")

    def observations(self) -> None:
        w, r, d = (int(self.local[k]["concept_id"]) for k in ("stay_weight", "stay_reason",
                                                              "dosing_weight"))
        event_concept = "CASE x.event_type " + " ".join(
            f"WHEN {_q(t)} THEN {int(row['concept_id'])}" for t, row in self.events.items()) + " END"
        kg = "(SELECT concept_id FROM _x_unit WHERE ucum = 'kg')"
        parts = [
            f"""SELECT s.omop_person_id AS person_id, {w} AS observation_concept_id,
                   x.admit_time AS t, x.weight_kg AS value_as_number,
                   CAST(NULL AS VARCHAR) AS value_as_string, {kg} AS unit_concept_id,
                   'kg' AS unit_source_value, s.visit_id AS visit_id, CAST(NULL AS BIGINT) AS event_id,
                   x.stay_id AS k1, CAST(NULL AS VARCHAR) AS k2
               FROM stay x JOIN _x_stay s USING (stay_id) WHERE x.weight_kg IS NOT NULL""",
            f"""SELECT s.omop_person_id, {r}, x.admit_time, NULL, x.admission_reason, NULL, NULL,
                   s.visit_id, NULL, x.stay_id, NULL
               FROM stay x JOIN _x_stay s USING (stay_id) WHERE x.admission_reason IS NOT NULL""",
            f"""SELECT person_id, {d}, drug_exposure_start_datetime, _weight_kg, NULL, {kg}, 'kg',
                   visit_detail_id, drug_exposure_id, CAST(drug_exposure_id AS VARCHAR), NULL
               FROM _x_drug_rows WHERE _weight_kg IS NOT NULL""",
            f"""SELECT p.omop_id, {event_concept},
                   x.time, NULL, x.detail, NULL, NULL, s.visit_id, NULL, x.person_id,
                   x.event_type || ' ' || CAST(x.time AS VARCHAR)
               FROM event x JOIN _x_person p USING (person_id) {self._visit('s')}""",
        ]
        self.insert("observation", f"""
            SELECT row_number() OVER (ORDER BY observation_concept_id, k1, k2, t) AS observation_id,
                   person_id, observation_concept_id, CAST(t AS DATE) AS observation_date,
                   t AS observation_datetime, {TYPE_CONCEPT_EHR} AS observation_type_concept_id,
                   value_as_number, value_as_string, unit_concept_id, unit_source_value,
                   visit_id AS visit_occurrence_id, visit_id AS visit_detail_id,
                   event_id AS observation_event_id
            FROM ({' UNION ALL '.join(parts)})""")

    def deaths(self) -> None:
        self.insert("death", f"""
            SELECT p.omop_id AS person_id, CAST(min(x.time) AS DATE) AS death_date,
                   min(x.time) AS death_datetime, {TYPE_CONCEPT_EHR} AS death_type_concept_id
            FROM event x JOIN _x_person p USING (person_id)
            WHERE x.event_type = 'death' GROUP BY p.omop_id""")

    def concepts(self) -> None:
        rows = []

        def add(cid, name, domain, vocabulary, cls, standard, code):
            rows.append((int(cid), str(name)[:255], domain, vocabulary, cls, standard, str(code)))

        used_units = {u for (u,) in self.raw.execute(
            f"SELECT DISTINCT unit_concept_id FROM {self.out}.measurement UNION SELECT DISTINCT "
            f"unit_concept_id FROM {self.out}.observation").fetchall()}
        for ucum, cid in self.raw.execute("SELECT ucum, concept_id FROM _x_unit").fetchall():
            if cid in used_units:
                add(cid, ucum, "Unit", "UCUM", "Unit", "S", ucum)
        for name, cid, code, voc, label in self.raw.execute(
                "SELECT variable, concept_id, code, vocabulary_id, label FROM _x_var "
                "WHERE concept_id <> 0").fetchall():
            add(cid, label, "Measurement", voc or "LOINC", "Lab Test", "S", code or cid)
        for name, cid, voc, code, local in self.raw.execute(
                "SELECT drug, concept_id, vocabulary_id, code, local FROM _x_drug "
                "WHERE concept_id <> 0").fetchall():
            add(cid, name, "Drug", voc, "Ingredient", None if local else "S", code or cid)
        for route, cid, voc, code in self.raw.execute("SELECT * FROM _x_route").fetchall():
            add(cid, f"{route} route", "Route", voc or "SNOMED", "Qualifier Value", "S", code or cid)
        add(self.picu["concept_id"], self.picu["target"], "Visit",
            self.picu["vocabulary_id"] or "None", "Visit", "S",
            self.picu["concept_code"] or self.picu["concept_id"])
        for row in self.supports.values():
            device = "physical object" in (row.get("display") or "")
            add(row["concept_id"], row["target"], "Device" if device else "Procedure",
                row["vocabulary_id"] or "None", "Physical Object" if device else "Procedure",
                "S", row["concept_code"] or row["concept_id"])
        add(INPATIENT_VISIT, "Inpatient Visit", "Visit", "Visit", "Visit", "S", "IP")
        for k, row in self.sex.items():
            if row:
                add(row["concept_id"], k.upper(), "Gender", "Gender", "Gender", "S",
                    row["concept_code"])
        for row in (*self.local.values(), *self.events.values()):
            add(row["concept_id"], row["concept_code"], "Observation", LOCAL_VOCABULARY,
                "Clinical Observation", None, row["concept_code"])
        seen = set()
        rows = [r for r in rows if not (r[0] in seen or seen.add(r[0]))]
        self.raw.execute("CREATE OR REPLACE TEMP TABLE _x_concept (concept_id BIGINT, concept_name "
                         "VARCHAR, domain_id VARCHAR, vocabulary_id VARCHAR, concept_class_id "
                         "VARCHAR, standard_concept VARCHAR, concept_code VARCHAR)")
        self.raw.executemany("INSERT INTO _x_concept VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        self.insert("concept", """
            SELECT *, DATE '1970-01-01' AS valid_start_date, DATE '2099-12-31' AS valid_end_date
            FROM (SELECT * FROM _x_concept
                  UNION ALL
                  SELECT concept_id, condition, 'Condition', code_system, 'Condition', NULL, code
                  FROM _x_cond)""")

    def cdm_source(self) -> None:
        self.insert("cdm_source", f"""
            SELECT 'hyperinflam export' AS cdm_source_name, 'hyperinflam' AS cdm_source_abbreviation,
                   'hyperinflam' AS cdm_holder,
                   'Canonical PICU tables written by hyperinflam {__version__} export_omop' AS
                       source_description,
                   current_date AS source_release_date, current_date AS cdm_release_date,
                   '5.4' AS cdm_version, {CDM_VERSION_CONCEPT} AS cdm_version_concept_id,
                   'hyperinflam local' AS vocabulary_version""")

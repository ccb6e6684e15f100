"""Read an OMOP CDM (v5.4, and v5.3 where it differs) into the canonical tables.

SOURCE is a DuckDB file, a folder of Parquet or CSV files in OMOP layout (``person.parquet`` or
``person.csv``, any case), or a ``postgresql://`` URL (read through DuckDB's postgres extension,
shipped by the ``duckdb-extension-postgres-scanner`` wheel: projections and filters are pushed
down into PostgreSQL; no row passes through Python). Every table is mapped set-based by one
DuckDB query into the staged layout and handed to the shared pipeline
(:func:`hyperinflam.sources.ingest.load_staged`: validation, units, plausible ranges, quarantine,
idempotent reloads). ``_line`` is the OMOP primary key (``death``: person_id); quarantine rows name
the source as ``<source>#<omop table>``.

Codes (clinical reference §11.3-§11.5) are data: the dictionary's ``vocabulary/codes.csv`` (``kind,
target, system, code, concept_id``) plus an optional site file of the same layout (``--codes``).
A code row matches a source concept by ``concept_id``, or, when the source has a ``concept``
table, by (vocabulary_id = system, concept_code = code): so a LOINC code whose OMOP id is marked
VERIFY in §11.4 is still found. When ``measurement_concept_id`` matches nothing, ``measurement_source_value``
is matched against the code rows' ``concept_code`` (e.g. a LOINC code).

Mapping rules (documented in docs/sources-omop.md):

* person: sex from gender_concept_id (8507/8532), else gender_source_value, else 'unknown';
  birth date from birth_datetime, else year/month/day_of_birth with a missing day set to
  :data:`MISSING_BIRTH_DAY` (a missing month leaves the date empty: quarantined).
* stay (PICU): visit_detail rows whose visit_detail_concept_id (or care site's
  place_of_service_concept_id) is a ``picu_visit`` code, or whose care_site_id is in
  ``picu_care_site_ids``. When the source has none, the fallback (``stay_fallback``,
  default ``'inpatient_children'``) takes ``inpatient_visit`` visit_occurrence rows of persons
  aged 0 to :data:`FALLBACK_MAX_AGE_YEARS` completed years at the visit start (the project scope,
  0-21 years, as the MEDS reader and the studies), and says so in the report notes. Persons of
  every age are loaded (the person table is read whole); the age filter of a study is its own.
* times: ``*_datetime``, else the ``*_date`` at 00:00; a date-only end (discharge, end of a
  drug or procedure) is the end of that day (23:59:59). Two CDM conventions for mandatory end
  dates are read back as "no end": a visit end date on or after cdm_source.source_release_date
  with no end datetime (still admitted at the data pull) and a drug_exposure whose end date is
  its start date with neither end datetime nor verbatim_end_date (no end in the source).
* oddities of real exports, each named in the report notes and none a stop: column names in any
  case, numbers stored as text (read with TRY_CAST), DATE values in ``*_datetime`` columns (read
  as the date), tables missing, tables without rows (a CSV of a header only)
  (:meth:`OmopSource.oddities`).
* CDM version: cdm_source.cdm_version, else inferred from the columns renamed in 5.4
  (:data:`V53_RENAMED`; a 5.3 source's old names are used), said in the report notes with what
  5.3 lacks (:data:`V54_ONLY_USED`).
* measurement: variable from measurement_concept_id, else measurement_source_value; unit from
  unit_concept_id (the concept's UCUM concept_code, else a ``unit`` row is not needed: the
  concept table is used), else unit_source_value, else none (quarantined ``missing_unit``);
  value: value_source_value when it is the same number as value_as_number (the value as
  received), else value_as_number as text (DECIMAL and DOUBLE give the same text). A culture
  (a concept of the ``event,infection_test`` codes, or such a code as measurement_source_value)
  is no measurement but an event 'infection_test' (:meth:`_Loader.culture_measurements`,
  clinical reference §5.1, §12.43).
* drug_exposure: ingredient through concept_ancestor when it is present and non-empty, else the
  listed ingredient ids (the concept ids of the drugs' RxNorm rows in codes.csv, plus the concept
  table's RxNorm Ingredient concepts with those RxNorm codes) only (report note); vasoactive
  ingredients go to organ_support. dose = quantity with dose_unit_source_value (no unit, no dose);
  route from route_concept_id (``route`` codes) else route_source_value.
* organ_support: procedure_occurrence and device_exposure rows of ``support`` codes (the code's
  target is the support kind, e.g. invasive ventilation); vasoactive drug_exposure rows.
* condition: condition_occurrence (all rows) and observation rows of ``finding`` codes. Name,
  code system and code from the concept (else condition_source_value). Underlying: see
  :func:`_underlying_sql`. The code the site recorded (condition_source_concept_id's ICD or
  SNOMED concept, else an ICD-shaped condition_source_value) is a second code of the row for
  the infections from diagnoses (:meth:`_Loader.condition_source_codes`, clinical reference
  §12.41).
* event: death (time = death_datetime, else death_date 00:00); observation rows of ``event``
  codes (export_omop's local concepts 2000000004 infection / 2000000005 death / 2000000006
  infection_test, a culture's LOINC or SNOMED CT concept: time, stay and value_as_string =
  detail); measurement rows of a culture (infection_test). A death table row of a person with
  such a death observation is the same death and is not read twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from hyperinflam.errors import SourceError
from hyperinflam.sources import LoadReport
from hyperinflam.sources.atomic import cleanup, load_transaction, on_commit
from hyperinflam.sources.ingest import (_q, load_staged, open_load, register_vocabulary,
                                       with_site_codes)
from hyperinflam.sources.domains import read_declarations, record_domains
from hyperinflam.sources.infections import SOURCE_CODES, derive_infections
from hyperinflam.sources.suspected_infection import INFECTION_TEST, derive_suspected_infections
from hyperinflam.sources.load_log import record_load
from hyperinflam.sources.timeparse import site_time_zone, time_sql
from hyperinflam.sources.omop.access import (CATALOG, REQUIRED_COLUMNS, V54_ONLY_USED, OmopSource,
                                            attach_omop)
from hyperinflam.vocabulary import Vocabulary

__all__ = ["OmopOptions", "load_omop", "load_source", "read_codes",
           "MISSING_BIRTH_DAY", "FALLBACK_MAX_AGE_YEARS"]

#: Day of birth used when the CDM gives year and month only (person.day_of_birth NULL).
MISSING_BIRTH_DAY = 15
#: Fallback PICU stays: inpatient visits of persons at most this old, in completed years, at the
#: visit start: the project scope "Age 0-21 years at admission" (clinical reference §11.2), the
#: rule of the MEDS reader (--max-age) and of the shipped study (age_max_years = 21). A visit
#: before the 22nd birthday (birth date + 22 calendar years) qualifies. Studies narrow the age
#: range in their [cohort] section; criteria flag ages outside their authors' validation.
FALLBACK_MAX_AGE_YEARS = 21
#: Vocabularies of a condition_source_concept_id whose code is kept as the condition's source
#: code for the infections from diagnoses (the systems sources/infections.py matches).
SOURCE_CODE_VOCABULARIES = ("ICD10CM", "ICD10", "ICD9CM", "SNOMED")
#: A condition_source_value with no source concept is read as an ICD-10(-CM) code when it has
#: that code's form (a letter, two characters, an optional dot and up to four more: 'A41.9',
#: 'A419', 'U07.1'), or as an ICD-9-CM code when it is a dotted ICD-9-CM code ('038.9',
#: 'V09.0', 'E870.1'); a bare number is not read (it may as well be a SNOMED CT code).
#: Clinical reference §12.41 (VERIFY).
ICD10_SOURCE_VALUE_PATTERN = r"[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?"
ICD9_SOURCE_VALUE_PATTERN = r"([0-9]{3}|V[0-9]{2}|E[0-9]{3})\.[0-9]{1,2}"
#: condition_status_source_value written by export_omop (and honoured on read).
UNDERLYING_MARK, ACUTE_MARK, ONSET_UNKNOWN_MARK = "underlying", "acute", "onset unknown"

@dataclass
class OmopOptions:
    """Settings of the OMOP reader (defaults documented in docs/sources-omop.md)."""

    #: extra visit_detail / place-of-service concept ids that mark a PICU stay
    picu_concept_ids: tuple[int, ...] = ()
    #: care_site_id values of the site's PICU(s)
    picu_care_site_ids: tuple[int, ...] = ()
    #: 'inpatient_children' or 'none' (used only when the source has no PICU visit_detail)
    stay_fallback: str = "inpatient_children"
    #: 'omop' (person_id / visit ids as text) or 'source_value' (person_source_value,
    #: visit_detail_source_value: what export_omop writes)
    ids: str = "omop"


# ---------------------------------------------------------------------------------------------
# codes
def read_codes(site_codes: str | Path | None = None, vocabulary: Vocabulary | None = None
               ) -> list[dict]:
    """The dictionary's codes as the OMOP reader and exporter use them (vocabulary/codes.csv plus
    a site file of that layout, or of the former ``kind,target,vocabulary_id,concept_code,
    concept_id`` layout; site rows first): ``kind``, ``target``, ``vocabulary_id`` (the code's
    system), ``concept_code`` and ``concept_id`` as text. MEDS code prefixes are left out."""
    vocab = with_site_codes(vocabulary or Vocabulary(), site_codes)
    return [{"kind": c.kind, "target": c.target, "vocabulary_id": c.system,
             "concept_code": c.code, "concept_id": "" if c.concept_id is None else str(c.concept_id),
             "display": c.display}
            for c in vocab.codes if c.system != "MEDS"]


def _register_codes(raw, rows: list[dict]) -> None:
    raw.execute("CREATE OR REPLACE TEMP TABLE _omop_code_rows (kind VARCHAR, target VARCHAR, "
                "vocabulary_id VARCHAR, concept_code VARCHAR, concept_id BIGINT)")
    values = [((r.get("kind") or "").strip(), (r.get("target") or "").strip(),
               (r.get("vocabulary_id") or "").strip() or None,
               (r.get("concept_code") or "").strip() or None,
               int(r["concept_id"]) if (r.get("concept_id") or "").strip() else None)
              for r in rows]
    if values:
        raw.executemany("INSERT INTO _omop_code_rows VALUES (?, ?, ?, ?, ?)", values)


def _ts(date_col: str, dt_col: str, *, end: bool = False) -> str:
    """Text time: the datetime, else the date at 00:00 (an end date: 23:59:59). A datetime column
    that holds a date only (a DATE column, or text 'YYYY-MM-DD': many ETLs write one) is read as
    that date, exactly as the date column: 00:00, an end 23:59:59."""
    clock = "23:59:59" if end else "00:00:00"
    text = f"trim(CAST({dt_col} AS VARCHAR))"
    return (f"coalesce(CASE WHEN length({text}) = 10 THEN {text} || ' {clock}' "
            f"ELSE CAST({dt_col} AS VARCHAR) END, "
            f"CAST(TRY_CAST({date_col} AS DATE) AS VARCHAR) || ' {clock}')")


def _int(expr: str) -> str:
    return f"TRY_CAST({expr} AS BIGINT)"


def _num_text(number: str, verbatim: str = "NULL") -> str:
    """The verbatim text when it is the same number, else the number as shortest text."""
    fmt = f"regexp_replace(CAST(TRY_CAST({number} AS DOUBLE) AS VARCHAR), '\\.0$', '')"
    return (f"CASE WHEN {number} IS NULL THEN {verbatim} "
            f"WHEN TRY_CAST(trim({verbatim}) AS DOUBLE) = TRY_CAST({number} AS DOUBLE) "
            f"THEN trim({verbatim}) ELSE {fmt} END")


# ---------------------------------------------------------------------------------------------
def load_omop(con, source: str | Path, *, schema: str | None = None,
              vocabulary: Vocabulary | None = None, codes: str | Path | None = None,
              tz: str = "UTC", options: OmopOptions | None = None,
              domains: Iterable[str | Path] = ()) -> LoadReport:
    """Load an OMOP CDM (DuckDB file, Parquet/CSV folder or postgresql:// URL) into ``con``.

    Returns a :class:`LoadReport` (read = loaded + already present + quarantined per table);
    notes say which fallbacks were used. Raises :class:`SourceError` for a wrong path or
    connection string, a missing schema, table or column.
    """
    options = check_options(options)
    raw, vocab = open_load(con, vocabulary, tz)
    code_rows = read_codes(codes, vocab)
    declared = read_declarations(domains, vocab)
    prefix, label = attach_omop(raw, source, schema)
    try:
        with load_transaction(raw):  # every table or none (sources/atomic.py)
            src = OmopSource(raw, prefix, label)
            report = load_source(con, src, vocab, code_rows, tz, options)
            on_commit(raw, lambda: record_load(raw, report, reader="omop", tz=tz))
            site_vocab = with_site_codes(vocab, list(codes) if isinstance(codes, (list, tuple))
                                         else [codes] if codes else [])  # --codes rows too
            derive_infections(raw, report, site_vocab, source_codes=_Loader(
                con, src, vocab, tz, options, report).condition_source_codes())
            derive_suspected_infections(raw, report)
            record_domains(raw, report, vocab, reader="omop", declared=declared)
            return report
    finally:
        cleanup(raw, [f"DROP TABLE IF EXISTS {SOURCE_CODES}",
                      f"DETACH DATABASE IF EXISTS {CATALOG}"])


def check_options(options: OmopOptions | None) -> OmopOptions:
    options = options or OmopOptions()
    if options.stay_fallback not in ("inpatient_children", "none"):
        raise SourceError(f"stay_fallback '{options.stay_fallback}': use inpatient_children or none.")
    if options.ids not in ("omop", "source_value"):
        raise SourceError(f"ids '{options.ids}': use omop or source_value.")
    return options


def load_source(con, src: OmopSource, vocab: Vocabulary, code_rows: list[dict], tz: str,
                options: OmopOptions) -> LoadReport:
    """Map the OMOP tables of ``src`` into the canonical tables of ``con`` (whose ``.con`` runs
    the SQL: DuckDB, or :class:`hyperinflam.sources.omop.spark_sql.SparkLoadConnection`)."""
    raw, label = con.con, src.label
    try:
        for table in ("person",):
            if not src.has(table):
                raise SourceError(f"{label}: no table {table}; an OMOP CDM source needs person "
                                  f"and visit_occurrence or visit_detail.")
        for table in REQUIRED_COLUMNS:
            if src.has(table):
                src.check(table)
        report = LoadReport(source=label)
        version, how = src.cdm_version()
        report.notes.append(f"OMOP CDM {version} ({how}).")
        report.notes.extend(src.oddities(REQUIRED_COLUMNS))
        if version == "5.3":
            lost = [what for (table, col), what in V54_ONLY_USED.items()
                    if src.has(table) and col not in src.columns[table]]
            if lost:
                report.notes.append("CDM 5.3 has no " + "; no ".join(lost) + " (left empty).")
        register_vocabulary(raw, vocab)
        _register_codes(raw, code_rows)
        _resolve_codes(raw, src, report)
        _Loader(con, src, vocab, tz, options, report).run()
    finally:
        cleanup(raw, [f"DROP TABLE IF EXISTS {t}" for t in (
            "_omop_codes", "_omop_code_rows", "_omop_stays", "_omop_units", "_omop_drug_list",
            "_omop_drug_rxnorm", "_omop_drug_match")])
    return report


def _resolve_codes(raw, src: OmopSource, report: LoadReport) -> None:
    """_omop_codes(kind, target, concept_id, concept_code): code rows resolved to concept ids
    through the source's concept table (by vocabulary_id + concept_code) when it has one."""
    has_concept = src.has("concept") and src.count("concept") > 0
    by_code = ""
    if has_concept:
        by_code = f"""UNION SELECT r.kind, r.target, {_int('c.concept_id')}, r.concept_code
            FROM _omop_code_rows r JOIN {src.ref('concept')} c
              ON c.vocabulary_id = r.vocabulary_id AND c.concept_code = r.concept_code"""
    else:
        report.notes.append("no concept table (or it is empty): codes are matched by the concept "
                            "ids listed in vocabulary/codes.csv only, units by its 'unit' rows, "
                            "else unit_source_value.")
    raw.execute(f"""CREATE OR REPLACE TEMP TABLE _omop_codes AS
        SELECT kind, target, concept_id, concept_code FROM _omop_code_rows
        WHERE concept_id IS NOT NULL {by_code}""")
    listed_units = ("SELECT concept_id, concept_code AS ucum FROM _omop_code_rows "
                    "WHERE kind = 'unit' AND concept_id IS NOT NULL")
    unit_src = (f"SELECT {_int('concept_id')} AS concept_id, concept_code AS ucum FROM "
                f"{src.ref('concept')} WHERE vocabulary_id = 'UCUM' UNION {listed_units} "
                f"AND concept_id NOT IN (SELECT {_int('concept_id')} FROM {src.ref('concept')} "
                f"WHERE vocabulary_id = 'UCUM' AND concept_id IS NOT NULL)") if has_concept \
        else listed_units
    raw.execute(f"CREATE OR REPLACE TEMP TABLE _omop_units AS {unit_src}")


class _Loader:
    def __init__(self, con, src: OmopSource, vocab: Vocabulary, tz: str, options: OmopOptions,
                 report: LoadReport):
        self.con, self.src, self.vocab, self.tz = con, src, vocab, tz
        self.options, self.report, self.raw = options, report, con.con

    def load(self, canonical: str, omop_table: str, select_sql: str, key: str) -> None:
        import duckdb

        try:
            counts = load_staged(self.con, canonical, select_sql,
                                 source=f"{self.src.label}#{omop_table}",
                                 location=f"{omop_table}.{key}", vocabulary=self.vocab, tz=self.tz)
        except duckdb.OutOfMemoryException:
            raise
        except duckdb.Error as exc:  # an unreadable table (a broken CSV file, a dropped connection)
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SourceError(f"{self.src.label}: OMOP table {omop_table} cannot be read into "
                              f"{canonical} ({message}). Nothing of this load was written; "
                              f"correct or re-export the table and load again.") from None
        self.report.tables.append(counts)

    def absent(self, omop_table: str, canonical: str) -> bool:
        if not self.src.has(omop_table):
            self.report.notes.append(f"no {omop_table} table: no {canonical} rows from it.")
            return True
        return False

    def person_id(self, alias: str) -> str:
        """Canonical person id of an OMOP row (joined person table ``p``)."""
        if self.options.ids == "source_value":
            return "p.person_source_value"
        return f"CAST({alias}.person_id AS VARCHAR)"

    def person_join(self, alias: str) -> str:
        if self.options.ids == "source_value":
            return (f"LEFT JOIN {self.src.ref('person')} p "
                    f"ON {_int('p.person_id')} = {_int(alias + '.person_id')}")
        return ""

    def stay_id(self, alias: str) -> str:
        """Canonical stay id of a row: its visit (detail or occurrence) when that is a loaded stay."""
        return "ls.stay_id"

    def stay_join(self, table: str, alias: str) -> str:
        vd = self.src.col(table, "visit_detail_id", alias)
        vo = self.src.col(table, "visit_occurrence_id", alias)
        visit = f"CASE WHEN os.kind = 'visit_detail' THEN {_int(vd)} ELSE {_int(vo)} END"
        return (f"LEFT JOIN (SELECT DISTINCT kind FROM _omop_stays) os ON true "
                f"LEFT JOIN (SELECT o.visit_id, o.stay_id FROM _omop_stays o "
                f"SEMI JOIN stay s ON s.stay_id = o.stay_id) ls ON ls.visit_id = {visit}")

    # -----------------------------------------------------------------------------------------
    def run(self) -> None:
        self.persons()
        self.stays()
        self.measurements()
        self.drugs()
        self.organ_support()
        self.conditions()
        self.deaths()
        self.culture_measurements()

    def persons(self) -> None:
        s = self.src
        pid = "p.person_source_value" if self.options.ids == "source_value" else \
            "CAST(p.person_id AS VARCHAR)"
        month, day = s.col("person", "month_of_birth", "p"), s.col("person", "day_of_birth", "p")
        birth = (f"coalesce(CAST(TRY_CAST({s.col('person', 'birth_datetime', 'p')} AS DATE) AS VARCHAR), "
                 f"CASE WHEN {_int(month)} IS NOT NULL THEN printf('%04d-%02d-%02d', "
                 f"{_int('p.year_of_birth')}, {_int(month)}, coalesce({_int(day)}, "
                 f"{MISSING_BIRTH_DAY})) END)")
        sex = (f"coalesce(g.target, {s.col('person', 'gender_source_value', 'p')}, 'unknown')")
        self.load("person", "person", f"""
            SELECT p.person_id AS _line, {pid} AS person_id, {birth} AS birth_date, {sex} AS sex
            FROM {s.ref('person')} p
            LEFT JOIN (SELECT concept_id, min(target) AS target FROM _omop_codes WHERE kind = 'sex'
                       GROUP BY 1) g ON g.concept_id = {_int('p.gender_concept_id')}""", "person_id")

    def stays(self) -> None:
        s, o = self.src, self.options
        extra_ids = ", ".join(str(int(i)) for i in o.picu_concept_ids) or "NULL"
        sites = ", ".join(str(int(i)) for i in o.picu_care_site_ids) or "NULL"
        picu = (f"(SELECT concept_id FROM _omop_codes WHERE kind = 'picu_visit' "
                f"UNION SELECT unnest([{extra_ids}]))")
        candidates = []
        if s.has("visit_detail"):
            cs = ""
            cs_cond = "false"
            if s.has("care_site"):
                cs = (f"LEFT JOIN {s.ref('care_site')} cs ON {_int('cs.care_site_id')} = "
                      f"{_int(s.col('visit_detail', 'care_site_id', 'v'))}")
                cs_cond = f"{_int('cs.place_of_service_concept_id')} IN {picu}"
            sid = (s.col("visit_detail", "visit_detail_source_value", "v")
                   if o.ids == "source_value" else "CAST(v.visit_detail_id AS VARCHAR)")
            candidates.append(f"""
                SELECT 'visit_detail' AS kind, {_int('v.visit_detail_id')} AS visit_id,
                       {sid} AS stay_id, v.person_id AS omop_person_id,
                       {_ts('v.visit_detail_start_date', s.col('visit_detail', 'visit_detail_start_datetime', 'v'))} AS admit_time,
                       {self._discharge('visit_detail', 'v', 'visit_detail_end_date', 'visit_detail_end_datetime')} AS discharge_time
                FROM {s.ref('visit_detail')} v {cs}
                WHERE {_int('v.visit_detail_concept_id')} IN {picu}
                   OR {_int(s.col('visit_detail', 'care_site_id', 'v'))} IN ({sites}) OR {cs_cond}""")
        if not candidates and not s.has("visit_occurrence"):
            raise SourceError(f"{s.label}: no table visit_detail or visit_occurrence; PICU stays "
                              f"cannot be found.")
        sql = candidates[0] if candidates else "SELECT NULL AS kind, NULL::BIGINT AS visit_id, " \
            "NULL AS stay_id, NULL AS omop_person_id, NULL AS admit_time, NULL AS discharge_time WHERE false"
        self.raw.execute(f"CREATE OR REPLACE TEMP TABLE _omop_stays AS {sql}")
        n = self.raw.execute("SELECT count(*) FROM _omop_stays").fetchone()[0]
        if n == 0 and o.stay_fallback == "inpatient_children" and s.has("visit_occurrence"):
            sid = (s.col("visit_occurrence", "visit_source_value", "v")
                   if o.ids == "source_value" else "CAST(v.visit_occurrence_id AS VARCHAR)")
            start = _ts("v.visit_start_date", s.col("visit_occurrence", "visit_start_datetime", "v"))
            birth = (f"coalesce(TRY_CAST({s.col('person', 'birth_datetime', 'p')} AS DATE), "
                     f"make_date({_int('p.year_of_birth')}::INT, "
                     f"coalesce({_int(s.col('person', 'month_of_birth', 'p'))}, 1)::INT, "
                     f"coalesce({_int(s.col('person', 'day_of_birth', 'p'))}, 1)::INT))")
            self.raw.execute(f"""CREATE OR REPLACE TEMP TABLE _omop_stays AS
                SELECT 'visit_occurrence' AS kind, {_int('v.visit_occurrence_id')} AS visit_id,
                       {sid} AS stay_id, v.person_id AS omop_person_id, {start} AS admit_time,
                       {self._discharge('visit_occurrence', 'v', 'visit_end_date', 'visit_end_datetime')} AS discharge_time
                FROM {s.ref('visit_occurrence')} v
                JOIN {s.ref('person')} p ON {_int('p.person_id')} = {_int('v.person_id')}
                WHERE {_int('v.visit_concept_id')} IN
                      (SELECT concept_id FROM _omop_codes WHERE kind = 'inpatient_visit')
                  AND TRY_CAST({start} AS TIMESTAMP) <
                      {birth} + INTERVAL {FALLBACK_MAX_AGE_YEARS + 1} YEAR""")
            m = self.raw.execute("SELECT count(*) FROM _omop_stays").fetchone()[0]
            self.report.notes.append(
                f"no PICU visit_detail (concepts {', '.join(map(str, self._picu_ids()))} or "
                f"configured care sites): fallback stays = {m} inpatient visit_occurrence rows of "
                f"persons aged 0-{FALLBACK_MAX_AGE_YEARS} completed years at the visit start "
                f"(persons of every age are loaded).")
        elif n == 0:
            self.report.notes.append("no PICU visit_detail rows: no stays loaded "
                                     "(stay fallback 'none').")
        weight, reason = self._stay_observations()
        pid = "p.person_source_value" if o.ids == "source_value" else \
            "CAST(st.omop_person_id AS VARCHAR)"
        self.load("stay", "visit_detail" if n else "visit_occurrence", f"""
            SELECT st.visit_id AS _line, st.stay_id, {pid} AS person_id, st.admit_time,
                   st.discharge_time, {reason} AS admission_reason, {weight} AS weight_kg
            FROM _omop_stays st
            LEFT JOIN {s.ref('person')} p ON {_int('p.person_id')} = {_int('st.omop_person_id')}
            {self._stay_obs_join()}""", "visit_id")

    def _discharge(self, table: str, alias: str, date_col: str, dt_col: str) -> str:
        """End of a visit. CDM convention (visit_end_date, 5.3 and 5.4): a person still admitted
        at the data pull gets the date of the data pull as end date. So an end with no end
        datetime on or after cdm_source.source_release_date (the data pull) is 'still in the
        PICU': NULL, as in the canonical stay table (what export_omop writes)."""
        s = self.src
        d, t = s.col(table, date_col, alias), s.col(table, dt_col, alias)
        end = _ts(d, t, end=True)
        if d == "NULL" or not (s.has("cdm_source")
                               and "source_release_date" in s.columns["cdm_source"]):
            return end
        pulled = (f"(SELECT max(TRY_CAST(source_release_date AS DATE)) "
                  f"FROM {s.ref('cdm_source')})")
        return f"CASE WHEN {t} IS NULL AND TRY_CAST({d} AS DATE) >= {pulled} THEN NULL ELSE {end} END"

    def _picu_ids(self) -> list[int]:
        ids = [r[0] for r in self.raw.execute(
            "SELECT DISTINCT concept_id FROM _omop_codes WHERE kind = 'picu_visit' ORDER BY 1").fetchall()]
        return ids + list(self.options.picu_concept_ids)

    def _stay_observations(self) -> tuple[str, str]:
        if not self.src.has("observation"):
            return "NULL", "NULL"
        return "sw.weight_kg", "sr.reason"

    def _stay_obs_join(self) -> str:
        s = self.src
        if not s.has("observation"):
            return ""
        link = ("CASE WHEN st.kind = 'visit_detail' THEN "
                f"{_int(s.col('observation', 'visit_detail_id', 'ob'))} ELSE "
                f"{_int(s.col('observation', 'visit_occurrence_id', 'ob'))} END")
        out = []
        for kind, alias, value in (("stay_weight", "sw", _num_text(s.col('observation', 'value_as_number', 'ob'))),
                                   ("stay_reason", "sr", s.col("observation", "value_as_string", "ob"))):
            name = "weight_kg" if alias == "sw" else "reason"
            out.append(f"""LEFT JOIN (SELECT st2.visit_id, min({value}) AS {name}
                FROM {s.ref('observation')} ob JOIN _omop_stays st2 ON st2.visit_id = {link.replace('st.', 'st2.')}
                WHERE {_int('ob.observation_concept_id')} IN
                      (SELECT concept_id FROM _omop_codes WHERE kind = '{kind}')
                GROUP BY 1) {alias} ON {alias}.visit_id = st.visit_id""")
        return " ".join(out)

    def measurements(self) -> None:
        s = self.src
        if self.absent("measurement", "measurement"):
            return
        src_value = s.col("measurement", "measurement_source_value", "m")
        unit_src = s.col("measurement", "unit_source_value", "m")
        value = _num_text("m.value_as_number", s.col("measurement", "value_source_value", "m"))
        variable = (f"coalesce(c.target, sc.target, 'OMOP measurement_concept_id ' || "
                    f"coalesce(CAST(m.measurement_concept_id AS VARCHAR), '?') || coalesce(' (' || "
                    f"{src_value} || ')', '') || ' not in vocabulary/codes.csv')")
        unit = (f"coalesce(CASE WHEN {_int('m.unit_concept_id')} <> 0 THEN u.ucum END, "
                f"nullif(trim({unit_src}), ''))")
        self.load("measurement", "measurement", f"""
            SELECT m.measurement_id AS _line, {self.person_id('m')} AS person_id,
                   {self.stay_id('m')} AS stay_id,
                   {_ts('m.measurement_date', s.col('measurement', 'measurement_datetime', 'm'))} AS time,
                   {variable} AS variable, {value} AS value, {unit} AS unit
            FROM {s.ref('measurement')} m
            LEFT JOIN (SELECT concept_id, min(target) AS target FROM _omop_codes
                       WHERE kind = 'measurement' GROUP BY 1) c
                   ON c.concept_id = {_int('m.measurement_concept_id')}
            LEFT JOIN (SELECT concept_code, min(target) AS target FROM _omop_code_rows
                       WHERE kind = 'measurement' AND concept_code IS NOT NULL GROUP BY 1) sc
                   ON c.target IS NULL AND sc.concept_code = trim({src_value})
            LEFT JOIN (SELECT concept_id, min(ucum) AS ucum FROM _omop_units GROUP BY 1) u
                   ON u.concept_id = {_int('m.unit_concept_id')}
            {self.person_join('m')} {self.stay_join('measurement', 'm')}
            WHERE NOT {self._is_culture()}""", "measurement_id")

    def _is_culture(self) -> str:
        """SQL (never NULL): the measurement row ``m`` is a test for infection ordered (a
        culture): its measurement_concept_id is a concept of an ``event,infection_test`` code
        row (by concept id, or by vocabulary and code through the concept table), or, when its
        concept is no such code and no measurement code, its measurement_source_value is the
        code of such a row (Eunomia writes the SNOMED code there). Clinical reference §5.1,
        §12.43 (VERIFY)."""
        src_value = self.src.col("measurement", "measurement_source_value", "m")
        concept = _int("m.measurement_concept_id")
        tests = ("SELECT concept_id FROM _omop_codes WHERE kind = 'event' "
                 f"AND target = '{INFECTION_TEST}'")
        return (f"coalesce({concept} IN ({tests}) OR (coalesce({concept} NOT IN "
                f"(SELECT concept_id FROM _omop_codes WHERE kind = 'measurement' "
                f"AND concept_id IS NOT NULL), true) AND "
                f"trim(CAST({src_value} AS VARCHAR)) IN (SELECT concept_code FROM _omop_code_rows "
                f"WHERE kind = 'event' AND target = '{INFECTION_TEST}' AND concept_code IS NOT "
                f"NULL)), false)")

    def culture_measurements(self) -> None:
        """event 'infection_test': the measurement rows that are cultures (:meth:`_is_culture`),
        kept out of the measurement load, at measurement_datetime (else the date at 00:00), with
        the concept's name (else the source value) as detail. Their own reconciliation line
        (event from ``<source>#measurement``): an exact duplicate is a ``duplicate_row``, and a
        second test of the same person at the same time (another culture) a
        ``conflicting_duplicate`` (one test at that time is what the rule needs)."""
        s = self.src
        if not s.has("measurement"):
            return
        n = self.raw.execute(f"SELECT count(*) FROM {s.ref('measurement')} m "
                             f"WHERE {self._is_culture()}").fetchone()[0]
        if not n:
            return
        name = "cc.concept_name" if s.has("concept") else "NULL"
        cjoin = (f"LEFT JOIN {s.ref('concept')} cc ON {_int('cc.concept_id')} = "
                 f"{_int('m.measurement_concept_id')} AND {_int('m.measurement_concept_id')} <> 0"
                 if s.has("concept") else "")
        src_value = s.col("measurement", "measurement_source_value", "m")
        self.load("event", "measurement", f"""
            SELECT m.measurement_id AS _line, {self.person_id('m')} AS person_id,
                   {self.stay_id('m')} AS stay_id, '{INFECTION_TEST}' AS event_type,
                   {_ts('m.measurement_date', s.col('measurement', 'measurement_datetime', 'm'))} AS time,
                   coalesce({name}, nullif(trim(CAST({src_value} AS VARCHAR)), ''),
                            'OMOP measurement_concept_id ' || CAST(m.measurement_concept_id AS VARCHAR))
                       AS detail
            FROM {s.ref('measurement')} m {cjoin}
            {self.person_join('m')} {self.stay_join('measurement', 'm')}
            WHERE {self._is_culture()}""", "measurement_id")
        self.report.notes.append(
            f"tests for infection: {n:,} measurement row(s) coded as a culture (event,"
            f"infection_test rows of vocabulary/codes.csv) read as events 'infection_test', not "
            f"measurements (clinical reference §5.1, §12.43).")

    def _drug_table(self) -> None:
        """_omop_drug_match: the ingredient drug of each drug concept (via _omop_drug_list and,
        for RxNorm codes, _omop_drug_rxnorm)."""
        s = self.src
        ancestors = s.has("concept_ancestor") and s.count("concept_ancestor") > 0
        listed = ("SELECT CAST(d.omop_ingredient_concept_id AS BIGINT) AS concept_id, d.drug "
                  "FROM _omop_drug_list d")
        rows = [(name, int(float(info["omop_ingredient_concept_id"])))
                for name, info in self.vocab.drugs.items() if info["omop_ingredient_concept_id"]]
        self.raw.execute("CREATE OR REPLACE TEMP TABLE _omop_drug_list (drug VARCHAR, "
                         "omop_ingredient_concept_id BIGINT)")
        if rows:
            self.raw.executemany("INSERT INTO _omop_drug_list VALUES (?, ?)", rows)
        rxnorm = [(name, info["rxnorm_ingredient"].strip()) for name, info in
                  self.vocab.drugs.items() if (info.get("rxnorm_ingredient") or "").strip()]
        if rxnorm and s.has("concept"):
            # RxNorm ingredient codes (clinical reference §11.5) resolved through the source's
            # concept table: finds ingredients whose OMOP id is VERIFY or absent in codes.csv
            # (dopamine, dobutamine, milrinone), and export_omop's local ingredient concepts.
            self.raw.execute("CREATE OR REPLACE TEMP TABLE _omop_drug_rxnorm (drug VARCHAR, "
                             "rxnorm VARCHAR)")
            self.raw.executemany("INSERT INTO _omop_drug_rxnorm VALUES (?, ?)", rxnorm)
            self.raw.execute(f"""INSERT INTO _omop_drug_list
                SELECT r.drug, {_int('c.concept_id')} FROM _omop_drug_rxnorm r
                JOIN {s.ref('concept')} c ON c.vocabulary_id = 'RxNorm'
                 AND c.concept_code = r.rxnorm
                 AND coalesce({s.col('concept', 'concept_class_id', 'c')}, 'Ingredient') = 'Ingredient'
                WHERE {_int('c.concept_id')} NOT IN (SELECT omop_ingredient_concept_id
                                                     FROM _omop_drug_list)""")
        if ancestors:
            match = (f"SELECT {_int('a.descendant_concept_id')} AS concept_id, l.drug FROM "
                     f"{s.ref('concept_ancestor')} a JOIN ({listed}) l "
                     f"ON {_int('a.ancestor_concept_id')} = l.concept_id UNION {listed}")
        else:
            match = listed
            self.report.notes.append("concept_ancestor absent or empty: drugs are matched by the "
                                     "ingredient concept ids of vocabulary/codes.csv (and their RxNorm codes "
                                     "in the concept table) only: drug products below an "
                                     "ingredient are not recognised.")
        self.raw.execute(f"CREATE OR REPLACE TEMP TABLE _omop_drug_match AS "
                         f"SELECT concept_id, min(drug) AS drug FROM ({match}) GROUP BY 1")

    def drugs(self) -> None:
        s = self.src
        if self.absent("drug_exposure", "drug_administration"):
            return
        self._drug_table()
        vaso = ", ".join(_q(d) for d in self.vocab.drugs_in_class("vasoactive")) or "NULL"
        self._vaso = vaso
        src_value = s.col("drug_exposure", "drug_source_value", "d")
        drug = (f"coalesce(dm.drug, {src_value}, 'OMOP drug_concept_id ' || "
                f"CAST(d.drug_concept_id AS VARCHAR))")
        weight = "NULL"
        weight_join = ""
        if s.has("observation") and "observation_event_id" in s.columns["observation"]:
            weight = "dw.weight_kg"
            weight_join = (f"LEFT JOIN (SELECT {_int('ob.observation_event_id')} AS event_id, "
                           f"min({_num_text('ob.value_as_number')}) AS weight_kg FROM "
                           f"{s.ref('observation')} ob WHERE {_int('ob.observation_concept_id')} IN "
                           f"(SELECT concept_id FROM _omop_codes WHERE kind = 'dosing_weight') "
                           f"GROUP BY 1) dw ON dw.event_id = {_int('d.drug_exposure_id')}")
        dose_unit = f"nullif(trim({s.col('drug_exposure', 'dose_unit_source_value', 'd')}), '')"
        route = (f"coalesce(r.target, lower(nullif(trim("
                 f"{s.col('drug_exposure', 'route_source_value', 'd')}), '')))")
        self.load("drug_administration", "drug_exposure", f"""
            SELECT d.drug_exposure_id AS _line, {self.person_id('d')} AS person_id,
                   {self.stay_id('d')} AS stay_id, {drug} AS drug,
                   CASE WHEN {dose_unit} IS NOT NULL THEN {_num_text(s.col('drug_exposure', 'quantity', 'd'))} END AS dose,
                   {dose_unit} AS dose_unit, {route} AS route,
                   {_ts('d.drug_exposure_start_date', s.col('drug_exposure', 'drug_exposure_start_datetime', 'd'))} AS start_time,
                   {self._end('drug_exposure', 'd', 'drug_exposure_end_date', 'drug_exposure_end_datetime')} AS end_time,
                   {weight} AS weight_kg
            FROM {s.ref('drug_exposure')} d
            LEFT JOIN _omop_drug_match dm ON dm.concept_id = {_int('d.drug_concept_id')}
            LEFT JOIN (SELECT concept_id, min(target) AS target FROM _omop_codes WHERE kind = 'route'
                       GROUP BY 1) r ON r.concept_id = {_int(s.col('drug_exposure', 'route_concept_id', 'd'))}
            {weight_join} {self.person_join('d')} {self.stay_join('drug_exposure', 'd')}
            WHERE dm.drug IS NULL OR dm.drug NOT IN ({vaso})""", "drug_exposure_id")

    def _end(self, table: str, alias: str, date_col: str, dt_col: str) -> str:
        s = self.src
        d, t = s.col(table, date_col, alias), s.col(table, dt_col, alias)
        if d == "NULL" and t == "NULL":
            return "NULL"
        end = _ts(d, t, end=True)
        verbatim = s.col(table, "verbatim_end_date", alias)
        if table == "drug_exposure" and verbatim != "NULL":
            # CDM 5.4 drug_exposure_end_date is mandatory and derived when the source has no
            # end (ETL convention: the start date); verbatim_end_date is the end "as it appears
            # in the source". No end datetime, no verbatim end and an end date equal to the start
            # date = the source gave no end (a bolus or injection): NULL, as in the canonical
            # drug_administration / organ_support tables (what export_omop writes).
            return (f"CASE WHEN {t} IS NULL AND {verbatim} IS NULL AND TRY_CAST({d} AS DATE) = "
                    f"TRY_CAST({alias}.drug_exposure_start_date AS DATE) THEN NULL ELSE {end} END")
        return end

    def organ_support(self) -> None:
        s = self.src
        for table, concept, start_d, start_t, end_d, end_t, pk in (
                ("procedure_occurrence", "procedure_concept_id",
                 "procedure_date", "procedure_datetime", "procedure_end_date",
                 "procedure_end_datetime", "procedure_occurrence_id"),
                ("device_exposure", "device_concept_id",
                 "device_exposure_start_date", "device_exposure_start_datetime",
                 "device_exposure_end_date", "device_exposure_end_datetime", "device_exposure_id")):
            if not s.has(table):
                self.report.notes.append(f"no {table} table: no invasive ventilation from it.")
                continue
            sql = f"""
                SELECT x.{pk} AS _line, {self.person_id('x')} AS person_id,
                       {self.stay_id('x')} AS stay_id, sc.target AS support,
                       {_ts('x.' + start_d, s.col(table, start_t, 'x'))} AS start_time,
                       {self._end(table, 'x', end_d, end_t)} AS end_time,
                       NULL AS dose, NULL AS dose_unit
                FROM {s.ref(table)} x
                JOIN (SELECT concept_id, min(target) AS target FROM _omop_codes WHERE kind = 'support'
                      GROUP BY 1) sc ON sc.concept_id = {_int('x.' + concept)}
                {self.person_join('x')} {self.stay_join(table, 'x')}"""
            self.load("organ_support", table, sql, pk)
        if s.has("drug_exposure"):
            dose_unit = f"nullif(trim({s.col('drug_exposure', 'dose_unit_source_value', 'd')}), '')"
            self.load("organ_support", "drug_exposure", f"""
                SELECT d.drug_exposure_id AS _line, {self.person_id('d')} AS person_id,
                       {self.stay_id('d')} AS stay_id, dm.drug AS support,
                       {_ts('d.drug_exposure_start_date', s.col('drug_exposure', 'drug_exposure_start_datetime', 'd'))} AS start_time,
                       {self._end('drug_exposure', 'd', 'drug_exposure_end_date', 'drug_exposure_end_datetime')} AS end_time,
                       CASE WHEN {dose_unit} IS NOT NULL THEN {_num_text(s.col('drug_exposure', 'quantity', 'd'))} END AS dose,
                       {dose_unit} AS dose_unit
                FROM {s.ref('drug_exposure')} d
                JOIN _omop_drug_match dm ON dm.concept_id = {_int('d.drug_concept_id')}
                {self.person_join('d')} {self.stay_join('drug_exposure', 'd')}
                WHERE dm.drug IN ({self._vaso})""", "drug_exposure_id")

    def conditions(self) -> None:
        s = self.src
        concept = s.has("concept")
        cjoin = (lambda col: f"LEFT JOIN {s.ref('concept')} cc ON {_int('cc.concept_id')} = {_int(col)} "
                             f"AND {_int(col)} <> 0") if concept else (lambda col: "")
        cname = "cc.concept_name" if concept else "NULL"
        cvoc = "cc.vocabulary_id" if concept else "NULL"
        ccode = "cc.concept_code" if concept else "NULL"
        if not self.absent("condition_occurrence", "condition"):
            status = s.col("condition_occurrence", "condition_status_source_value", "x")
            self.load("condition", "condition_occurrence", f"""
                SELECT x.condition_occurrence_id AS _line, {self.person_id('x')} AS person_id,
                       {self.stay_id('x')} AS stay_id,
                       {self._condition_name(cname)} AS condition,
                       {cvoc} AS code_system, {ccode} AS code,
                       {self._condition_onset()} AS onset_time,
                       {self._underlying_sql(status)} AS is_underlying
                FROM {s.ref('condition_occurrence')} x {cjoin('x.condition_concept_id')}
                {self.person_join('x')} {self.stay_join('condition_occurrence', 'x')}""",
                      "condition_occurrence_id")
        if s.has("observation"):
            self.load("condition", "observation", f"""
                SELECT x.observation_id AS _line, {self.person_id('x')} AS person_id,
                       {self.stay_id('x')} AS stay_id, f.target AS condition,
                       {cvoc} AS code_system, {ccode} AS code,
                       {_ts('x.observation_date', s.col('observation', 'observation_datetime', 'x'))} AS onset_time,
                       'false' AS is_underlying
                FROM {s.ref('observation')} x
                JOIN (SELECT concept_id, min(target) AS target FROM _omop_codes WHERE kind = 'condition'
                      GROUP BY 1) f ON f.concept_id = {_int('x.observation_concept_id')}
                {cjoin('x.observation_concept_id')}
                {self.person_join('x')} {self.stay_join('observation', 'x')}""", "observation_id")

    def _condition_name(self, cname: str) -> str:
        """A condition_occurrence row's condition: its concept's name, else its source value."""
        return (f"coalesce({cname}, "
                f"{self.src.col('condition_occurrence', 'condition_source_value', 'x')}, "
                f"'OMOP condition_concept_id ' || CAST(x.condition_concept_id AS VARCHAR))")

    def _condition_onset(self) -> str:
        """A condition_occurrence row's onset (text): none when export_omop marked it unknown."""
        s = self.src
        status = s.col("condition_occurrence", "condition_status_source_value", "x")
        onset = _ts("x.condition_start_date", s.col("condition_occurrence",
                                                    "condition_start_datetime", "x"))
        return f"CASE WHEN {status} LIKE '%{ONSET_UNKNOWN_MARK}%' THEN NULL ELSE {onset} END"

    def condition_source_codes(self) -> str | None:
        """The source codes of the condition_occurrence rows, for the infections from diagnoses
        (:data:`hyperinflam.sources.infections.SOURCE_CODES`): the condition row keeps its
        standard concept (SNOMED CT in most CDMs) as code_system / code; the code the site
        recorded is (1) condition_source_concept_id's concept when its vocabulary is one of
        :data:`SOURCE_CODE_VOCABULARIES` (ICD10CM, ICD10, ICD9CM, SNOMED), else (2) with no
        source concept, condition_source_value when it has the form of an ICD-10(-CM) code or a
        dotted ICD-9-CM code (:data:`ICD10_SOURCE_VALUE_PATTERN`,
        :data:`ICD9_SOURCE_VALUE_PATTERN`). Rows keyed as the condition table is (person,
        condition, onset in UTC, computed exactly as the pipeline computes them), so that only
        condition rows this load wrote are matched. Returns the table's name, or None."""
        s = self.src
        if not s.has("condition_occurrence"):
            return None
        has_concept = s.has("concept")
        src_concept = s.col("condition_occurrence", "condition_source_concept_id", "x")
        src_value = f"trim(CAST({s.col('condition_occurrence', 'condition_source_value', 'x')} AS VARCHAR))"
        vocabularies = ", ".join(_q(v) for v in SOURCE_CODE_VOCABULARIES)
        if has_concept:
            joins = (f"LEFT JOIN {s.ref('concept')} cc ON {_int('cc.concept_id')} = "
                     f"{_int('x.condition_concept_id')} AND {_int('x.condition_concept_id')} <> 0 "
                     f"LEFT JOIN {s.ref('concept')} sc ON {_int('sc.concept_id')} = "
                     f"{_int(src_concept)} AND {_int(src_concept)} <> 0")
            cname, cvoc, ccode = "cc.concept_name", "cc.vocabulary_id", "cc.concept_code"
            by_concept = (f"WHEN sc.vocabulary_id IN ({vocabularies}) THEN "
                          f"[sc.vocabulary_id, trim(CAST(sc.concept_code AS VARCHAR))] ")
            no_concept = "sc.concept_id IS NULL"
        else:
            joins, cname, cvoc, ccode, by_concept = "", "NULL", "NULL", "NULL", ""
            no_concept = "true"
        by_value = (f"WHEN {no_concept} AND regexp_full_match({src_value}, "
                    f"{_q(ICD10_SOURCE_VALUE_PATTERN)}) THEN ['ICD10CM', {src_value}] "
                    f"WHEN {no_concept} AND regexp_full_match({src_value}, "
                    f"{_q(ICD9_SOURCE_VALUE_PATTERN)}) THEN ['ICD9CM', {src_value}] ")
        text = lambda expr: f"nullif(trim(CAST(({expr}) AS VARCHAR)), '')"  # noqa: E731
        self.raw.execute(f"DROP TABLE IF EXISTS {SOURCE_CODES}")
        with site_time_zone(self.raw, self.tz):
            self.raw.execute(f"""CREATE TEMP TABLE {SOURCE_CODES} AS
                SELECT DISTINCT person_id, condition, onset_time, sys[1] AS code_system,
                       sys[2] AS code, standard_system, standard_code
                FROM (SELECT {text(self.person_id('x'))} AS person_id,
                             {text(self._condition_name(cname))} AS condition,
                             {time_sql(text(self._condition_onset()), self.tz, allow_date_only=True)}
                                 AS onset_time,
                             CASE {by_concept}{by_value} END AS sys,
                             {cvoc} AS standard_system, {ccode} AS standard_code
                      FROM {s.ref('condition_occurrence')} x {joins}
                      {self.person_join('x')})
                WHERE sys IS NOT NULL AND nullif(sys[2], '') IS NOT NULL
                  AND NOT (sys[1] IS NOT DISTINCT FROM standard_system
                           AND sys[2] IS NOT DISTINCT FROM standard_code)""")
        return SOURCE_CODES

    def _underlying_sql(self, status: str) -> str:
        """Underlying (pre-existing) vs acute, in this order: condition_status_source_value
        'underlying' / 'acute' (written by export_omop); else underlying when the condition
        started before the person's first PICU admission and had not ended by then (no end date
        or an end on/after that admission); else acute (false)."""
        s = self.src
        start = "TRY_CAST(x.condition_start_date AS DATE)"
        end = f"TRY_CAST({s.col('condition_occurrence', 'condition_end_date', 'x')} AS DATE)"
        first = (f"(SELECT min(TRY_CAST(st.admit_time AS TIMESTAMP)) FROM _omop_stays st "
                 f"WHERE {_int('st.omop_person_id')} = {_int('x.person_id')})")
        return (f"CASE WHEN {status} LIKE '{UNDERLYING_MARK}%' THEN 'true' "
                f"WHEN {status} LIKE '{ACUTE_MARK}%' THEN 'false' "
                f"WHEN {start} < CAST({first} AS DATE) AND ({end} IS NULL OR {end} >= "
                f"CAST({first} AS DATE)) THEN 'true' ELSE 'false' END")

    def deaths(self) -> None:
        """event: deaths from the death table; infections and deaths from observation rows of
        ``event`` codes (export_omop's local concepts, with stay and detail). A death table row
        of a person who has an ``event`` death observation is that same death: read once."""
        s = self.src
        event_obs = (f"SELECT {_int('ob.person_id')} AS person_id FROM {s.ref('observation')} ob "
                     f"WHERE {_int('ob.observation_concept_id')} IN (SELECT concept_id FROM "
                     f"_omop_codes WHERE kind = 'event' AND target = 'death') AND ob.person_id IS NOT NULL"
                     if s.has("observation") else
                     "SELECT CAST(NULL AS BIGINT) AS person_id WHERE false")
        if not self.absent("death", "event"):
            self.load("event", "death", f"""
                SELECT x.person_id AS _line, {self.person_id('x')} AS person_id, NULL AS stay_id,
                       'death' AS event_type,
                       {_ts('x.death_date', s.col('death', 'death_datetime', 'x'))} AS time,
                       NULL AS detail
                FROM {s.ref('death')} x {self.person_join('x')}
                WHERE {_int('x.person_id')} NOT IN ({event_obs})""", "person_id")
        if s.has("observation"):
            n = self.raw.execute(f"""SELECT count(*) FROM {s.ref('observation')} ob
                WHERE {_int('ob.observation_concept_id')} IN
                      (SELECT concept_id FROM _omop_codes WHERE kind = 'event')""").fetchone()[0]
            if n:
                self.load("event", "observation", f"""
                    SELECT x.observation_id AS _line, {self.person_id('x')} AS person_id,
                           {self.stay_id('x')} AS stay_id, e.target AS event_type,
                           {_ts('x.observation_date', s.col('observation', 'observation_datetime', 'x'))} AS time,
                           {s.col('observation', 'value_as_string', 'x')} AS detail
                    FROM {s.ref('observation')} x
                    JOIN (SELECT concept_id, min(target) AS target FROM _omop_codes
                          WHERE kind = 'event' GROUP BY 1) e
                      ON e.concept_id = {_int('x.observation_concept_id')}
                    {self.person_join('x')} {self.stay_join('observation', 'x')}""",
                          "observation_id")

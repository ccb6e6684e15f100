"""The canonical data model: every table, its columns, their types and meaning.

This module is the single source of truth for the tables that every reader writes and every
feature, criterion and study reads. ``docs/data-model.md`` documents the same tables for people.

Conventions
-----------
* Times are ``TIMESTAMP`` without a time zone and hold **UTC**. Readers convert times that carry an
  offset to UTC and read times without an offset in the site time zone (``--tz``, default UTC).
* Measurements hold the value in the variable's canonical unit (``vocabulary/variables.csv``)
  *and* the value and unit exactly as received (``value_original``, ``unit_original``).
* ``person_id`` and ``stay_id`` are text: hospital identifiers are often not numbers.
* Measurements, drugs, conditions and events belong to a person; ``stay_id`` is optional on them,
  because labs drawn before PICU admission (the emergency department, the ward) matter for
  baseline windows. Features link them to stays by person and time.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    required: bool
    description: str


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    # Columns that identify a row for de-duplication on repeated loads.
    key: tuple[str, ...] = field(default=())

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def ddl(self) -> str:
        cols = ",\n  ".join(f"{c.name} {c.sql_type}" for c in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n  {cols}\n)"


C = Column

PERSON = Table(
    "person",
    "One row per child.",
    (
        C("person_id", "VARCHAR", True, "Patient identifier (text)."),
        C("birth_date", "DATE", True, "Date of birth."),
        C("sex", "VARCHAR", True, "'female', 'male' or 'unknown'."),
    ),
    key=("person_id",),
)

STAY = Table(
    "stay",
    "One row per PICU stay.",
    (
        C("stay_id", "VARCHAR", True, "PICU stay identifier (text)."),
        C("person_id", "VARCHAR", True, "The child (person.person_id)."),
        C("admit_time", "TIMESTAMP", True, "PICU admission, UTC."),
        C("discharge_time", "TIMESTAMP", False, "PICU discharge, UTC; empty while still in the PICU."),
        C("admission_reason", "VARCHAR", False, "Reason for PICU admission, e.g. 'respiratory distress'."),
        C("weight_kg", "DOUBLE", False, "Admission weight in kg."),
    ),
    key=("stay_id",),
)

MEASUREMENT = Table(
    "measurement",
    "Labs and vital signs, one row per value.",
    (
        C("person_id", "VARCHAR", True, "The child."),
        C("stay_id", "VARCHAR", False, "The PICU stay, if the source links it."),
        C("time", "TIMESTAMP", True, "Specimen or observation time, UTC."),
        C("variable", "VARCHAR", True, "Variable name from vocabulary/variables.csv, e.g. 'ferritin'."),
        C("value", "DOUBLE", True, "Value in the variable's canonical unit."),
        C("unit", "VARCHAR", True, "The canonical unit (UCUM), e.g. 'ng/mL'."),
        C("value_original", "VARCHAR", True, "The value as received."),
        C("unit_original", "VARCHAR", True, "The unit as received."),
        C("flag", "VARCHAR", False,
          "'extreme' when plausible but extreme (clinical reference §11.2); 'conflicting' "
          "when another value of the variable is recorded for the same person and time "
          "(both: 'extreme,conflicting'; docs/csv-layout.md)."),
    ),
    key=("person_id", "time", "variable", "value_original", "unit_original"),
)

DRUG_ADMINISTRATION = Table(
    "drug_administration",
    "Drug administrations (anakinra, corticosteroids, IVIG, ...). A vasoactive agent given iv counts as "
    "vasoactive support too (features.support).",
    (
        C("person_id", "VARCHAR", True, "The child."),
        C("stay_id", "VARCHAR", False, "The PICU stay, if the source links it."),
        C("drug", "VARCHAR", True, "Drug name from vocabulary/drugs.csv, e.g. 'anakinra'."),
        C("drug_class", "VARCHAR", True, "Class from vocabulary/drugs.csv, e.g. 'corticosteroid'."),
        C("dose", "DOUBLE", False, "Dose as administered (see dose_unit)."),
        C("dose_unit", "VARCHAR", False, "Unit of the dose: 'mg', 'g', 'mg/kg', 'g/kg', 'mg/kg/h', ..."),
        C("route", "VARCHAR", False, "'iv', 'sc', 'po', ..."),
        C("start_time", "TIMESTAMP", True, "Start, UTC."),
        C("end_time", "TIMESTAMP", False, "End of an infusion, UTC; empty for a bolus or injection."),
        C("weight_kg", "DOUBLE", False,
          "Dosing weight recorded with the administration (clinical reference §12.34)."),
    ),
    key=("person_id", "drug", "start_time", "dose", "dose_unit", "route"),
)

ORGAN_SUPPORT = Table(
    "organ_support",
    "Intervals of respiratory support (invasive ventilation, BiPAP / NIV, CPAP, high flow, oxygen) "
    "and of each vasoactive infusion.",
    (
        C("person_id", "VARCHAR", True, "The child."),
        C("stay_id", "VARCHAR", False, "The PICU stay, if the source links it."),
        C("support", "VARCHAR", True, "A kind of vocabulary/supports.csv ('invasive_ventilation', "
          "'noninvasive_ventilation', 'cpap', 'high_flow_nasal_cannula', 'supplemental_oxygen') or a "
          "vasoactive agent from vocabulary/drugs.csv (class 'vasoactive'), e.g. 'epinephrine'."),
        C("start_time", "TIMESTAMP", True, "Start, UTC."),
        C("end_time", "TIMESTAMP", False, "End, UTC; empty if still running."),
        C("dose", "DOUBLE", False, "Vasoactive dose (see dose_unit)."),
        C("dose_unit", "VARCHAR", False, "'ug/kg/min' (vasopressin 'U/kg/min' or 'mU/kg/min')."),
    ),
    key=("person_id", "support", "start_time"),
)

CONDITION = Table(
    "condition",
    "Diagnoses and clinical findings (splenomegaly, haemophagocytosis on marrow, sJIA, ...).",
    (
        C("person_id", "VARCHAR", True, "The child."),
        C("stay_id", "VARCHAR", False, "The PICU stay, if the source links it."),
        C("condition", "VARCHAR", True, "Condition name, ideally a vocabulary concept, else free text."),
        C("code_system", "VARCHAR", False, "'SNOMED', 'ICD-10-CM', ... (optional)."),
        C("code", "VARCHAR", False, "The code in that system (optional)."),
        C("onset_time", "TIMESTAMP", False, "Onset or recording time, UTC."),
        C("is_underlying", "BOOLEAN", True, "True for a pre-existing underlying disease (not 'previously healthy')."),
    ),
    key=("person_id", "condition", "onset_time"),
)

EVENT = Table(
    "event",
    "Infections (with onset time), deaths and tests for infection ordered.",
    (
        C("person_id", "VARCHAR", True, "The child."),
        C("stay_id", "VARCHAR", False, "The PICU stay, if the source links it."),
        C("event_type", "VARCHAR", True, "'infection', 'death' or 'infection_test' (a test for "
          "infection ordered, e.g. a blood culture: clinical reference §5.1)."),
        C("time", "TIMESTAMP", True, "Onset (infection), time of death or order / collection "
          "time (infection_test), UTC."),
        C("detail", "VARCHAR", False, "Free text, e.g. organism or site; the test of an "
          "infection_test."),
    ),
    key=("person_id", "event_type", "time"),
)

QUARANTINE = Table(
    "quarantine",
    "Every input row that was not loaded, with the reason and where it came from.",
    (
        C("target_table", "VARCHAR", True, "The canonical table the row was meant for."),
        C("source_file", "VARCHAR", True, "File (or source table) the row came from."),
        C("source_line", "BIGINT", False, "Line number in that file (header = line 1)."),
        C("reason", "VARCHAR", True, "Machine-readable reason, e.g. 'unknown_unit'."),
        C("detail", "VARCHAR", False, "What was wrong and how to fix it."),
        C("raw", "VARCHAR", False, "The row as received (JSON)."),
    ),
    key=("source_file", "source_line", "reason"),
)

LOAD_LOG = Table(
    "load_log",
    "One row per canonical table per load: what was loaded, from where, when, by which version "
    "(written by every reader at the end of a load; 'hyperinflam info' shows it).",
    (
        C("load_id", "BIGINT", True, "The load (1, 2, ...): every table of one load shares it."),
        C("loaded_at", "TIMESTAMP", True, "When the load finished, UTC."),
        C("hyperinflam_version", "VARCHAR", True, "The hyperinflam version that loaded it."),
        C("reader", "VARCHAR", True, "'csv', 'omop', 'fhir' or 'meds'."),
        C("source", "VARCHAR", True, "What was loaded: the folder, file, database or URL."),
        C("target_table", "VARCHAR", True, "The canonical table."),
        C("table_source", "VARCHAR", True, "Where that table's rows came from (the value of "
          "quarantine.source_file for its quarantined rows)."),
        C("time_zone", "VARCHAR", True, "The site time zone (--tz) times without an offset were read in."),
        C("rows_read", "BIGINT", True, "Rows read = loaded + already present + quarantined."),
        C("rows_loaded", "BIGINT", True, "Rows added to the table."),
        C("rows_already_present", "BIGINT", True, "Identical rows loaded by an earlier load."),
        C("rows_quarantined", "BIGINT", True, "Rows written to the quarantine."),
    ),
    key=("load_id", "target_table"),
)

SOURCE_DOMAINS = Table(
    "source_domains",
    "One row per load and domain: whether the source provides that domain at all (each "
    "measurement variable, drug administrations, each organ-support kind, vasoactive agents, "
    "conditions, infections, deaths, weight; vocabulary/domain.py domain_catalogue). A domain "
    "no load records is 'not recorded': everything derived from it is unknown, never 'no' or 0 "
    "(docs/data-model.md). Written by every reader inside the load's final transaction.",
    (
        C("load_id", "BIGINT", True, "The load (load_log.load_id)."),
        C("reader", "VARCHAR", True, "'csv', 'omop', 'fhir' or 'meds'."),
        C("source", "VARCHAR", True, "What was loaded (load_log.source)."),
        C("domain", "VARCHAR", True, "'measurement:<variable>', 'drugs', 'support:<kind>', "
          "'vasoactive', 'conditions', 'infection', 'death', 'infection_test' or 'weight'."),
        C("kind", "VARCHAR", True, "measurement, drug, support, condition, event or weight."),
        C("recorded", "BOOLEAN", True, "True when the source provides the domain."),
        C("basis", "VARCHAR", True, "Why: 'rows' (the source holds rows of it), 'declared "
          "complete' / 'declared absent' (the site's domains.csv or --domains), 'no rows'."),
        C("rows", "BIGINT", True, "Rows of the domain this load added."),
    ),
    key=("load_id", "domain"),
)

CANONICAL_TABLES: tuple[Table, ...] = (
    PERSON,
    STAY,
    MEASUREMENT,
    DRUG_ADMINISTRATION,
    ORGAN_SUPPORT,
    CONDITION,
    EVENT,
)
ALL_TABLES: tuple[Table, ...] = CANONICAL_TABLES + (QUARANTINE,)
#: Bookkeeping of a DuckDB database, beside the tables above (not exported to Parquet).
BOOKKEEPING_TABLES: tuple[Table, ...] = (LOAD_LOG, SOURCE_DOMAINS)
TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in ALL_TABLES}

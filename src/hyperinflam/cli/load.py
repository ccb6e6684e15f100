"""``hyperinflam load csv | omop | fhir | meds``: a site's data into the canonical tables, then the
reconciliation (sources/: csv.py, omop/, fhir/, meds.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hyperinflam.cli.common import (QUIET_OPTION, SITE_TZ_OPTION, SPARK_CONF_OPTION,
                                    SPARK_MASTER_OPTION, UNITS_OPTION, check_tz, codes_option,
                                    console, db_option, domains_option, engine_option, fail, say,
                                    set_quiet, status)

load_app = typer.Typer(help="Load a site's data into the canonical tables.", no_args_is_help=True)


# --- load csv -------------------------------------------------------------------------------
def _run_load(db, units, label: str, load, *, tz: str = "UTC", quiet: bool = False) -> None:
    """Open the database, run ``load(con, vocabulary, status)`` with the site's unit spellings,
    and print the reconciliation; fixable errors become one message (exit 2)."""
    import duckdb

    from hyperinflam.engine import LOAD_MEMORY_LIMIT, connect, resolve_db_path
    from hyperinflam.errors import EngineError, SourceError, VocabularyError
    from hyperinflam.sources.quarantine import render_load_report
    from hyperinflam.vocabulary import Vocabulary

    set_quiet(quiet)
    check_tz(tz)
    try:
        vocabulary = Vocabulary(units)
        con = connect(db, memory_limit=LOAD_MEMORY_LIMIT)
        with status(label) as spinner:
            report = load(con, vocabulary, spinner)
    except (SourceError, VocabularyError, EngineError) as exc:
        fail(str(exc))
    except duckdb.Error as exc:
        fail(f"the database engine could not finish the load: {exc}. Nothing of this load was "
             f"written (the database is as it was before); if memory ran out, raise "
             f"HYPERINFLAM_LOAD_MEMORY_LIMIT (now {LOAD_MEMORY_LIMIT}).")
    con.disconnect()
    render_load_report(report, console)
    path = resolve_db_path(db)
    say(f"Database: {path}. Next: hyperinflam screen --db {path} --out screen.csv "
        f"(or 'hyperinflam info --db {path}', 'hyperinflam quarantine --db {path}').")


# (sources/csv.py)
@load_app.command(
    "csv",
    help=(
        "Load a folder of CSV files into the canonical tables, then print the reconciliation.\n\n"
        "FOLDER holds one CSV per table: person.csv and stay.csv (required), and optionally "
        "measurement.csv, drug_administration.csv, organ_support.csv, condition.csv, event.csv. "
        "Columns, units and time formats: docs/csv-layout.md; a complete example: "
        "docs/example-csv/. Site names for variables, drugs and support (e.g. 'Ferritine' -> "
        "ferritin) go in --codes files.\n\n"
        "Every row is loaded or quarantined with a reason and its file and line (table "
        "'quarantine'); loading the same folder again adds nothing. Exits 0 when the load "
        "completed (even with quarantined rows), 2 when a file or column is missing."
    ),
)
def load_csv_command(
    folder: Path = typer.Argument(..., help="Folder with person.csv, stay.csv and optional tables.",
                                  show_default=False, metavar="FOLDER"),
    db: Optional[Path] = db_option(),
    tz: str = SITE_TZ_OPTION,
    units: Optional[Path] = UNITS_OPTION,
    codes: Optional[list[Path]] = codes_option("Here: rows of system CSV give the site's own "
                                               "names of variables, drugs and supports, e.g. "
                                               "measurement,ferritin,CSV,Ferritine (serum); a "
                                               "drug's name also names a vasoactive support."),
    domains: Optional[list[Path]] = domains_option("Here: FOLDER/domains.csv is read first, "
                                                   "then these."),
    quiet: bool = QUIET_OPTION,
) -> None:
    from hyperinflam.sources.csv import load_csv_folder

    _run_load(db, units, f"Loading {folder}...", lambda con, vocabulary, spinner: load_csv_folder(
        con, folder, vocabulary=vocabulary, tz=tz, codes=codes or (), domains=domains or (),
        progress=lambda table: spinner.update(f"Loading {folder}: {table}...")),
        tz=tz, quiet=quiet)


# --- load omop ------------------------------------------------------------------------------
# (sources/omop/)
@load_app.command(
    "omop",
    help=(
        "Load an OMOP CDM (v5.4; v5.3 where it differs) into the canonical tables, then print "
        "the reconciliation.\n\nSOURCE: a DuckDB file, a folder of OMOP Parquet or CSV files "
        "(person.parquet / person.csv ...), or a postgresql://user@host:5432/db URL (read through "
        "DuckDB's postgres extension). PICU stays, codes and units: docs/sources-omop.md. Exits 0 "
        "when the load completed (even with quarantined rows), 2 on a wrong path, connection, "
        "table or column.\n\n"
        "On Apache Spark (a large CDM): --engine spark reads SOURCE = a folder of OMOP Parquet "
        "tables (person.parquet or person/*.parquet ...; a local path or s3a://, abfss://, "
        "hdfs://, dbfs:/) or catalog:DATABASE (a Spark catalog / Hive metastore database), and "
        "writes --db OUT_DIR, a new folder of canonical Parquet tables plus the quarantine (the "
        "layout of 'export parquet'), for 'screen' and 'study run --engine spark --db OUT_DIR'. "
        "Same mapping, checks and reconciliation; the executors do the work, only counts come "
        "back. Example: hyperinflam load omop omop-parquet/ --db site-parquet --engine spark "
        "--spark-master spark://head:7077. See docs/scale.md."
    ),
)
def load_omop_command(
    source: str = typer.Argument(..., help="DuckDB file, Parquet/CSV folder or postgresql:// URL "
                                 "(--engine spark: Parquet folder or catalog:DATABASE).",
                                 show_default=False, metavar="SOURCE"),
    db: Optional[str] = db_option("With --engine spark: OUT_DIR, a new folder of canonical "
                                  "Parquet tables (local or URI)."),
    schema: Optional[str] = typer.Option(None, "--schema", metavar="NAME", help="CDM schema "
                                         "(default: main for DuckDB, public for PostgreSQL)."),
    codes: Optional[list[Path]] = codes_option(),
    units: Optional[Path] = UNITS_OPTION,
    domains: Optional[list[Path]] = domains_option("Not with --engine spark."),
    picu_concept: Optional[list[int]] = typer.Option(None, "--picu-concept", metavar="CONCEPT_ID",
                                                     help="Extra visit_detail concept id marking "
                                                     "a PICU stay (repeatable)."),
    picu_care_site: Optional[list[int]] = typer.Option(None, "--picu-care-site",
                                                       metavar="CARE_SITE_ID", help="care_site_id "
                                                       "of the PICU (repeatable)."),
    stay_fallback: str = typer.Option("inpatient_children", "--stay-fallback", metavar="RULE",
                                      help="When no PICU visit_detail exists: inpatient_children "
                                      "or none."),
    ids: str = typer.Option("omop", "--ids", metavar="KIND", help="Identifiers: omop (person_id, "
                            "visit ids) or source_value (person_source_value, "
                            "visit_detail_source_value)."),
    tz: str = SITE_TZ_OPTION,
    engine: str = engine_option("Here: with 'spark', SOURCE is a Parquet folder or "
                                "catalog:DATABASE and --db a new folder of canonical Parquet "
                                "tables."),
    spark_master: Optional[str] = SPARK_MASTER_OPTION,
    spark_conf: Optional[list[str]] = SPARK_CONF_OPTION,
    quiet: bool = QUIET_OPTION,
) -> None:
    from hyperinflam.sources.omop.mapping import OmopOptions, load_omop

    options = OmopOptions(picu_concept_ids=tuple(picu_concept or ()),
                          picu_care_site_ids=tuple(picu_care_site or ()),
                          stay_fallback=stay_fallback, ids=ids)
    engine = (engine or "duckdb").strip().lower()
    codes = list(codes or ())
    if engine == "spark":
        set_quiet(quiet)
        check_tz(tz)
        if domains:
            fail("--domains needs --engine duckdb: the Spark load writes no domain record "
                 "(docs/sources.md).")
        _load_omop_spark(source, db, schema=schema, codes=codes, units=units, tz=tz,
                         options=options, spark_master=spark_master, spark_conf=spark_conf)
        return
    if engine != "duckdb":
        fail(f"--engine '{engine}' is not known: use duckdb or spark.")
    if spark_master or spark_conf:
        fail("--spark-master and --spark-conf need --engine spark.")
    _run_load(db, units, f"Loading {source}...", lambda con, vocabulary, spinner: load_omop(
        con, source, schema=schema, vocabulary=vocabulary, codes=codes, tz=tz, options=options,
        domains=domains or ()),
        tz=tz, quiet=quiet)


def _load_omop_spark(source: str, db, *, schema, codes, units, tz, options, spark_master,
                     spark_conf) -> None:
    """``load omop --engine spark``: checks that need no Spark first (one message each), then
    the load on Spark (sources/omop/spark.py) and the same reconciliation printout."""
    from hyperinflam.engine import parse_spark_conf, spark_session
    from hyperinflam.errors import EngineError, SourceError, VocabularyError
    from hyperinflam.sources.omop.spark import check_output, check_source, load_omop_spark
    from hyperinflam.sources.quarantine import render_load_report
    from hyperinflam.vocabulary import Vocabulary

    if db is None:
        fail("--engine spark needs --db OUT_DIR: a new folder for the canonical Parquet tables "
             "(then 'hyperinflam screen --engine spark --db OUT_DIR').")
    if schema:
        fail("--schema is for DuckDB and PostgreSQL sources; with --engine spark give "
             "catalog:DATABASE as SOURCE, or a folder of Parquet tables.")
    try:
        vocabulary = Vocabulary(units)
        check_source(source)
        check_output(db)
        conf = parse_spark_conf(spark_conf)
        with status("Starting Spark..."):
            session = spark_session(spark_master, conf)
        with status(f"Loading {source} on Spark..."):
            report, _ = load_omop_spark(session, source, db, vocabulary=vocabulary, codes=codes,
                                        tz=tz, options=options)
    except (SourceError, VocabularyError, EngineError) as exc:
        fail(str(exc))
    render_load_report(report, console)
    say(f"Wrote {db} (canonical Parquet tables and quarantine). Use it as --db {db} --engine "
        f"spark (or with DuckDB: --db {db}). Next: hyperinflam screen --db {db} --engine spark "
        f"--out screen.parquet")


# --- load fhir ------------------------------------------------------------------------------
# (sources/fhir/; docs/sources-fhir.md)
@load_app.command(
    "fhir",
    help=(
        "Load FHIR R4 data, then print the reconciliation.\n\n"
        "PATH is a Bundle or resource JSON file, a folder of them, or a bulk-data NDJSON folder "
        "(one <Type>.<nnn>.ndjson per resource type; non-FHIR files such as log.ndjson are "
        "skipped with a note). Reads Patient, Encounter (PICU stays: see --picu-class), "
        "Observation (LOINC), MedicationAdministration / MedicationRequest (RxNorm), Procedure "
        "(invasive ventilation, SNOMED) and Condition. Every row is loaded or quarantined with "
        "its reason and file:line (NDJSON) or file:entry (Bundle). See docs/sources-fhir.md."
    ),
)
def load_fhir_command(
    path: Path = typer.Argument(..., help="Bundle/resource JSON file, folder, or NDJSON folder.",
                                show_default=False, metavar="PATH"),
    db: Optional[Path] = db_option(),
    tz: str = SITE_TZ_OPTION,
    units: Optional[Path] = UNITS_OPTION,
    codes: Optional[list[Path]] = codes_option(),
    domains: Optional[list[Path]] = domains_option(),
    picu_class: Optional[list[str]] = typer.Option(None, "--picu-class", metavar="CODE",
                                                   help="Encounter.class code counted as a PICU "
                                                   "stay (repeatable), e.g. IMP when the export "
                                                   "holds only PICU encounters. Default: PICU by "
                                                   "Location only."),
    picu_location_type: Optional[list[str]] = typer.Option(
        None, "--picu-location-type", metavar="CODE", help="Location.type code of a PICU "
        "(repeatable). Default PEDICU and ICU."),
    no_requests: bool = typer.Option(False, "--no-requests", help="Do not load MedicationRequest "
                                     "(orders) as drug administrations."),
    quiet: bool = QUIET_OPTION,
) -> None:
    from hyperinflam.sources.fhir.reader import FhirSettings, load_fhir

    base = FhirSettings()
    settings = FhirSettings(
        picu_location_types=tuple(picu_location_type or base.picu_location_types),
        picu_encounter_classes=tuple(picu_class or ()), read_requests=not no_requests)
    _run_load(db, units, "Loading FHIR...", lambda con, vocabulary, spinner: load_fhir(
        con, path, vocabulary=vocabulary, codes=list(codes or ()), tz=tz, settings=settings,
        domains=domains or ()),
        tz=tz, quiet=quiet)


# --- load meds ------------------------------------------------------------------------------
# (sources/meds.py)
@load_app.command(
    "meds",
    help=(
        "Load MEDS events (Medical Event Data Standard, Parquet: subject_id, time, code, "
        "numeric_value) into the canonical tables, then print the reconciliation.\n\n"
        "PATH is a MEDS Parquet file or a MEDS dataset folder (its data/ shards). Codes map to "
        "variables, drugs and organ-support kinds through the MEDS rows of vocabulary/codes.csv "
        "(add yours with --codes); the unit is the last part of a LAB code; a START code pairs "
        "with its END code as an interval (ventilation, vasoactive infusions with their rate); "
        "every DIAGNOSIS//ICD// code is a condition. PICU stays are rebuilt from ICU_ADMISSION / "
        "ICU_DISCHARGE events: a stay counts when its care unit matches --picu-unit (default: "
        "PICU, pediatric) and the child is at most --max-age years old. MIMIC-IV is adult-only: "
        "load its demo with --all-icu --any-age. See docs/sources-meds.md."
    ),
)
def load_meds_command(
    path: Path = typer.Argument(..., help="MEDS Parquet file or dataset folder.",
                                show_default=False, metavar="PATH"),
    db: Optional[Path] = db_option(),
    codes: Optional[list[Path]] = codes_option(),
    units: Optional[Path] = UNITS_OPTION,
    domains: Optional[list[Path]] = domains_option(),
    picu_unit: Optional[list[str]] = typer.Option(None, "--picu-unit", metavar="TEXT",
                                                  help="Care-unit name fragment that makes an "
                                                  "ICU stay a PICU stay (case-insensitive; "
                                                  "repeatable). Default: picu, pediatric, "
                                                  "paediatric."),
    all_icu: bool = typer.Option(False, "--all-icu", help="Every ICU unit counts as a PICU."),
    max_age: float = typer.Option(21, "--max-age", metavar="YEARS", help="Oldest age at "
                                  "admission, in completed years (clinical reference §11.2 "
                                  "project scope: 0-21)."),
    any_age: bool = typer.Option(False, "--any-age", help="No age limit (e.g. the adult MIMIC-IV "
                                 "demo)."),
    shift_years: Optional[int] = typer.Option(None, "--shift-years", metavar="YEARS",
                                              help="Move every time back by this many years (a "
                                              "multiple of 400: dates and weekdays unchanged). "
                                              "Default: automatic when the source is "
                                              "date-shifted into the future."),
    tz: str = SITE_TZ_OPTION,
    quiet: bool = QUIET_OPTION,
) -> None:
    from hyperinflam.sources.meds import PICU_UNIT_PATTERNS, load_meds

    _run_load(db, units, "Loading MEDS events...", lambda con, vocabulary, spinner: load_meds(
        con, path, vocabulary=vocabulary, codes=codes or (),
        picu_units=tuple(picu_unit) if picu_unit else PICU_UNIT_PATTERNS,
        all_icu=all_icu, max_age_years=None if any_age else max_age,
        shift_years=shift_years, tz=tz, domains=domains or (),
        progress=lambda step: spinner.update(f"Loading MEDS events: {step}...")),
        tz=tz, quiet=quiet)

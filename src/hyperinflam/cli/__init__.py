"""The ``hyperinflam`` command line (typer + rich).

Each command is a thin shell over a library function: parse options, call, render. Errors the user
can fix (a missing column, an unknown key in a study file) are printed as one clear message and
exit with status 2, never as a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from hyperinflam import __version__

app = typer.Typer(
    name="hyperinflam",
    help=(
        "Screen PICU stays for the hyperinflammatory phenotype (sHLH / MAS / sepsis-MODS), follow "
        "anakinra therapy, and run the founding case-series study on your own data.\n\n"
        "Start with 'hyperinflam demo': it generates a synthetic PICU cohort into the embedded "
        "DuckDB database and runs the founding study (Rajasekaran 2014), writing an offline HTML "
        "report."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
load_app = typer.Typer(help="Load a site's data into the canonical tables.", no_args_is_help=True)
study_app = typer.Typer(help="Run declarative studies (see the studies/ folder).", no_args_is_help=True)
app.add_typer(load_app, name="load")
app.add_typer(study_app, name="study")

console = Console()
err_console = Console(stderr=True)

DB_HELP = ("DuckDB database file holding the canonical tables. Default: hyperinflam.duckdb in "
           "your user data directory.")


# Options every reader shares (one definition, one help text).
UNITS_OPTION = typer.Option(
    None, "--units", help="Site unit spellings: a CSV laid out like vocabulary/units.csv "
    "(variable,unit,factor,offset,status,reference); its rows take precedence.")
SITE_TZ_OPTION = typer.Option(
    "UTC", "--tz", help="Site time zone (IANA name, e.g. Europe/Amsterdam) of times written "
    "without an offset. Stored times are UTC.")

# --engine / --spark-master / --spark-conf of screen, study run and load omop (docs/scale.md).
ENGINE_OPTION = typer.Option(
    "duckdb", "--engine", help="Engine that computes: 'duckdb' (embedded, default) or 'spark' "
    "(reads --db as a Parquet folder or catalog:DATABASE; see docs/scale.md).")
SPARK_MASTER_OPTION = typer.Option(
    None, "--spark-master", help="Spark master URL with --engine spark, e.g. spark://host:7077. "
    "Default local[*].")
SPARK_CONF_OPTION = typer.Option(
    None, "--spark-conf", help="Spark setting KEY=VALUE (repeatable), e.g. --spark-conf "
    "spark.executor.memory=8g.")


def fail(message: str, code: int = 2) -> None:
    """Print a user-facing error (no traceback) and exit."""
    # soft_wrap: no line breaks inserted into paths and commands the user may copy
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.callback(invoke_without_command=True)
def _main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")):
    if version:
        console.print(f"hyperinflam {__version__}")
        raise typer.Exit()


# --- load csv -------------------------------------------------------------------------------
def _run_load(db, units, label: str, load) -> None:
    """Open the database, run ``load(con, vocabulary, status)`` with the site's unit spellings,
    and print the reconciliation; fixable errors become one message (exit 2)."""
    import duckdb

    from hyperinflam.engine import LOAD_MEMORY_LIMIT, connect
    from hyperinflam.errors import EngineError, SourceError, VocabularyError
    from hyperinflam.sources.quarantine import render_load_report
    from hyperinflam.vocabulary import Vocabulary

    try:
        vocabulary = Vocabulary(units)
        con = connect(db, memory_limit=LOAD_MEMORY_LIMIT)
        with console.status(label, spinner="dots") as status:
            report = load(con, vocabulary, status)
    except (SourceError, VocabularyError, EngineError) as exc:
        fail(str(exc))
    except duckdb.Error as exc:
        fail(f"the database engine could not finish the load: {exc}. Nothing of the table being "
             f"loaded was written; if memory ran out, raise HYPERINFLAM_LOAD_MEMORY_LIMIT "
             f"(now {LOAD_MEMORY_LIMIT}).")
    con.disconnect()
    render_load_report(report, console)


# (sources/csv.py)
@load_app.command(
    "csv",
    help=(
        "Load a folder of CSV files into the canonical tables, then print the reconciliation.\n\n"
        "FOLDER holds one CSV per table: person.csv and stay.csv (required), and optionally "
        "measurement.csv, drug_administration.csv, organ_support.csv, condition.csv, event.csv. "
        "Columns, units and time formats: docs/csv-layout.md; a complete example: "
        "docs/example-csv/.\n\n"
        "Every row is loaded or quarantined with a reason and its file and line (table "
        "'quarantine'); loading the same folder again adds nothing. Exits 0 when the load "
        "completed (even with quarantined rows), 2 when a file or column is missing."
    ),
)
def load_csv_command(
    folder: Path = typer.Argument(..., help="Folder with person.csv, stay.csv and optional tables.",
                                  show_default=False),
    db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
    tz: str = SITE_TZ_OPTION,
    units: Optional[Path] = UNITS_OPTION,
) -> None:
    from hyperinflam.sources.csv import load_csv_folder

    _run_load(db, units, f"Loading {folder}...", lambda con, vocabulary, status: load_csv_folder(
        con, folder, vocabulary=vocabulary, tz=tz,
        progress=lambda table: status.update(f"Loading {folder}: {table}...")))


# --- load omop ------------------------------------------------------------------------------
# (sources/omop.py)
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
                                 show_default=False),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP + " With --engine spark: OUT_DIR, "
                                     "a new folder of canonical Parquet tables (local or URI)."),
    schema: Optional[str] = typer.Option(None, "--schema", help="CDM schema (default: main for "
                                         "DuckDB, public for PostgreSQL)."),
    codes: Optional[Path] = typer.Option(None, "--codes", help="Site codes: a CSV laid out like "
                                         "vocabulary/codes_omop.csv (kind,target,vocabulary_id,"
                                         "concept_code,concept_id,reference); rows are added."),
    units: Optional[Path] = UNITS_OPTION,
    picu_concept: Optional[list[int]] = typer.Option(None, "--picu-concept", help="Extra "
                                                     "visit_detail concept id marking a PICU stay "
                                                     "(repeatable)."),
    picu_care_site: Optional[list[int]] = typer.Option(None, "--picu-care-site", help="care_site_id "
                                                       "of the PICU (repeatable)."),
    stay_fallback: str = typer.Option("inpatient_children", "--stay-fallback", help="When no PICU "
                                      "visit_detail exists: inpatient_children or none."),
    ids: str = typer.Option("omop", "--ids", help="Identifiers: omop (person_id, visit ids) or "
                            "source_value (person_source_value, visit_detail_source_value)."),
    tz: str = SITE_TZ_OPTION,
    engine: str = typer.Option("duckdb", "--engine", help="'duckdb' (default: --db is a DuckDB "
                               "file) or 'spark' (SOURCE is a Parquet folder or catalog:DATABASE; "
                               "--db is a new folder of canonical Parquet tables; docs/scale.md)."),
    spark_master: Optional[str] = SPARK_MASTER_OPTION,
    spark_conf: Optional[list[str]] = SPARK_CONF_OPTION,
) -> None:
    from hyperinflam.sources.omop.mapping import OmopOptions, load_omop

    options = OmopOptions(picu_concept_ids=tuple(picu_concept or ()),
                          picu_care_site_ids=tuple(picu_care_site or ()),
                          stay_fallback=stay_fallback, ids=ids)
    engine = (engine or "duckdb").strip().lower()
    if engine == "spark":
        _load_omop_spark(source, db, schema=schema, codes=codes, units=units, tz=tz,
                         options=options, spark_master=spark_master, spark_conf=spark_conf)
        return
    if engine != "duckdb":
        fail(f"--engine '{engine}' is not known: use duckdb or spark.")
    if spark_master or spark_conf:
        fail("--spark-master and --spark-conf need --engine spark.")
    _run_load(db, units, f"Loading {source}...", lambda con, vocabulary, status: load_omop(
        con, source, schema=schema, vocabulary=vocabulary, codes=codes, tz=tz, options=options))


def _load_omop_spark(source: str, db, *, schema, codes, units, tz, options, spark_master,
                     spark_conf) -> None:
    """``load omop --engine spark``: checks that need no Spark first (one message each), then
    the load on Spark (sources/omop_spark.py) and the same reconciliation printout."""
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
        with console.status("Starting Spark...", spinner="dots"):
            session = spark_session(spark_master, conf)
        with console.status(f"Loading {source} on Spark...", spinner="dots"):
            report, _ = load_omop_spark(session, source, db, vocabulary=vocabulary, codes=codes,
                                        tz=tz, options=options)
    except (SourceError, VocabularyError, EngineError) as exc:
        fail(str(exc))
    render_load_report(report, console)
    console.print(f"Wrote [bold]{db}[/] (canonical Parquet tables and quarantine). Use it as "
                  f"--db {db} --engine spark (or with DuckDB: --db {db}).", highlight=False)


# --- load fhir ------------------------------------------------------------------------------
# (sources/fhir.py; docs/sources-fhir.md)
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
                                show_default=False),
    db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
    tz: str = SITE_TZ_OPTION,
    units: Optional[Path] = UNITS_OPTION,
    codes: Optional[Path] = typer.Option(None, "--codes", help="Site codes: a CSV laid out like "
                                         "vocabulary/codes_loinc.csv (system,code,kind,target,"
                                         "display,status,reference); its rows take precedence."),
    picu_class: Optional[list[str]] = typer.Option(None, "--picu-class", help="Encounter.class "
                                                   "code counted as a PICU stay (repeatable), e.g. "
                                                   "IMP when the export holds only PICU "
                                                   "encounters. Default: PICU by Location only."),
    picu_location_type: Optional[list[str]] = typer.Option(
        None, "--picu-location-type", help="Location.type code of a PICU (repeatable). Default "
        "PEDICU and ICU."),
    no_requests: bool = typer.Option(False, "--no-requests", help="Do not load MedicationRequest "
                                     "(orders) as drug administrations."),
) -> None:
    from hyperinflam.sources.fhir.reader import FhirSettings, load_fhir

    base = FhirSettings()
    settings = FhirSettings(
        picu_location_types=tuple(picu_location_type or base.picu_location_types),
        picu_encounter_classes=tuple(picu_class or ()), read_requests=not no_requests)
    _run_load(db, units, "Loading FHIR...", lambda con, vocabulary, status: load_fhir(
        con, path, vocabulary=vocabulary, codes=codes, tz=tz, settings=settings))


# --- load meds ------------------------------------------------------------------------------
# (sources/meds.py)
@load_app.command(
    "meds",
    help=(
        "Load MEDS events (Medical Event Data Standard, Parquet: subject_id, time, code, "
        "numeric_value) into the canonical tables, then print the reconciliation.\n\n"
        "PATH is a MEDS Parquet file or a MEDS dataset folder (its data/ shards). Codes map to "
        "variables and drugs through vocabulary/codes_meds.csv (add yours with --codes); the unit "
        "is the last part of a LAB code. PICU stays are rebuilt from ICU_ADMISSION / "
        "ICU_DISCHARGE events: a stay counts when its care unit matches --picu-unit (default: "
        "PICU, pediatric) and the child is at most --max-age years old. MIMIC-IV is adult-only: "
        "load its demo with --all-icu --any-age. See docs/sources-meds.md."
    ),
)
def load_meds_command(
    path: Path = typer.Argument(..., help="MEDS Parquet file or dataset folder.", show_default=False),
    db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
    codes: Optional[list[Path]] = typer.Option(None, "--codes", help="Site MEDS code map (layout "
                                               "of vocabulary/codes_meds.csv: code,variable,drug,"
                                               "unit_when_unk,reference); repeatable; its rows win."),
    units: Optional[Path] = UNITS_OPTION,
    picu_unit: Optional[list[str]] = typer.Option(None, "--picu-unit", help="Care-unit name "
                                                  "fragment that makes an ICU stay a PICU stay "
                                                  "(case-insensitive; repeatable). Default: picu, "
                                                  "pediatric, paediatric."),
    all_icu: bool = typer.Option(False, "--all-icu", help="Every ICU unit counts as a PICU."),
    max_age: float = typer.Option(21, "--max-age", help="Oldest age at admission, in completed "
                                  "years (clinical reference 11.2 project scope: 0-21)."),
    any_age: bool = typer.Option(False, "--any-age", help="No age limit (e.g. the adult MIMIC-IV "
                                 "demo)."),
    shift_years: Optional[int] = typer.Option(None, "--shift-years", help="Move every time back by "
                                              "this many years (a multiple of 400: dates and "
                                              "weekdays unchanged). Default: automatic when the "
                                              "source is date-shifted into the future."),
    tz: str = SITE_TZ_OPTION,
) -> None:
    from hyperinflam.sources.meds import PICU_UNIT_PATTERNS, load_meds

    _run_load(db, units, "Loading MEDS events...", lambda con, vocabulary, status: load_meds(
        con, path, vocabulary=vocabulary, codes=codes or (),
        picu_units=tuple(picu_unit) if picu_unit else PICU_UNIT_PATTERNS,
        all_icu=all_icu, max_age_years=None if any_age else max_age,
        shift_years=shift_years, tz=tz,
        progress=lambda step: status.update(f"Loading MEDS events: {step}...")))

# --- synth ----------------------------------------------------------------------------------
# (synth/)
SYNTH_HELP = (
    "Generate a synthetic PICU cohort as a folder of CSV files (one per canonical table).\n\n"
    "Writes person.csv, stay.csv, measurement.csv (labs and vital signs, about 340 rows per stay, "
    "units mixed per hospital lab system), drug_administration.csv (anakinra, corticosteroids, "
    "IVIG), organ_support.csv (invasive ventilation, vasoactive infusions), condition.csv "
    "(underlying diseases, splenomegaly, hepatomegaly, haemophagocytosis) and event.csv "
    "(infections, deaths), plus truth.csv, the group of each stay, which loaders ignore.\n\n"
    "Groups (default mix): anakinra-treated hyperinflammatory phenotype 3 % (markers at the start "
    "of anakinra and 7 days later follow Rajasekaran 2014), untreated phenotype 2 %, sepsis 20 %, "
    "other PICU admissions 75 %.\n\n"
    "Times are UTC without an offset (load with the default --tz UTC). The same --seed always "
    "gives byte-identical files. Memory stays flat: stays are generated and written in chunks, so "
    "millions of stays work."
)


@app.command("synth", help=SYNTH_HELP)
def synth_command(
    out: Path = typer.Option(..., "--out", help="Folder to write the CSV files into (created; "
                             "earlier synth files in it are replaced)."),
    stays: int = typer.Option(1000, "--stays", min=1, help="Number of PICU stays to generate."),
    seed: int = typer.Option(2014, "--seed", help="Random seed (same seed, same files)."),
    chunk_stays: int = typer.Option(2000, "--chunk-stays", min=1,
                                    help="Stays generated and written per chunk (memory use)."),
    mix: Optional[str] = typer.Option(
        None, "--mix", help="Shares of treated,untreated_phenotype,sepsis,other, e.g. "
        "0.03,0.02,0.20,0.75 (must sum to 1)."),
    db: Optional[Path] = typer.Option(None, "--db", help="Also load the folder into this DuckDB "
                                      "database (hyperinflam.sources.csv.load_csv_folder)."),
    admitted_from: str = typer.Option("2011-01-01", "--admitted-from", help="First admission "
                                      "date (YYYY-MM-DD)."),
    admitted_to: str = typer.Option("2024-12-31", "--admitted-to", help="Last admission date. A "
                                    "short window makes a busy ward for the bedside census, e.g. "
                                    "--stays 600 --admitted-from 2024-11-01 --admitted-to "
                                    "2024-11-30."),
):
    import datetime as dt

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from hyperinflam.synth.parameters import SynthParams
    from hyperinflam.synth.writer import synthesize

    for name, value in (("--admitted-from", admitted_from), ("--admitted-to", admitted_to)):
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            fail(f"{name} '{value}' is not a date; write YYYY-MM-DD.")
    if admitted_from > admitted_to:
        fail(f"--admitted-from {admitted_from} is after --admitted-to {admitted_to}.")
    shares = SynthParams().mix
    if mix is not None:
        try:
            shares = tuple(float(x) for x in mix.split(","))
            SynthParams(mix=shares)
        except ValueError as exc:
            fail(f"--mix '{mix}': {exc if 'mix must' in str(exc) else 'give four numbers separated by commas, e.g. 0.03,0.02,0.20,0.75'}")
    params = SynthParams(mix=shares, admitted_from=admitted_from, admitted_to=admitted_to)
    try:
        with Progress(TextColumn("[bold]synth[/]"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("stays"), TimeElapsedColumn(), console=err_console,
                      transient=True) as progress:
            task = progress.add_task("synth", total=stays)
            summary = synthesize(out, stays, seed, chunk_stays=chunk_stays, params=params,
                                       progress=lambda done, total: progress.update(task, completed=done))
    except OSError as exc:
        fail(f"cannot write to {out}: {exc.strerror or exc}. Choose a writable --out folder.")
    table = Table(title=f"Synthetic cohort in {summary['out_dir']} (seed {seed})")
    table.add_column("file")
    table.add_column("rows", justify="right")
    for name, rows in summary["files"].items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    groups = Table(title="Stays per group (truth.csv)")
    groups.add_column("group")
    groups.add_column("stays", justify="right")
    for name, n in summary["groups"].items():
        groups.add_row(name, f"{n:,}")
    console.print(groups)
    console.print("Times are UTC without an offset: load with --tz UTC (the default).")
    if db is not None:
        try:
            from hyperinflam.engine import connect
            from hyperinflam.sources.csv import load_csv_folder
        except ImportError:
            fail("the CSV reader (hyperinflam.sources.csv) is not available in this version; "
                 f"load the folder later with 'hyperinflam load csv {out} --db {db}'.")
        from hyperinflam.engine import LOAD_MEMORY_LIMIT
        from hyperinflam.errors import EngineError, SourceError
        try:
            report = load_csv_folder(connect(db, memory_limit=LOAD_MEMORY_LIMIT), out, tz="UTC")
        except (SourceError, EngineError) as exc:
            fail(str(exc))
        console.print(f"Loaded into {db}: " + ", ".join(
            f"{t.table} {t.loaded:,}" for t in report.tables))

# --- study run ------------------------------------------------------------------------------
# (study/, report/)


def _run_and_render(con, study_ref: str, out: Path, *, db_label: str) -> Path:
    """Run a study on an open database and write every output; returns the report path."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from hyperinflam.errors import StudyDefinitionError
    from hyperinflam.report import render_terminal, write_outputs
    from hyperinflam.study.definition import load_study
    from hyperinflam.study.run import run_study

    try:
        study = load_study(study_ref)
    except (StudyDefinitionError, FileNotFoundError) as exc:
        fail(str(exc))
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(f"study {study.study.id}: starting", total=None)

        def progress(step: str) -> None:
            bar.update(task, description=f"study {study.study.id}: {step}")

        try:
            results = run_study(con, study, progress=progress)
        except StudyDefinitionError as exc:  # found only when the study meets the data
            fail(f"{study_ref}: {exc}")
        results.provenance.setdefault("database", db_label)
        progress("writing outputs")
        paths = write_outputs(results, out)
    render_terminal(results, console)
    console.print()
    for kind, path in paths.items():
        console.print(f"  {kind:<14} {path}")
    return paths["report_html"]


@study_app.command("run")
def study_run(
    study: str = typer.Argument(
        ..., help="A study file (TOML), or the name of a shipped study: 'rajasekaran2014'."),
    db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
    out: Path = typer.Option(Path("study-out"), "--out",
                             help="Folder for results.csv, results.json, observations.csv and "
                                  "report.html (created if missing)."),
    engine: str = ENGINE_OPTION,
    spark_master: Optional[str] = SPARK_MASTER_OPTION,
    spark_conf: Optional[list[str]] = SPARK_CONF_OPTION,
):
    """Run a declarative study on the canonical tables and write its results and report.

    The founding study (Rajasekaran 2014) ships as 'rajasekaran2014': children whose PICU stay
    includes anakinra; CRP, ferritin, fibrinogen, ANC and ALC at the first dose and 7 days later;
    mean +- SEM, % change, paired t-test and Wilcoxon signed-rank. See docs/study-definition.md to
    write your own.
    """
    from hyperinflam.engine import resolve_db_path

    con = open_engine_or_fail(db, engine, spark_master, spark_conf)
    _run_and_render(con, study, out, db_label=str(resolve_db_path(db)))


# --- demo -----------------------------------------------------------------------------------


@app.command()
def demo(
    out: Path = typer.Option(Path("hyperinflam-demo"), "--out",
                             help="Folder for the demo's results and report.html."),
    stays: int = typer.Option(1000, "--stays", min=50, help="Synthetic PICU stays to generate."),
    seed: int = typer.Option(2014, "--seed", help="Seed of the synthetic cohort (deterministic)."),
    db: Optional[Path] = typer.Option(
        None, "--db", help="Database for the demo (replaced). Default: demo.duckdb in your user "
                           "data directory, so the demo never touches your real database."),
):
    """Generate a synthetic PICU cohort into the embedded DuckDB and run the founding study.

    Takes a few seconds. Prints the marker table and where the offline HTML report is.
    """
    import shutil
    import tempfile
    import time

    from hyperinflam.engine import LOAD_MEMORY_LIMIT, connect, default_db_path
    from hyperinflam.sources.csv import load_csv_folder, render_load_report
    from hyperinflam.synth.writer import synthesize

    started = time.perf_counter()
    db_path = Path(db) if db else default_db_path().with_name("demo.duckdb")
    for stale in (db_path, db_path.with_name(db_path.name + ".wal")):
        stale.unlink(missing_ok=True)
    console.print(f"[bold]hyperinflam demo[/]: {stays} synthetic PICU stays (seed {seed}) -> "
                  f"{db_path}")
    with tempfile.TemporaryDirectory(prefix="hyperinflam-demo-") as tmp:
        csv_dir = Path(tmp) / "csv"
        synthesize(csv_dir, stays, seed)
        con = connect(db_path, memory_limit=LOAD_MEMORY_LIMIT)
        report = load_csv_folder(con, csv_dir)
        render_load_report(report, console)
        shutil.rmtree(csv_dir, ignore_errors=True)
    report_path = _run_and_render(con, "rajasekaran2014", out, db_label=f"{db_path} (synthetic)")
    con.disconnect()
    console.print(f"\n[bold green]Done in {time.perf_counter() - started:.1f} s.[/] Open the "
                  f"report: [bold]{report_path.resolve()}[/]")

# --- screen ---------------------------------------------------------------------------------
# (features.py, criteria/)
SCREEN_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _parse_grid(text: str) -> float:
    """'24h', '24', '6 h' or '1d' -> hours."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([hd]?)\s*", text or "", flags=re.IGNORECASE)
    if not match:
        fail(f"--grid '{text}' is not a step: write hours such as '24h', '6h' or '1d'.")
    hours = float(match.group(1)) * (24 if match.group(2).lower() == "d" else 1)
    if hours < 1:
        fail(f"--grid '{text}' is shorter than 1 hour: use a step of at least '1h'.")
    return hours


def _parse_at(text: str, tz: str):
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize(tz)
    except Exception as exc:  # noqa: BLE001 - any parse error is the user's to fix
        fail(f"--at '{text}' is not a time: write ISO 8601 such as '2024-03-01 14:30' or "
             f"'2024-03-01T14:30:00+01:00' ({exc}).")
    return stamp.tz_convert("UTC").tz_localize(None).to_pydatetime()


SCREEN_HELP = (
    "Screen every PICU stay for the hyperinflammatory phenotype.\n\n"
    "Evaluates every criterion and score (HLH-2004, HScore, MAS-2016, Phoenix, pSOFA, PRISM III, "
    "...) on every stay, either every --grid step from admission (default 24h: +24 h, +48 h, ... "
    "and at discharge) or at one time (--at). Labs use each score's look-back window "
    "(docs/time-model.md); a value that was not measured is 'unknown', never normal, unless the "
    "score's authors say so.\n\n"
    "Writes one row per stay x evaluation time to --out (CSV or Parquet; columns in "
    "docs/screen-output.md) and prints the stays that meet any criterion at their latest "
    "evaluation.\n\n"
    "Examples:\n\n"
    "hyperinflam screen --out screen.parquet\n\n"
    "hyperinflam screen --grid 6h --out screen.csv --db site.duckdb\n\n"
    "hyperinflam screen --at '2024-03-01 08:00' --tz Europe/Paris --out now.csv"
)


@app.command("screen", help=SCREEN_HELP)
def screen_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output file: .csv or .parquet. One row per "
                             "stay x evaluation time with every feature and criterion column "
                             "(docs/screen-output.md)."),
    db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
    at: Optional[str] = typer.Option(None, "--at", help="Evaluate the stays in the PICU at this one "
                                     "time (ISO 8601, e.g. '2024-03-01 14:30'; an offset such as "
                                     "+01:00 is honoured). Excludes --grid."),
    grid: Optional[str] = typer.Option(None, "--grid", help="Evaluate every stay every STEP from "
                                       "admission plus at discharge, e.g. '24h' (default), '6h', "
                                       "'1d'. Excludes --at."),
    tz: str = typer.Option("UTC", "--tz", help="Time zone of an --at time written without an "
                           "offset, e.g. 'Europe/Paris'."),
    criteria: Optional[list[str]] = typer.Option(None, "--criterion", "-c", help="Run only this "
                                                 "criterion (repeatable), e.g. -c hscore -c "
                                                 "hlh2004. Default: all."),
    engine: str = ENGINE_OPTION,
    spark_master: Optional[str] = SPARK_MASTER_OPTION,
    spark_conf: Optional[list[str]] = SPARK_CONF_OPTION,
):
    """Screen every PICU stay (see SCREEN_HELP)."""
    from hyperinflam.errors import FeatureError, ScreenError
    from hyperinflam.screening.screen import screen
    from hyperinflam.screening.summary import summarise_screen_file

    kind = SCREEN_FORMATS.get(out.suffix.lower())
    if kind is None:
        fail(f"--out {out}: unknown file type '{out.suffix}'; name a .csv or .parquet file.")
    if at is not None and grid is not None:
        fail("--at and --grid exclude each other: give --at TIME for one time or --grid STEP for "
             "the whole stay.")
    step_hours = _parse_grid(grid) if grid is not None else 24.0
    at_time = _parse_at(at, tz) if at is not None else None
    con = open_engine_or_fail(db, engine, spark_master, spark_conf)
    try:
        with console.status("Building the screen (features and criteria)...", spinner="dots"):
            expr = screen(con, at=at_time, step_hours=step_hours, criteria=criteria)
        out.parent.mkdir(parents=True, exist_ok=True)
        with console.status(f"Evaluating and writing {out}...", spinner="dots"):
            write_result_file(con, expr.order_by(["stay_id", "eval_time"]), out, kind)
    except (FeatureError, ScreenError) as exc:
        fail(str(exc))
    finally:
        con.disconnect()

    with console.status("Summarising...", spinner="dots"):
        summary = summarise_screen_file(out, kind, criteria)
    n_rows, n_stays, n_meeting, shown = (summary.n_rows, summary.n_stays, summary.n_meeting,
                                         summary.shown)
    console.print(f"Wrote [bold]{n_rows}[/] evaluations of [bold]{n_stays}[/] stays to "
                  f"[bold]{out}[/].")
    if shown.empty:
        console.print("No stay meets any criterion at any evaluation.")
        return
    console.print(_screen_table(shown, n_meeting, criteria))


def _screen_table(shown, n_meeting: int, criteria):
    """The stays meeting a criterion, most criteria first: a rich table of fixed columns."""
    from rich.table import Table

    from hyperinflam.criteria import label as criterion_label
    from hyperinflam.screening.screen import select_criteria
    from hyperinflam.screening.summary import SUMMARY_PEAKS

    names = [m.NAME for m in select_criteria(criteria) if getattr(m, "RESULT", None)]
    title = (f"{n_meeting} stays meet at least one criterion"
             + (f" (the first {len(shown)} shown; all in the output file)"
                if n_meeting > len(shown) else ""))
    table = Table(title=title, title_justify="left")
    table.add_column("stay", no_wrap=True)
    table.add_column("first met\n(h)", justify="right")
    table.add_column("criteria met", ratio=1, min_width=24)
    peaks = [(label, col) for label, (col, _) in SUMMARY_PEAKS.items() if col in shown.columns]
    for label, _ in peaks:
        table.add_column(label, justify="right")
    for row in shown.to_dict("records"):
        met = [n for n in names if bool(row.get(f"{n}_met"))]
        hours = (row["first_met_time"] - row["admit_time"]).total_seconds() / 3600
        cells = [str(row["stay_id"]), f"{hours:.0f}",
                 ", ".join(criterion_label(n) for n in met)]
        cells += ["" if _is_missing(row[col]) else f"{row[col]:,.0f}" for _, col in peaks]
        table.add_row(*cells)
    return table


def _is_missing(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value)) if not isinstance(value, (list, tuple)) else False


# --- serve / users / audit ------------------------------------------------------------------
# (web/: the bedside application; docs/web.md)
users_app = typer.Typer(help="Accounts of the web application (stored in the state database).",
                        no_args_is_help=True)
app.add_typer(users_app, name="users")

STATE_HELP = ("State database of the web application (users, audit). Default: "
              "<db>.web.sqlite next to --db.")


def _state_store(db: Optional[Path], state: Optional[Path]):
    from hyperinflam.engine import resolve_db_path
    from hyperinflam.web.state import StateStore, default_state_path

    return StateStore(state or default_state_path(resolve_db_path(db)))


@app.command()
def serve(
    db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    state: Optional[Path] = typer.Option(None, "--state", help=STATE_HELP),
    https: bool = typer.Option(False, "--https", help="Mark the session cookie Secure (set when "
                               "a TLS proxy serves the app over https)."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Pin 'now' to this time (ISO 8601, "
                                        "UTC), e.g. to show the demo data as a live census."),
    refresh: float = typer.Option(60.0, "--refresh", min=1, help="Seconds between live census "
                                  "recomputations."),
):
    """Serve the bedside web application: census, patient timeline, anakinra course.

    Create an account first: 'hyperinflam users add NAME --role clinician'. Then open
    http://HOST:PORT/ and sign in. The access log records route templates only, never a patient
    identifier; every patient view is written to the audit table ('hyperinflam audit').
    """
    import logging

    import uvicorn

    from hyperinflam.engine import resolve_db_path
    from hyperinflam.web import WebSettings, create_app

    pinned = _parse_at(as_of, "UTC") if as_of else None
    try:
        application = create_app(WebSettings(db=resolve_db_path(db), state=state, https=https,
                                             pinned_now=pinned, census_refresh_seconds=refresh))
    except FileNotFoundError as exc:
        fail(str(exc))
    if not application.state.store.list_users():
        err_console.print("[yellow]No account yet:[/] create one with 'hyperinflam users add NAME "
                          "--role clinician'.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    console.print(f"Serving on http://{host}:{port}/ (Ctrl+C to stop)")
    uvicorn.run(application, host=host, port=port, access_log=False, log_level="warning")


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="User name (no spaces)."),
    role: str = typer.Option(..., "--role", help="clinician (identified patients) or researcher "
                             "(pseudonymous ids, shifted dates)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from "
                                        "standard input instead of prompting."),
    replace: bool = typer.Option(False, "--replace", help="Replace an existing user's password "
                                 "and role."),
    db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
    state: Optional[Path] = typer.Option(None, "--state", help=STATE_HELP),
):
    """Create a local account (password hashed with argon2id)."""
    import sys

    from hyperinflam.errors import StateError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = _state_store(db, state).add_user(name, role, password, replace=replace)
    except StateError as exc:
        fail(str(exc))
    console.print(f"User [bold]{user.name}[/] ({user.role}) saved.")


@users_app.command("list")
def users_list(db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
               state: Optional[Path] = typer.Option(None, "--state", help=STATE_HELP)):
    """List the accounts."""
    from rich.table import Table

    table = Table("name", "role", "created (UTC)", "disabled")
    for u in _state_store(db, state).list_users():
        table.add_row(u["name"], u["role"], u["created_at"], "yes" if u["disabled"] else "")
    console.print(table)


@users_app.command("remove")
def users_remove(name: str = typer.Argument(...),
                 db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
                 state: Optional[Path] = typer.Option(None, "--state", help=STATE_HELP)):
    """Remove an account and its API tokens."""
    from hyperinflam.errors import StateError

    try:
        _state_store(db, state).remove_user(name)
    except StateError as exc:
        fail(str(exc))
    console.print(f"User [bold]{name}[/] removed.")


@users_app.command("token")
def users_token(name: str = typer.Argument(...), label: str = typer.Option("", "--label"),
                db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
                state: Optional[Path] = typer.Option(None, "--state", help=STATE_HELP)):
    """Create an API token for scripts ('Authorization: Bearer TOKEN'); shown once."""
    from hyperinflam.errors import StateError

    try:
        token = _state_store(db, state).create_token(name, label)
    except StateError as exc:
        fail(str(exc))
    console.print(token, highlight=False)


@app.command("audit")
def audit_command(
    limit: int = typer.Option(50, "--limit", min=1, help="Rows to show, newest first."),
    user: Optional[str] = typer.Option(None, "--user", help="Only this user."),
    action: Optional[str] = typer.Option(None, "--action", help="Only this action, e.g. "
                                         "view_patient."),
    db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
    state: Optional[Path] = typer.Option(None, "--state", help=STATE_HELP),
):
    """List the audit trail of the web application: who viewed which patient, when, from where."""
    from rich.table import Table

    rows = _state_store(db, state).audit_rows(limit=limit, user=user, action=action)
    table = Table("time (UTC)", "user", "role", "action", "stay", "person", "address", "detail",
                  title=f"audit ({len(rows)} rows, newest first)")
    for r in rows:
        table.add_row(*(str(r[k] or "") for k in ("time", "user", "role", "action", "stay_id",
                                                  "person_id", "address", "detail")))
    console.print(table)


# --- engines / export -----------------------------------------------------------------------
# (engine.py, sources/parquet.py; docs/scale.md)
export_app = typer.Typer(help="Write the canonical tables out for other engines.",
                         no_args_is_help=True)
app.add_typer(export_app, name="export")

def open_engine_or_fail(db, engine: str = "duckdb", spark_master: Optional[str] = None,
                        spark_conf: Optional[list[str]] = None):
    """``hyperinflam.engine.open_engine`` with every fixable error printed as one message."""
    from hyperinflam.engine import open_engine
    from hyperinflam.errors import EngineError, SourceError

    try:
        if engine == "spark":
            with console.status("Starting Spark...", spinner="dots"):
                return open_engine(db, engine, spark_master, spark_conf)
        return open_engine(db, engine, spark_master, spark_conf)
    except (EngineError, SourceError, FileNotFoundError) as exc:
        fail(str(exc))


def write_result_file(con, expr, out: Path, kind: str) -> None:
    """Write a result table (a screen, not raw rows) to ONE local .csv or .parquet file.

    DuckDB streams it to the file; on Spark the result is collected to the driver as Arrow and
    written there (ibis' Spark writer would make a folder of part files instead of a file).
    """
    from hyperinflam.engine import engine_name

    if engine_name(con) == "duckdb":
        (expr.to_csv if kind == "csv" else expr.to_parquet)(out)
        return
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    table = expr.to_pyarrow()
    if kind == "csv":
        pa_csv.write_csv(table, out)
    else:
        pq.write_table(table, out)


def _run_export(db, label: str, write):
    """Open the database read-only, run ``write(con)`` with a spinner; fixable errors become one
    message. Returns (what write returned, seconds)."""
    import time

    from hyperinflam.engine import connect
    from hyperinflam.errors import SourceError

    try:
        con = connect(db, read_only=True)
    except FileNotFoundError as exc:
        fail(str(exc))
    started = time.perf_counter()
    try:
        with console.status(label, spinner="dots"):
            result = write(con)
    except SourceError as exc:
        fail(str(exc))
    finally:
        con.disconnect()
    return result, time.perf_counter() - started


@export_app.command("parquet")
def export_parquet_command(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (created; must be new or "
                             "empty unless --overwrite)."),
    db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier hyperinflam "
                                   "export in --out (never a folder of other files)."),
    partition: bool = typer.Option(True, "--partition/--no-partition", help="Partition "
                                   "measurement by variable (default; both engines then read "
                                   "only the variables a query needs)."),
):
    """Export the canonical tables to a folder of Parquet datasets (one per table).

    Spark, DuckDB and any lakehouse read the folder; every hyperinflam command accepts it as
    --db, and --engine spark needs it. Timestamps stay naive UTC. See docs/scale.md.

    Example: hyperinflam export parquet --db site.duckdb --out site-parquet
    """
    from hyperinflam.exports.parquet import export_parquet

    manifest, seconds = _run_export(db, f"Writing {out}...", lambda con: export_parquet(
        con, out, overwrite=overwrite, partition=partition))
    for name, info in manifest["tables"].items():
        parts = f" (partitioned by {', '.join(info['partition_by'])})" if info["partition_by"] \
            else ""
        console.print(f"  {name:<20} {info['rows']:>12,} rows{parts}")
    console.print(f"Wrote [bold]{out}[/] in {seconds:.1f} s. Use it as "
                  f"--db {out} (add --engine spark to compute on Spark).")


# --- export omop ----------------------------------------------------------------------------
# (sources/export_omop.py; docs/sources-omop.md)
@export_app.command("omop")
def export_omop_command(
    target: str = typer.Argument(..., help="DuckDB file (created) or postgresql://user@host:5432/db "
                                 "URL.", show_default=False),
    db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
    schema: str = typer.Option("cdm", "--schema", help="CDM schema to create (must not exist "
                               "yet, or be empty)."),
    codes: Optional[Path] = typer.Option(None, "--codes", help="Site codes (layout of "
                                         "vocabulary/codes_omop.csv); rows are added."),
):
    """Write the canonical tables as an OMOP CDM 5.4 schema (official DDL).

    The schema reads back into identical canonical tables with
    'hyperinflam load omop TARGET --schema NAME --ids source_value'. Encoding: docs/sources-omop.md.

    Example: hyperinflam export omop site-omop.duckdb --db site.duckdb
    """
    from hyperinflam.exports.omop import export_omop

    written, seconds = _run_export(db, f"Writing OMOP CDM 5.4 to {target}...",
                                   lambda con: export_omop(con, target, schema=schema, codes=codes))
    for name, n in written.items():
        console.print(f"  {name:<22} {n:>12,} rows")
    console.print(f"Wrote schema [bold]{schema}[/] in {seconds:.1f} s. Read it "
                  f"back with: hyperinflam load omop {target} --schema {schema} --ids source_value")


if __name__ == "__main__":  # pragma: no cover
    app()

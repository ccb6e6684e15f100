"""``hyperinflam synth`` (a synthetic cohort as CSV files) and ``hyperinflam demo`` (a synthetic
cohort in the embedded DuckDB and the founding study on it)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hyperinflam.cli.common import (QUIET_OPTION, check_db_or_fail, console, db_option,
                                    err_console, fail, out_option, plural, say, set_quiet)
from hyperinflam.cli.study import run_and_render

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


def synth_command(
    out: Path = out_option("Folder to write the CSV files into (created; earlier synth files in "
                           "it are replaced).", metavar="FOLDER"),
    stays: int = typer.Option(1000, "--stays", min=1, metavar="N",
                              help="Number of PICU stays to generate."),
    seed: int = typer.Option(2014, "--seed", metavar="N",
                             help="Random seed (same seed, same files)."),
    chunk_stays: int = typer.Option(2000, "--chunk-stays", min=1, metavar="N",
                                    help="Stays generated and written per chunk (memory use)."),
    mix: Optional[str] = typer.Option(
        None, "--mix", metavar="SHARES", help="Shares of treated,untreated_phenotype,sepsis,other, "
        "e.g. 0.03,0.02,0.20,0.75 (must sum to 1)."),
    db: Optional[Path] = db_option(default="Default: none (the folder only).",
                                   note="Also load the folder into it, as 'hyperinflam load csv "
                                   "OUT --db FILE' would."),
    admitted_from: str = typer.Option("2011-01-01", "--admitted-from", metavar="DATE",
                                      help="First admission date (YYYY-MM-DD)."),
    admitted_to: str = typer.Option("2024-12-31", "--admitted-to", metavar="DATE", help="Last "
                                    "admission date. A short window makes a busy ward for the "
                                    "bedside census, e.g. --stays 600 --admitted-from 2024-11-01 "
                                    "--admitted-to 2024-11-30."),
    quiet: bool = QUIET_OPTION,
):
    import datetime as dt

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from hyperinflam.synth.parameters import SynthParams
    from hyperinflam.synth.writer import synthesize

    set_quiet(quiet)
    if db is not None:
        check_db_or_fail(db)  # before generating anything
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
                      transient=True, disable=quiet) as progress:
            task = progress.add_task("synth", total=stays)
            summary = synthesize(out, stays, seed, chunk_stays=chunk_stays, params=params,
                                       progress=lambda done, total: progress.update(task, completed=done))
    except OSError as exc:
        fail(f"cannot write to {out}: {exc.strerror or exc}. Choose a writable --out folder.")
    from rich.text import Text

    table = Table(title=Text(f"Synthetic cohort in {summary['out_dir']} (seed {seed})"))
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
    say("Times are UTC without an offset: load with --tz UTC (the default).")
    if db is None:
        say(f"Next: hyperinflam load csv {out} --db picu.duckdb")
        return
    from hyperinflam.engine import LOAD_MEMORY_LIMIT, connect
    from hyperinflam.errors import EngineError, SourceError
    from hyperinflam.sources.csv import load_csv_folder

    try:
        report = load_csv_folder(connect(db, memory_limit=LOAD_MEMORY_LIMIT), out, tz="UTC")
    except (SourceError, EngineError) as exc:
        fail(str(exc))
    say(f"Loaded into {db}: " + ", ".join(f"{t.table} {t.loaded:,}" for t in report.tables))
    say(f"Next: hyperinflam screen --db {db} --out screen.csv")


def demo(
    out: Path = out_option("Folder for the demo's results and report.html.",
                           default=Path("hyperinflam-demo"), metavar="FOLDER"),
    stays: int = typer.Option(1000, "--stays", min=50, metavar="N",
                              help="Synthetic PICU stays to generate."),
    seed: int = typer.Option(2014, "--seed", metavar="N",
                             help="Seed of the synthetic cohort (deterministic)."),
    db: Optional[Path] = db_option(
        default="Default: demo.duckdb in your user data directory, so the demo never touches "
        "your real database; the demo prints where it is.", note="It is replaced."),
    quiet: bool = QUIET_OPTION,
):
    """Generate a synthetic PICU cohort into the embedded DuckDB and run the founding study.

    Takes a few seconds. Prints the marker table, where the offline HTML report is, where the
    demo database is, and the next command to paste (screening that database).
    """
    import shutil
    import tempfile
    import time

    from hyperinflam.engine import LOAD_MEMORY_LIMIT, connect, default_db_path
    from hyperinflam.sources.csv import load_csv_folder, render_load_report
    from hyperinflam.synth.writer import synthesize

    set_quiet(quiet)
    started = time.perf_counter()
    db_path = Path(db) if db else default_db_path().with_name("demo.duckdb")
    if db_path.is_dir():
        fail(f"--db {db_path} is a folder: give a file name for the demo database, e.g. "
             f"--db {db_path / 'demo.duckdb'}.")
    check_db_or_fail(db_path)  # never replace a file that is not a DuckDB database
    for stale in (db_path, db_path.with_name(db_path.name + ".wal")):
        stale.unlink(missing_ok=True)
    say(f"hyperinflam demo: {plural(stays, 'synthetic PICU stay')} (seed {seed}) -> {db_path}",
        style="bold")
    with tempfile.TemporaryDirectory(prefix="hyperinflam-demo-") as tmp:
        csv_dir = Path(tmp) / "csv"
        synthesize(csv_dir, stays, seed)
        con = connect(db_path, memory_limit=LOAD_MEMORY_LIMIT)
        report = load_csv_folder(con, csv_dir)
        render_load_report(report, console)
        shutil.rmtree(csv_dir, ignore_errors=True)
    report_path = run_and_render(con, "rajasekaran2014", out, db_label=f"{db_path} (synthetic)")
    con.disconnect()
    say(f"\nDone in {time.perf_counter() - started:.1f} s.", style="bold green")
    say(f"Report:   {report_path.resolve()}")
    say(f"Database: {db_path.resolve()}")
    say(f"Next:     hyperinflam screen --db {_shell_quote(db_path.resolve())} --out screen.csv")


def _shell_quote(path: Path) -> str:
    """A path as a shell word to paste (quoted only when it needs to be)."""
    import shlex

    return shlex.quote(str(path))

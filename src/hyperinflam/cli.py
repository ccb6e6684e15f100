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


def fail(message: str, code: int = 2) -> None:
    """Print a user-facing error (no traceback) and exit."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@app.callback(invoke_without_command=True)
def _main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")):
    if version:
        console.print(f"hyperinflam {__version__}")
        raise typer.Exit()


# --- load csv -------------------------------------------------------------------------------
# (sources/csv.py)

# --- synth ----------------------------------------------------------------------------------
# (synth.py)

# --- study run ------------------------------------------------------------------------------
# (study/, report/)


def _run_and_render(con, study_ref: str, out: Path, *, db_label: str) -> Path:
    """Run a study on an open database and write every output; returns the report path."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from hyperinflam.report import render_terminal, write_outputs
    from hyperinflam.study.definition import StudyDefinitionError, load_study
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

        results = run_study(con, study, progress=progress)
        results.provenance.setdefault("database", db_label)
        progress("writing outputs")
        paths = write_outputs(results, out)
    render_terminal(results, console)
    console.print()
    for kind, path in paths.items():
        console.print(f"  {kind:<14} {path}")
    return paths["report"]


@study_app.command("run")
def study_run(
    study: str = typer.Argument(
        ..., help="A study file (TOML), or the name of a shipped study: 'rajasekaran2014'."),
    db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
    out: Path = typer.Option(Path("study-out"), "--out",
                             help="Folder for results.csv, results.json, observations.csv and "
                                  "report.html (created if missing)."),
):
    """Run a declarative study on the canonical tables and write its results and report.

    The founding study (Rajasekaran 2014) ships as 'rajasekaran2014': children whose PICU stay
    includes anakinra; CRP, ferritin, fibrinogen, ANC and ALC at the first dose and 7 days later;
    mean +- SEM, % change, paired t-test and Wilcoxon signed-rank. See docs/study-definition.md to
    write your own.
    """
    from hyperinflam.engine import connect, resolve_db_path

    try:
        con = connect(db, read_only=True)
    except FileNotFoundError as exc:
        fail(str(exc))
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

    from hyperinflam.engine import connect, default_db_path
    from hyperinflam.sources.csv import load_csv_folder, render_load_report
    from hyperinflam.synth import synthesize

    started = time.perf_counter()
    db_path = Path(db) if db else default_db_path().with_name("demo.duckdb")
    for stale in (db_path, db_path.with_name(db_path.name + ".wal")):
        stale.unlink(missing_ok=True)
    console.print(f"[bold]hyperinflam demo[/]: {stays} synthetic PICU stays (seed {seed}) -> "
                  f"{db_path}")
    with tempfile.TemporaryDirectory(prefix="hyperinflam-demo-") as tmp:
        csv_dir = Path(tmp) / "csv"
        synthesize(csv_dir, stays, seed)
        con = connect(db_path)
        report = load_csv_folder(con, csv_dir)
        render_load_report(report, console)
        shutil.rmtree(csv_dir, ignore_errors=True)
    report_path = _run_and_render(con, "rajasekaran2014", out, db_label=f"{db_path} (synthetic)")
    con.disconnect()
    console.print(f"\n[bold green]Done in {time.perf_counter() - started:.1f} s.[/] Open the "
                  f"report: [bold]{report_path.resolve()}[/]")

# --- screen ---------------------------------------------------------------------------------
# (features.py, criteria/)


if __name__ == "__main__":  # pragma: no cover
    app()

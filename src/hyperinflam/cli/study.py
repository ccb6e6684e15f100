"""``hyperinflam study run``: a declarative study on the canonical tables, its results and report
(study/, report/)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hyperinflam.cli.common import (DB_HELP, ENGINE_OPTION, SPARK_CONF_OPTION, SPARK_MASTER_OPTION,
                                    console, fail, open_engine_or_fail)

study_app = typer.Typer(help="Run declarative studies (see the studies/ folder).", no_args_is_help=True)


def run_and_render(con, study_ref: str, out: Path, *, db_label: str) -> Path:
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
    run_and_render(con, study, out, db_label=str(resolve_db_path(db)))

"""``hyperinflam study list | check | run``: the shipped studies, a study file validated and shown
with every default filled in, and a declarative study run on the canonical tables with its
results and report (study/, report/)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hyperinflam.cli.common import (ENGINE_OPTION, QUIET_OPTION, SPARK_CONF_OPTION,
                                    SPARK_MASTER_OPTION, console, db_option, fail,
                                    open_engine_or_fail, out_option, say, set_quiet)

study_app = typer.Typer(help="Declarative studies: list the shipped ones, check a study file, run "
                        "one (docs/study-definition.md).", no_args_is_help=True)

STUDY_ARGUMENT_HELP = "A study file (TOML), or the name of a shipped study ('hyperinflam study list')."


def _load_or_fail(study_ref: str):
    from hyperinflam.errors import StudyDefinitionError
    from hyperinflam.study.definition import load_study

    try:
        return load_study(study_ref)
    except (StudyDefinitionError, FileNotFoundError) as exc:
        fail(str(exc))


def run_and_render(con, study_ref: str, out: Path, *, db_label: str) -> Path:
    """Run a study on an open database and write every output; returns the report path."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from rich.markup import escape

    from hyperinflam.errors import StudyDefinitionError
    from hyperinflam.report import render_terminal, write_outputs
    from hyperinflam.study.run import run_study

    study = _load_or_fail(study_ref)
    from hyperinflam.cli.common import show_progress

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True, disable=not show_progress()) as bar:
        task = bar.add_task(escape(f"study {study.study.id}: starting"), total=None)

        def progress(step: str) -> None:
            bar.update(task, description=escape(f"study {study.study.id}: {step}"))

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
        say(f"  {kind:<14} {path}")
    return paths["report_html"]


@study_app.command("list")
def study_list():
    """List the studies shipped with hyperinflam: name, title and reference.

    Run one with 'hyperinflam study run NAME'; see its settings with 'hyperinflam study check
    NAME'; copy and edit it to write your own (docs/study-definition.md).
    """
    from hyperinflam.study.definition import shipped_studies

    names = shipped_studies()
    say(f"Shipped studies ({len(names)}):", style="bold")
    for name in names:
        study = _load_or_fail(name)
        say(f"{name}  {study.study.title or ''}")
        if study.study.reference:
            say(f"    {study.study.reference}")
    say("Run one: hyperinflam study run NAME --db FILE. Its settings: hyperinflam study check NAME.")


@study_app.command("check")
def study_check(
    study: str = typer.Argument(..., help=STUDY_ARGUMENT_HELP, metavar="STUDY",
                                show_default=False),
):
    """Validate a study file without running it and print the resolved definition: every key of
    every section with its default filled in (TOML; keys not set are shown as comments).

    Exits 0 when the file is valid, 2 with one message per problem (file, section, key and the
    allowed values) when it is not. Some checks need the data (a required criterion's columns):
    'study run' makes them.
    """
    from hyperinflam.study.definition import resolved_toml

    definition = _load_or_fail(study)
    say(resolved_toml(definition))
    say(f"{definition.source}: valid.", style="green")


@study_app.command("run")
def study_run(
    study: str = typer.Argument(..., help=STUDY_ARGUMENT_HELP, metavar="STUDY",
                                show_default=False),
    db: Optional[Path] = db_option(),
    out: Path = out_option("Folder for results.csv, results.json, observations.csv and "
                           "report.html (created if missing).", default=Path("study-out"),
                           metavar="FOLDER"),
    engine: str = ENGINE_OPTION,
    spark_master: Optional[str] = SPARK_MASTER_OPTION,
    spark_conf: Optional[list[str]] = SPARK_CONF_OPTION,
    quiet: bool = QUIET_OPTION,
):
    """Run a declarative study on the canonical tables and write its results and report.

    The founding study (Rajasekaran 2014) ships as 'rajasekaran2014': children whose PICU stay
    includes anakinra; CRP, ferritin, fibrinogen, ANC and ALC at the first dose and 7 days later;
    mean +- SEM, % change, paired t-test and Wilcoxon signed-rank. See docs/study-definition.md to
    write your own.
    """
    from hyperinflam.engine import resolve_db_path

    set_quiet(quiet)
    _load_or_fail(study)  # a wrong study file is reported before the engine starts
    con = open_engine_or_fail(db, engine, spark_master, spark_conf)
    run_and_render(con, study, out, db_label=str(resolve_db_path(db)))

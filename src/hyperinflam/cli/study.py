"""``hyperinflam study list | check | run | share | pool``: the shipped studies, a study file
validated and shown with every default filled in, a declarative study run on the canonical tables
with its results and report (study/, report/), and a network study: a site's aggregate-only
package and the coordinating centre's pooling (study/network/, report/network.py;
docs/network.md)."""

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


MIN_CELL_HELP = ("Smallest count shared as a number: counts from 1 to N-1 are shown as '< N' and "
                 "enough other counts as 'suppressed' that none can be worked out from totals, "
                 "margins or differences. 10 as cumulus (the default); 11 as PCORnet and CMS; 5 "
                 "as omopgenerics and PEDSnet; any whole number >= 5. A marker whose n is below "
                 "N is shared as 'n < N' only.")


@study_app.command("share")
def study_share(
    results_dir: Path = typer.Argument(..., help="The --out folder of 'hyperinflam study run' "
                                       "(it holds results.json).", metavar="RESULTS_DIR",
                                       show_default=False),
    site: str = typer.Option(..., "--site", metavar="NAME", show_default=False,
                             help="The site's name as the pooled report shows it (1-40 "
                             "letters, digits, spaces, '_', '.' or '-'; e.g. 'PICU Leeds')."),
    min_cell: int = typer.Option(10, "--min-cell", metavar="N", help=MIN_CELL_HELP),
    out: Path = out_option("The site package to write (a .zip file; replaced if it exists).",
                           metavar="SITE.zip"),
    quiet: bool = QUIET_OPTION,
):
    """Make a network study's site package: aggregates only, small counts suppressed.

    Reads what 'hyperinflam study run' wrote and writes one zip for the coordinating centre:
    counts.csv (flow, Table 1, co-therapy, safety and phenotype counts), markers.csv (per marker
    and timepoint: n and the sums and sums of squares that pool the paired t-test exactly),
    continuous.csv (n, sum and sum of squares of each continuous characteristic), relations.json
    (the sums that tie the counts together), manifest.json (the study file and its SHA-256,
    versions, engine, data-source kind, run date, minimum cell, the SHA-256 of every file) and
    preview.html. No patient-level row, identifier, time or free text leaves the site.

    Open preview.html (it is also inside the zip) and review exactly what leaves the site, then
    send the zip to the coordinator, who runs 'hyperinflam study pool'. The same run gives the
    same zip, byte for byte. See docs/network.md.
    """
    from hyperinflam.errors import NetworkError
    from hyperinflam.study.network.suppression import SuppressionError, check_min_cell

    set_quiet(quiet)
    try:
        check_min_cell(min_cell)
    except SuppressionError as exc:
        fail(str(exc))
    from hyperinflam.report.network import share_site

    try:
        summary = share_site(results_dir, site, out, min_cell=min_cell)
    except NetworkError as exc:
        fail(str(exc))
    preview = summary.path.with_name(summary.path.stem + ".preview.html")
    preview.write_bytes(_zip_member(summary.path, "preview.html"))
    say(f"Site package for '{summary.site}': {summary.path}")
    say(f"  {summary.cells} counts: {summary.small} shown as '< {summary.min_cell}', "
        f"{summary.complementary} more suppressed so that none can be worked out.")
    withheld = summary.markers_total - summary.markers_shared - summary.markers_empty
    parts = [f"{summary.markers_shared} of {summary.markers_total} marker timepoints shared "
             f"with their sums"]
    if withheld:
        parts.append(f"{withheld} withheld (n < {summary.min_cell}, or suppressed so that a "
                     f"small count cannot be worked out)")
    if summary.markers_empty:
        parts.append(f"{summary.markers_empty} with no patient (n = 0)")
    say("  " + "; ".join(parts) + ".")
    say(f"  SHA-256 {summary.sha256}")
    say(f"Review what leaves the site: {preview}")
    say("Then send the zip to the coordinating centre ('hyperinflam study pool').")


def _zip_member(path: Path, name: str) -> bytes:
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


@study_app.command("pool")
def study_pool(
    packages: list[Path] = typer.Argument(..., help="The site packages (SITE.zip from "
                                          "'hyperinflam study share'), one per site.",
                                          metavar="SITE1.zip SITE2.zip ...", show_default=False),
    out: Path = out_option("Folder for results.csv, results.json and report.html (created if "
                           "missing).", metavar="DIR"),
    study: Optional[str] = typer.Option(
        None, "--study", metavar="STUDY", show_default=False,
        help="The study the coordinator sent (a study file, or the name of a shipped study): "
        "every package must carry its SHA-256. Without it, every package must carry the same "
        "study as the first."),
    quiet: bool = QUIET_OPTION,
):
    """Pool a network study's site packages at the coordinating centre.

    Checks every package first: each file's SHA-256 against its manifest.json, the study text
    against its hash, the same study at every site, one package per site. A package that fails
    is refused with a message naming the site and the file, and nothing is pooled.

    Then writes results.csv / results.json (the results-dataset format) and an offline
    report.html: per marker and timepoint the paired t-test pooled from the sites' sums (equal to
    the analysis of all sites' patients together), a meta-analysis of the sites' mean paired
    differences (fixed effect; random effects by DerSimonian-Laird and REML; I² and τ²) with a
    forest plot, and pooled Table 1 and flow with a column per site where not suppressed. What
    aggregates cannot give (Wilcoxon signed-rank, medians) is said so. See docs/network.md.
    """
    from hyperinflam.errors import NetworkError

    set_quiet(quiet)
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: is a file; give a folder for results.csv, results.json and "
             f"report.html.")
    from hyperinflam.report.network import pool_sites

    try:
        summary = pool_sites(packages, out, study_file=study)
    except NetworkError as exc:
        fail(str(exc))
    say(f"Pooled {len(summary.sites)} site packages: {', '.join(summary.sites)}")
    for kind, path in summary.files.items():
        say(f"  {kind:<14} {path}")

"""``hyperinflam screen``: every PICU stay screened over time, written to a file, and the stays
meeting a criterion shown (screening/: screen.py, summary.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hyperinflam.cli.common import (ENGINE_OPTION, QUIET_OPTION, SITE_TZ_OPTION, SPARK_CONF_OPTION,
                                    SPARK_MASTER_OPTION, StepProgress, close_connection, console,
                                    db_option, fail, open_for_plans_or_fail, out_option, parse_at,
                                    parse_grid, plural, say, set_quiet, show_progress, status)

SCREEN_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

SCREEN_HELP = (
    "Screen every PICU stay for the hyperinflammatory phenotype.\n\n"
    "Evaluates every criterion and score (HLH-2004, HScore, MAS-2016, Phoenix, pSOFA, PRISM III, "
    "...) on every stay, either every --grid step from admission (default 24h: +24 h, +48 h, ... "
    "and at discharge) or at one time (--at). Labs use each score's look-back window "
    "(docs/time-model.md); a value that was not measured is 'unknown', never normal, unless the "
    "score's authors say so.\n\n"
    "Writes one row per stay x evaluation time to --out (CSV or Parquet; columns in "
    "docs/screen-output.md) and prints how many stays meet a phenotype criterion (HLH-2004, "
    "HScore, MAS-2016, MS score, hyperferritinaemic sepsis) and an organ dysfunction or severity "
    "criterion (IPSCC, Phoenix) at any of their evaluations, and the stays meeting one.\n\n"
    "Examples:\n\n"
    "hyperinflam screen --out screen.parquet\n\n"
    "hyperinflam screen --grid 6h --out screen.csv --db site.duckdb\n\n"
    "hyperinflam screen --at '2024-03-01 08:00' --tz Europe/Paris --out now.csv"
)


def screen_command(
    out: Path = out_option("Output file: .csv or .parquet. One row per stay x evaluation time "
                           "with every feature and criterion column (docs/screen-output.md)."),
    db: Optional[Path] = db_option(),
    at: Optional[str] = typer.Option(None, "--at", metavar="TIME", help="Evaluate the stays in "
                                     "the PICU at this one time (ISO 8601, e.g. '2024-03-01 "
                                     "14:30', read in --tz; an offset such as +01:00 is "
                                     "honoured). Excludes --grid."),
    grid: Optional[str] = typer.Option(None, "--grid", metavar="STEP", help="Evaluate every stay "
                                       "every STEP from admission plus at discharge, e.g. '24h' "
                                       "(default), '6h', '1d'. Excludes --at."),
    tz: str = SITE_TZ_OPTION,
    criteria: Optional[list[str]] = typer.Option(None, "--criterion", "-c", metavar="NAME",
                                                 help="Run only this criterion (repeatable), "
                                                 "e.g. -c hscore -c hlh2004. Default: all."),
    engine: str = ENGINE_OPTION,
    spark_master: Optional[str] = SPARK_MASTER_OPTION,
    spark_conf: Optional[list[str]] = SPARK_CONF_OPTION,
    batch_rows: Optional[int] = typer.Option(
        None, "--batch-rows", min=1, metavar="ROWS", help="Screen in batches of persons holding about this many "
        "measurement rows each (DuckDB): memory stays bounded, finished batches are kept if the "
        "run stops and a rerun resumes after them. Default 4,000,000 "
        "(HYPERINFLAM_BATCH_ROWS)."),
    quiet: bool = QUIET_OPTION,
):
    """Screen every PICU stay (see SCREEN_HELP)."""
    from hyperinflam.errors import EngineError, FeatureError, ScreenError
    from hyperinflam.screening.plans import screen_plan, write_screen
    from hyperinflam.screening.summary import summarise_screen_file

    set_quiet(quiet)
    kind = SCREEN_FORMATS.get(out.suffix.lower())
    if kind is None:
        fail(f"--out {out}: unknown file type '{out.suffix}'; name a .csv or .parquet file.")
    if at is not None and grid is not None:
        fail("--at and --grid exclude each other: give --at TIME for one time or --grid STEP for "
             "the whole stay.")
    step_hours = parse_grid(grid) if grid is not None else 24.0
    at_time = parse_at(at, tz) if at is not None else None
    mode = "at" if at_time is not None else "grid"
    progress = show_progress(quiet)
    con = open_for_plans_or_fail(db, engine, spark_master, spark_conf)
    try:
        n_stays_in_db = _count_stays(con)
        plan = screen_plan(con, mode, criteria=criteria, building=lambda: status(
            "Compiling the screen for these criteria (once: later runs reuse it)...", progress))
        out.parent.mkdir(parents=True, exist_ok=True)
        with StepProgress(f"Screening into {out.name}", "persons", progress) as bar:
            write_screen(con, out, kind, mode=mode, at=at_time, step_hours=step_hours,
                         batch_rows=batch_rows, progress=bar.update, plan=plan)
    except (EngineError, FeatureError, ScreenError) as exc:
        fail(str(exc))
    finally:
        close_connection(con)

    if n_stays_in_db == 0:
        from hyperinflam.engine import resolve_db_path

        where = db if db is not None and engine == "spark" else resolve_db_path(db)
        say(f"The database {where} holds no PICU stays: nothing to screen ({out} has the columns "
            f"and no rows). Load a site's data first, e.g. 'hyperinflam load csv FOLDER --db "
            f"{where}', or see what it holds with 'hyperinflam info --db {where}'.")
        return
    with status("Summarising...", progress):
        summary = summarise_screen_file(out, kind, criteria, columns=plan.columns)
    if at_time is not None and summary.n_stays == 0:
        say(f"No stay was in the PICU at {at} ({at_time:%Y-%m-%d %H:%M} UTC): {out} has the "
            f"columns and no rows.")
        return
    say(f"Wrote {plural(summary.n_rows, 'evaluation')} of {plural(summary.n_stays, 'stay')} to "
        f"{out}.")
    for line in summary_lines(summary, plan.meta):
        console.print(line)
    if summary.shown:
        console.print(_screen_table(summary.shown, summary.n_meeting, plan.meta))


def summary_lines(summary, meta: dict) -> list[str]:
    """The headline counts of a screen, by the one rule of screening.meets: stays meeting a
    phenotype criterion at any evaluation first, organ dysfunction and severity beside it, and
    the stays evaluated outside a score's validated ages. The criteria's labels and groups come
    from the plan's ``meta`` (``screening.plans.screen_meta``)."""
    from rich.markup import escape

    labels = {name: escape(label) for name, label in meta["labels"].items()}
    groups = meta["groups"]

    def names(group):
        return ", ".join(labels[n] for n in meta["results"] if groups[n] == group)
    n = summary.n_stays
    phenotype, severity = names(meta["phenotype"]), names(meta["severity"])

    def meet(k: int) -> str:
        return "meets" if k == 1 else "meet"

    pheno, severe = summary.n_meeting_phenotype, summary.n_meeting_severity
    lines = [f"[bold]{pheno}[/] of {plural(n, 'stay')} {meet(pheno)} a phenotype criterion "
             f"at some evaluation ({phenotype or 'none screened'}).",
             f"[bold]{severe}[/] of {plural(n, 'stay')} {meet(severe)} an organ dysfunction or "
             f"severity criterion at some evaluation ({severity or 'none screened'})."]
    for name, count in (summary.n_outside_ages or {}).items():
        lines.append(f"[yellow]{labels.get(name, name)}[/] was evaluated outside the ages its "
                     f"authors validated in {plural(count, 'stay')} (column "
                     f"{name}{meta['outside_ages_suffix']}).")
    return lines


def _screen_table(shown: list[dict], n_meeting: int, meta: dict):
    """The stays meeting a criterion, phenotype first: a rich table of fixed columns."""
    from rich.table import Table

    from hyperinflam.screening.summary import SUMMARY_PEAKS

    labels = meta["labels"]
    by_group = {g: [n for n in meta["results"] if meta["groups"][n] == g]
                for g in meta["group_titles"]}
    title = (f"{plural(n_meeting, 'stay')} {'meets' if n_meeting == 1 else 'meet'} at least one "
             f"criterion"
             + (f" (the first {len(shown)} shown; all in the output file)"
                if n_meeting > len(shown) else ""))
    from rich.text import Text

    table = Table(title=Text(title), title_justify="left")
    table.add_column("stay", no_wrap=True)
    table.add_column("phenotype\nfirst met (h)", justify="right")
    table.add_column("phenotype criteria met", ratio=1, min_width=20)
    table.add_column("organ dysfunction,\nseverity met", ratio=1, min_width=14)
    peaks = [(label, col) for label, (col, _) in SUMMARY_PEAKS.items() if col in shown[0]]
    for label, _ in peaks:
        table.add_column(label, justify="right")
    for row in shown:
        first = row.get(f"{meta['phenotype']}_first_met")
        hours = ("" if _is_missing(first) else
                 f"{(first - row['admit_time']).total_seconds() / 3600:.0f}")
        cells = [str(row["stay_id"]), hours]
        for group in meta["group_titles"]:
            cells.append(", ".join(labels.get(n, n) for n in by_group[group]
                                   if bool(row.get(f"{n}_met"))))
        cells += ["" if _is_missing(row[col]) else f"{row[col]:,.0f}" for _, col in peaks]
        table.add_row(*(Text(cell) for cell in cells))
    return table


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _count_stays(con) -> int:
    """Stays in the database: on a bare DuckDB connection (a cached plan) or an ibis backend."""
    if hasattr(con, "table") and hasattr(con, "disconnect"):
        return int(con.table("stay").count().execute())
    return int(con.execute("SELECT count(*) FROM stay").fetchone()[0])


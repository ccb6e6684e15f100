"""``hyperinflam screen``: every PICU stay screened over time, written to a file, and the stays
meeting a criterion shown (screening/: screen.py, summary.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hyperinflam.cli.common import (DB_HELP, ENGINE_OPTION, SPARK_CONF_OPTION, SPARK_MASTER_OPTION,
                                    console, fail, open_engine_or_fail, parse_at, parse_grid)

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
    from hyperinflam.engine import write_result_file
    from hyperinflam.errors import FeatureError, ScreenError
    from hyperinflam.screening.screen import screen
    from hyperinflam.screening.summary import summarise_screen_file

    kind = SCREEN_FORMATS.get(out.suffix.lower())
    if kind is None:
        fail(f"--out {out}: unknown file type '{out.suffix}'; name a .csv or .parquet file.")
    if at is not None and grid is not None:
        fail("--at and --grid exclude each other: give --at TIME for one time or --grid STEP for "
             "the whole stay.")
    step_hours = parse_grid(grid) if grid is not None else 24.0
    at_time = parse_at(at, tz) if at is not None else None
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
    console.print(f"Wrote [bold]{summary.n_rows}[/] evaluations of [bold]{summary.n_stays}[/] "
                  f"stays to [bold]{out}[/].")
    for line in summary_lines(summary, criteria):
        console.print(line)
    if not summary.shown.empty:
        console.print(_screen_table(summary.shown, summary.n_meeting, criteria))


def summary_lines(summary, criteria) -> list[str]:
    """The headline counts of a screen, by the one rule of screening.meets: stays meeting a
    phenotype criterion at any evaluation first, organ dysfunction and severity beside it, and
    the stays evaluated outside a score's validated ages."""
    from hyperinflam.criteria import label as criterion_label
    from hyperinflam.screening import meets
    from hyperinflam.screening.screen import select_criteria

    modules = [m for m in select_criteria(criteria) if getattr(m, "RESULT", None)]

    def names(group):
        return ", ".join(criterion_label(m.NAME) for m in modules if meets.group_of(m) == group)
    n = summary.n_stays
    lines = [f"[bold]{summary.n_meeting_phenotype}[/] of {n:,} stays meet a phenotype criterion "
             f"at some evaluation ({names(meets.PHENOTYPE) or 'none screened'}).",
             f"[bold]{summary.n_meeting_severity}[/] of {n:,} stays meet an organ dysfunction or "
             f"severity criterion at some evaluation ({names(meets.SEVERITY) or 'none screened'})."]
    for name, count in (summary.n_outside_ages or {}).items():
        lines.append(f"[yellow]{criterion_label(name)}[/] was evaluated outside the ages its "
                     f"authors validated in {count:,} stays (column "
                     f"{name}{meets.OUTSIDE_AGES_SUFFIX}).")
    return lines


def _screen_table(shown, n_meeting: int, criteria):
    """The stays meeting a criterion, phenotype first: a rich table of fixed columns."""
    from rich.table import Table

    from hyperinflam.criteria import label as criterion_label
    from hyperinflam.screening import meets
    from hyperinflam.screening.screen import select_criteria
    from hyperinflam.screening.summary import SUMMARY_PEAKS

    modules = [m for m in select_criteria(criteria) if getattr(m, "RESULT", None)]
    by_group = {g: [m.NAME for m in modules if meets.group_of(m) == g] for g in meets.GROUP_TITLES}
    title = (f"{n_meeting} stays meet at least one criterion"
             + (f" (the first {len(shown)} shown; all in the output file)"
                if n_meeting > len(shown) else ""))
    table = Table(title=title, title_justify="left")
    table.add_column("stay", no_wrap=True)
    table.add_column("phenotype\nfirst met (h)", justify="right")
    table.add_column("phenotype criteria met", ratio=1, min_width=20)
    table.add_column("organ dysfunction,\nseverity met", ratio=1, min_width=14)
    peaks = [(label, col) for label, (col, _) in SUMMARY_PEAKS.items() if col in shown.columns]
    for label, _ in peaks:
        table.add_column(label, justify="right")
    for row in shown.to_dict("records"):
        first = row.get(f"{meets.PHENOTYPE}_first_met")
        hours = ("" if _is_missing(first) else
                 f"{(first - row['admit_time']).total_seconds() / 3600:.0f}")
        cells = [str(row["stay_id"]), hours]
        for group in meets.GROUP_TITLES:
            cells.append(", ".join(criterion_label(n) for n in by_group[group]
                                   if bool(row.get(f"{n}_met"))))
        cells += ["" if _is_missing(row[col]) else f"{row[col]:,.0f}" for _, col in peaks]
        table.add_row(*cells)
    return table


def _is_missing(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value)) if not isinstance(value, (list, tuple)) else False

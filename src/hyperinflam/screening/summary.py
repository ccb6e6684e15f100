"""The summary of a screen: per stay, which criteria were ever met and when first, with peak
values (:func:`stays_meeting_any`), and the summary of a written screen file
(:func:`summarise_screen_file`) that ``hyperinflam screen`` prints.

Set-based (ibis) like the screen itself; the terminal table is drawn by the command line from
these rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import ibis
import ibis.expr.types as ir
import pandas as pd

from hyperinflam.errors import ScreenError
from hyperinflam.screening.screen import MET, select_criteria

#: Stays listed in the terminal after a screen (all of them are in the output file).
SCREEN_ROWS_SHOWN = 25


def latest_evaluations(expr: ir.Table) -> ir.Table:
    """Each stay's latest evaluation row (set-based: row_number over the stay)."""
    ranked = expr.mutate(rank_in_stay=ibis.row_number().over(
        group_by=expr.stay_id, order_by=expr.eval_time.desc()))
    return ranked.filter(ranked.rank_in_stay == 0).drop("rank_in_stay")


def result_columns(columns: Iterable[str], criteria=None) -> dict[str, str]:
    """Criterion NAME -> the column holding its overall tri-state result (module ``RESULT``),
    for the criteria whose result column is among ``columns``. Scores without a threshold
    (pSOFA, PRISM III points, Phoenix-8) declare none."""
    present = set(columns)
    out = {}
    for module in select_criteria(criteria):
        column = getattr(module, "RESULT", None)
        if column and column in present:
            out[module.NAME] = column
    return out


#: Peak values shown per stay in the terminal summary: label -> (column, aggregate). Columns that
#: are absent (a criterion not run) are skipped.
SUMMARY_PEAKS: dict[str, tuple[str, str]] = {
    "HScore": ("hscore_points", "max"),
    "HLH\nn/8": ("hlh2004_met_count", "max"),
    "Phoe-\nnix": ("phoenix_score", "max"),
    "pSOFA": ("psofa_score", "max"),
    "PRISM\nIII": ("prism3_points", "max"),
    "ferritin\nng/mL": ("ferritin_max_72h", "max"),
}


def summary_columns(columns: Iterable[str], criteria=None) -> list[str]:
    """The columns of a screen output that :func:`stays_meeting_any` reads (keys, each
    criterion's RESULT column, the :data:`SUMMARY_PEAKS` present), in output order."""
    columns = list(columns)
    wanted = {"stay_id", "person_id", "admit_time", "eval_time",
              *result_columns(columns, criteria).values(),
              *(column for column, _ in SUMMARY_PEAKS.values())}
    return [c for c in columns if c in wanted]


def stays_meeting_any(expr: ir.Table, *, criteria=None) -> ir.Table:
    """One row per stay that meets at least one criterion at any of its evaluations.

    Set-based (ibis): per stay, for every criterion with a ``RESULT`` column, whether it was
    ever 'met' and the first evaluation time it was; ``criteria_met`` counts them;
    ``first_met_time`` is the earliest; peak values of :data:`SUMMARY_PEAKS`. Sorted by the number
    of criteria met (most first), then HScore (highest first), then stay.
    """
    results = result_columns(expr.columns, criteria)
    if not results:
        raise ScreenError("None of the screened criteria declares a RESULT column.")
    aggs: dict[str, ir.Value] = {}
    for name, column in results.items():
        met = expr[column] == MET
        aggs[f"{name}_met"] = met.any()
        aggs[f"{name}_first_met"] = expr.eval_time.min(where=met)
    for label, (column, how) in SUMMARY_PEAKS.items():
        if column in expr.columns:
            aggs[column] = getattr(expr[column], how)()
    per_stay = expr.group_by(["stay_id", "person_id", "admit_time"]).aggregate(**aggs)
    n_met = sum(per_stay[f"{name}_met"].cast("int64") for name in results)
    first = ibis.least(*[per_stay[f"{name}_first_met"] for name in results]) \
        if len(results) > 1 else per_stay[f"{next(iter(results))}_first_met"]
    per_stay = per_stay.mutate(criteria_met=n_met, first_met_time=first)
    order = [per_stay.criteria_met.desc()]
    if "hscore_points" in per_stay.columns:
        order.append(per_stay.hscore_points.desc())
    return per_stay.filter(per_stay.criteria_met > 0).order_by([*order, per_stay.stay_id])


@dataclass
class ScreenSummary:
    """What ``hyperinflam screen`` prints about the file it wrote."""

    n_rows: int            # evaluations (rows) in the file
    n_stays: int           # stays in the file
    n_meeting: int         # stays meeting at least one criterion at any evaluation
    shown: pd.DataFrame    # the first ``rows_shown`` of :func:`stays_meeting_any`


def summarise_screen_file(path: str | Path, kind: str, criteria=None, *,
                          rows_shown: int = SCREEN_ROWS_SHOWN) -> ScreenSummary:
    """Summarise a screen written to ``path`` (``kind`` 'csv' or 'parquet').

    The file is read once, only the columns the summary needs (a CSV is parsed once, not per
    query), into a table of an in-memory DuckDB; then two queries: the counts and
    :func:`stays_meeting_any`.
    """
    reader = ibis.duckdb.connect()
    try:
        written = reader.read_csv(path) if kind == "csv" else reader.read_parquet(path)
        written = reader.create_table(
            "screen_summary_input",
            written.select(*summary_columns(written.columns, criteria)), temp=True)
        counts = written.aggregate(n_rows=written.count(),
                                   n_stays=written.stay_id.nunique()).to_pandas().iloc[0]
        meeting = stays_meeting_any(written, criteria=criteria).to_pandas()
    finally:
        reader.disconnect()
    return ScreenSummary(n_rows=int(counts.n_rows), n_stays=int(counts.n_stays),
                         n_meeting=len(meeting), shown=meeting.head(rows_shown))

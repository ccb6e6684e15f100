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
from hyperinflam.screening import meets
from hyperinflam.screening.screen import MET

#: Stays listed in the terminal after a screen (all of them are in the output file).
SCREEN_ROWS_SHOWN = 25


def latest_evaluations(expr: ir.Table) -> ir.Table:
    """Each stay's latest evaluation row (set-based: row_number over the stay)."""
    ranked = expr.mutate(rank_in_stay=ibis.row_number().over(
        group_by=expr.stay_id, order_by=expr.eval_time.desc()))
    return ranked.filter(ranked.rank_in_stay == 0).drop("rank_in_stay")


def result_columns(columns: Iterable[str], criteria=None) -> dict[str, str]:
    """Criterion NAME -> its RESULT column present in ``columns`` (:mod:`.meets`)."""
    return meets.result_columns(columns, criteria)


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
              *(c for c in columns if c.endswith(meets.OUTSIDE_AGES_SUFFIX)),
              *(column for column, _ in SUMMARY_PEAKS.values())}
    return [c for c in columns if c in wanted]


def stays_meeting_any(expr: ir.Table, *, criteria=None) -> ir.Table:
    """One row per stay that meets at least one criterion at any of its evaluations, by the
    one rule of :mod:`.meets` (the criterion's RESULT column is 'met').

    Set-based (ibis): per stay, for every criterion with a ``RESULT`` column, whether it was
    ever met (``<name>_met``) and the first evaluation time it was (``<name>_first_met``);
    per group the number of criteria ever met (``phenotype_met``, ``severity_met``) and the
    first time one was (``phenotype_first_met``, ``severity_first_met``); ``criteria_met`` counts
    them all; ``<name>_outside_validated_ages`` is true when any evaluation of the stay was
    outside that criterion's validated ages; peak values of :data:`SUMMARY_PEAKS`. Sorted by the
    phenotype criteria met (most first), then all criteria met, then HScore, then stay.
    """
    results = result_columns(expr.columns, criteria)
    if not results:
        raise ScreenError("None of the screened criteria declares a RESULT column.")
    aggs: dict[str, ir.Value] = {}
    for name, column in results.items():
        hit = expr[column] == MET
        aggs[f"{name}_met"] = hit.any()
        aggs[f"{name}_first_met"] = expr.eval_time.min(where=hit)
    for column in expr.columns:
        if column.endswith(meets.OUTSIDE_AGES_SUFFIX):
            aggs[column] = expr[column].any()
    for label, (column, how) in SUMMARY_PEAKS.items():
        if column in expr.columns:
            aggs[column] = getattr(expr[column], how)()
    per_stay = expr.group_by(["stay_id", "person_id", "admit_time"]).aggregate(**aggs)
    counts = {}
    for group in meets.GROUP_TITLES:
        names = list(meets.result_columns(expr.columns, criteria, group))
        counts[f"{group}_met"] = (sum(per_stay[f"{n}_met"].fill_null(False).cast("int64")
                                      for n in names) if names else ibis.literal(0))
        counts[f"{group}_first_met"] = (
            ibis.least(*[per_stay[f"{n}_first_met"] for n in names]) if len(names) > 1
            else per_stay[f"{names[0]}_first_met"] if names
            else ibis.null().cast("timestamp"))
    per_stay = per_stay.mutate(**counts)
    n_met = per_stay[f"{meets.PHENOTYPE}_met"] + per_stay[f"{meets.SEVERITY}_met"]
    first = ibis.least(*[per_stay[f"{name}_first_met"] for name in results]) \
        if len(results) > 1 else per_stay[f"{next(iter(results))}_first_met"]
    per_stay = per_stay.mutate(criteria_met=n_met, first_met_time=first)
    order = [per_stay[f"{meets.PHENOTYPE}_met"].desc(), per_stay.criteria_met.desc()]
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
    n_meeting_phenotype: int = 0   # ... meeting a phenotype criterion (the headline)
    n_meeting_severity: int = 0    # ... meeting an organ dysfunction / severity criterion
    n_outside_ages: dict = None    # criterion NAME -> stays evaluated outside its validated ages


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
        outside = [c for c in written.columns if c.endswith(meets.OUTSIDE_AGES_SUFFIX)]
        n_outside = {}
        if outside:
            per_stay = written.group_by("stay_id").aggregate(
                **{c: written[c].any() for c in outside})
            row = per_stay.aggregate(**{c: per_stay[c].fill_null(False).cast("int64").sum()
                                        for c in outside}).to_pandas().iloc[0]
            n_outside = {c.removesuffix(meets.OUTSIDE_AGES_SUFFIX): int(row[c]) for c in outside
                         if int(row[c])}
    finally:
        reader.disconnect()
    phenotype = meeting[f"{meets.PHENOTYPE}_met"] > 0 if len(meeting) else meeting.index == 0
    severity = meeting[f"{meets.SEVERITY}_met"] > 0 if len(meeting) else meeting.index == 0
    return ScreenSummary(n_rows=int(counts.n_rows), n_stays=int(counts.n_stays),
                         n_meeting=len(meeting), shown=meeting.head(rows_shown),
                         n_meeting_phenotype=int(phenotype.sum()),
                         n_meeting_severity=int(severity.sum()), n_outside_ages=n_outside)

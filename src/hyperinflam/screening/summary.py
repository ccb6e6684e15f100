"""The summary of a screen: per stay, which criteria were ever met and when first, with peak
values (:func:`stays_meeting_any`), and the summary of a written screen file
(:func:`summarise_screen_file`) that ``hyperinflam screen`` prints.

Set-based (ibis) like the screen itself; the terminal table is drawn by the command line from
these rows. The summary of a file runs as a compiled plan (:mod:`hyperinflam.engine.plans`), so
this module imports ibis only where an expression is built (a cached ``hyperinflam screen``
starts without it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from hyperinflam.errors import ScreenError

if TYPE_CHECKING:
    import ibis.expr.types as ir

#: Stays listed in the terminal after a screen (all of them are in the output file).
SCREEN_ROWS_SHOWN = 25


def latest_evaluations(expr: ir.Table) -> ir.Table:
    """Each stay's latest evaluation row (set-based: row_number over the stay)."""
    import ibis

    ranked = expr.mutate(rank_in_stay=ibis.row_number().over(
        group_by=expr.stay_id, order_by=expr.eval_time.desc()))
    return ranked.filter(ranked.rank_in_stay == 0).drop("rank_in_stay")


def result_columns(columns: Iterable[str], criteria=None) -> dict[str, str]:
    """Criterion NAME -> its RESULT column present in ``columns`` (:mod:`.meets`)."""
    from hyperinflam.screening import meets

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
    from hyperinflam.screening.screen import OUTSIDE_AGES_SUFFIX

    columns = list(columns)
    wanted = {"stay_id", "person_id", "admit_time", "eval_time",
              *result_columns(columns, criteria).values(),
              *(c for c in columns if c.endswith(OUTSIDE_AGES_SUFFIX)),
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
    import ibis

    from hyperinflam.screening import meets
    from hyperinflam.screening.screen import MET

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
    return per_stay.filter(per_stay.criteria_met > 0).order_by(_meeting_order(per_stay))


def _meeting_order(per_stay: ir.Table) -> list:
    from hyperinflam.screening import meets

    order = [per_stay[f"{meets.PHENOTYPE}_met"].desc(), per_stay.criteria_met.desc()]
    if "hscore_points" in per_stay.columns:
        order.append(per_stay.hscore_points.desc())
    return [*order, per_stay.stay_id]


@dataclass
class ScreenSummary:
    """What ``hyperinflam screen`` prints about the file it wrote."""

    n_rows: int            # evaluations (rows) in the file
    n_stays: int           # stays in the file
    n_meeting: int         # stays meeting at least one criterion at any evaluation
    shown: list[dict]      # the first ``rows_shown`` rows of :func:`stays_meeting_any`
    n_meeting_phenotype: int = 0   # ... meeting a phenotype criterion (the headline)
    n_meeting_severity: int = 0    # ... meeting an organ dysfunction / severity criterion
    n_outside_ages: dict = field(default_factory=dict)  # criterion NAME -> stays evaluated
    #                                                     outside its validated ages

#: Prefix of the columns of the summary plan that count stays evaluated outside validated ages.
_OUTSIDE_COUNT = "n_outside__"


def summary_plan(columns: Iterable[tuple[str, str]], criteria=None, con=None):
    """The compiled summary of a screen file with ``columns`` ((name, ibis type) of the file),
    on a bare in-memory DuckDB connection ``con`` (the file is its input ``screen_file``): one
    row per stay meeting a criterion (:func:`stays_meeting_any`, in its order), each with the
    file's counts (rows, stays, stays per criterion evaluated outside its validated ages); one
    row of counts only (stay_id NULL) when no stay meets any."""
    from hyperinflam.engine import plans
    from hyperinflam.screening.plans import criteria_key

    columns = [tuple(c) for c in columns]

    def build(backend, tables):
        import ibis

        from hyperinflam.screening import meets
        from hyperinflam.screening.screen import OUTSIDE_AGES_SUFFIX

        written = tables["screen_file"]
        written = written.select(*summary_columns(written.columns, criteria))
        outside = [c for c in written.columns if c.endswith(OUTSIDE_AGES_SUFFIX)]
        counts = written.aggregate(n_rows=written.count(), n_stays=written.stay_id.nunique())
        if outside:
            per_stay = written.group_by("stay_id").aggregate(
                **{c: written[c].any() for c in outside})
            per_stay = per_stay.aggregate(**{
                _OUTSIDE_COUNT + c.removesuffix(OUTSIDE_AGES_SUFFIX):
                per_stay[c].fill_null(False).cast("int64").sum() for c in outside})
            counts = counts.cross_join(per_stay)
        meeting = stays_meeting_any(written, criteria=criteria)
        meeting = meeting.mutate(summary_order=ibis.row_number().over(
            order_by=_meeting_order(meeting)))
        joined = counts.left_join(meeting, ibis.literal(True))
        group_counts = [f"{meets.PHENOTYPE}_met", f"{meets.SEVERITY}_met"]
        return (joined.order_by(joined.summary_order).drop("summary_order"),
                {"group_counts": group_counts})

    return plans.get_plan(con, "screen_summary", {"criteria": criteria_key(criteria)}, build,
                          {"screen_file": dict(columns)})


def summarise_screen_file(path: str | Path, kind: str, criteria=None, *,
                          rows_shown: int = SCREEN_ROWS_SHOWN,
                          columns: Iterable[tuple[str, str]] | None = None) -> ScreenSummary:
    """Summarise a screen written to ``path`` (``kind`` 'csv' or 'parquet').

    ``columns``: the file's (name, ibis type) pairs when the caller knows them (the plan that
    wrote it); else they are read from the file. The file is read once, only the columns the
    summary needs (a CSV is parsed once), by one compiled query on an in-memory DuckDB.
    """
    import duckdb

    from hyperinflam.engine import plans

    raw = duckdb.connect()
    try:
        if columns is None:
            columns = _file_columns(path, kind)
        plan = summary_plan(columns, criteria, raw)
        rows = plans.run_rows(raw, plan, {"screen_file": plans.FileInput(str(path), kind)})
    finally:
        raw.close()
    names = plan.column_names
    records = [dict(zip(names, r)) for r in rows]
    first = dict(records[0]) if records else {}
    meeting = [r for r in records if r.get("stay_id") is not None]
    count_names = [n for n in names if n in ("n_rows", "n_stays") or n.startswith(_OUTSIDE_COUNT)]
    for r in meeting:
        for n in count_names:
            r.pop(n, None)
    outside = {n.removeprefix(_OUTSIDE_COUNT): int(first[n]) for n in count_names
               if n.startswith(_OUTSIDE_COUNT) and first.get(n)}
    phenotype, severity = plan.meta["group_counts"]
    return ScreenSummary(
        n_rows=int(first.get("n_rows") or 0), n_stays=int(first.get("n_stays") or 0),
        n_meeting=len(meeting), shown=meeting[:rows_shown],
        n_meeting_phenotype=sum(1 for r in meeting if (r.get(phenotype) or 0) > 0),
        n_meeting_severity=sum(1 for r in meeting if (r.get(severity) or 0) > 0),
        n_outside_ages=outside)


def _file_columns(path, kind) -> list[tuple[str, str]]:
    import ibis

    reader = ibis.duckdb.connect()
    try:
        written = reader.read_csv(path) if kind == "csv" else reader.read_parquet(path)
        return [(n, str(t)) for n, t in written.schema().items()]
    finally:
        reader.disconnect()

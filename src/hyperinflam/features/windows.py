"""Windowed aggregation: each source's rows joined to the evaluation times on person and time range,
reduced per spec (min / max / first / last / count / any) to one column per stay x evaluation time.

Everything is an ibis expression (no engine SQL strings, no ``asof_join``; "last value at or
before t" is ``row_number()`` over a window), so the same code runs on DuckDB and on Spark.
Clinical reference: §12.10 (worst value per window), §12.21 (conditions unknown when
absent), §12.24 (vasoactive doses in ug/kg/min, vasopressin in U/kg/min), §5.4 (Phoenix
look-back windows).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import ibis
import ibis.expr.types as ir

from hyperinflam.features.concepts import load_concepts, matched_conditions
from hyperinflam.features.grid import hours_interval
from hyperinflam.features.spec import FeatureSpec
from hyperinflam.features.support import support_intervals
from hyperinflam.vocabulary.domain import (SUPPORT_GROUPS, VASOACTIVE_CLASS,  # noqa: F401
                                           VASOACTIVE_DOSE_UNIT, VASOPRESSIN_DOSE_UNIT)

#: Suspected-infection events count from this many hours before PICU admission when a spec has no
#: look-back (the screening contract: "lookback None: from admit_time - 48 h").
EVENT_PRE_ADMISSION_HOURS = 48


def derived_module():
    try:
        from hyperinflam.features import derived  # written by the Phoenix engineer
    except ImportError:
        return None
    if not (hasattr(derived, "DERIVED_VARIABLES") and hasattr(derived, "derived_measurements")):
        return None
    return derived


@lru_cache(maxsize=1)
def _derived_variables_cached() -> frozenset:
    derived = derived_module()
    return frozenset(derived.DERIVED_VARIABLES) if derived else frozenset()


def derived_variables() -> frozenset:
    return _derived_variables_cached()


def evaluation_keys(grid: ir.Table) -> ir.Table:
    """One row per (stay, evaluation time): the keys every part is grouped by and joined on."""
    return grid.select(g_person="person_id", g_stay="stay_id", g_time="eval_time",
                       g_admit="admit_time").distinct()


def _in_window(time: ir.TimestampValue, j: ir.Table, lookback_hours: float | None,
               stay_start: ir.TimestampValue | None = None,
               first_hours: float | None = None) -> ir.BooleanValue:
    """time in (eval_time - lookback, eval_time]; lookback None: [stay_start, eval_time];
    first_hours: [admission, min(eval_time, admission + first_hours)]."""
    if first_hours is not None:
        end = ibis.least(j.g_time, j.g_admit + hours_interval(first_hours))
        return (time >= j.g_admit) & (time <= end)
    if lookback_hours is None:
        start = j.g_admit if stay_start is None else stay_start
        return (time >= start) & (time <= j.g_time)
    return (time > j.g_time - hours_interval(lookback_hours)) & (time <= j.g_time)


def _lower_bound(keys: ir.Table, specs: list[FeatureSpec], stay_start) -> ir.TimestampValue:
    """The earliest time any of ``specs`` can look at (a superset for the join)."""
    bounded = [s.lookback_hours for s in specs if s.lookback_hours is not None]
    parts = []
    if bounded:
        parts.append(keys.g_time - hours_interval(max(bounded)))
    if any(s.lookback_hours is None for s in specs):
        parts.append(stay_start)
    return parts[0] if len(parts) == 1 else ibis.least(*parts)


def _long_measurements(con, variables: Iterable[str]) -> ir.Table:
    """Measurement rows of ``variables`` (vocabulary and derived): m_person, m_time, m_variable,
    m_value (DOUBLE, canonical unit)."""
    variables = sorted(set(variables))
    meas = con.table("measurement")
    vocab_vars = [v for v in variables if v not in derived_variables()]
    long = meas.filter(meas.variable.isin(vocab_vars)).select(
        m_person="person_id", m_time="time", m_variable="variable",
        m_value=meas.value.cast("float64"))
    derived_vars = [v for v in variables if v in derived_variables()]
    if derived_vars:
        extra = derived_module().derived_measurements(meas)
        extra = extra.filter(extra.variable.isin(derived_vars)).select(
            m_person="person_id", m_time=extra.time.cast(long.m_time.type()), m_variable="variable",
            m_value=extra.value.cast("float64"))
        long = ibis.union(long, extra, distinct=False) if vocab_vars else extra
    return long


#: One window shape of measurement specs: ("lookback", reach hours), ("stay", None) or
#: ("first", hours).
WindowKey = tuple[str, float | None]

#: Partial-aggregate column per spec aggregate.
_PARTIAL = {"min": "v_min", "max": "v_max", "count": "v_n"}


def window_groups(specs: list[FeatureSpec]) -> dict[WindowKey, list[FeatureSpec]]:
    """min / max / count measurement specs grouped by the join that serves them.

    Bounded look-backs are grouped by the *reach* of their variable (the longest look-back any
    spec asks of that variable): one join per reach, so a variable asked for 6 h and 24 h is read
    and joined once and its 6-h values are a filter inside the 24-h join. Whole-stay and
    first-hours windows have their own shapes.
    """
    reach: dict[str, float] = {}
    for s in specs:
        if s.lookback_hours is not None and s.first_hours is None:
            reach[s.variable] = max(reach.get(s.variable, 0.0), s.lookback_hours)
    groups: dict[WindowKey, list[FeatureSpec]] = {}
    for s in specs:
        if s.first_hours is not None:
            key = ("first", s.first_hours)
        elif s.lookback_hours is None:
            key = ("stay", None)
        else:
            key = ("lookback", reach[s.variable])
        groups.setdefault(key, []).append(s)
    return groups


def _partial_name(spec: FeatureSpec, reach: float | None) -> str:
    base = _PARTIAL[spec.agg]
    if reach is None or spec.lookback_hours == reach:
        return base
    return f"{base}_{spec.lookback_hours:g}h".replace(".", "_")


def _agg_where(col: ir.Value, agg: str, cond: ir.BooleanValue | None) -> ir.Value:
    """``agg`` ('min', 'max', 'count' or 'sum') of ``col`` over the rows where ``cond`` holds.

    Written as ``agg(CASE WHEN cond THEN col END)`` rather than ``agg(col) FILTER (WHERE cond)``:
    same values (NULLs are ignored by every aggregate); DuckDB evaluates the CASE form of the wide
    conditional aggregates of the pivots faster."""
    if cond is not None:
        col = ibis.ifelse(cond, col, ibis.null(col.type()))
    return getattr(col, agg)()


def _partials(j: ir.Table, group: list[str], specs: list[FeatureSpec],
              reach: float | None = None) -> ir.Table:
    """First level: per ``group`` + variable, the min / max / count the specs need (plain
    aggregates; look-backs shorter than the join's ``reach`` as a time filter)."""
    aggs = {}
    for s in specs:
        name = _partial_name(s, reach)
        if name in aggs:
            continue
        inside = None
        if name != _PARTIAL[s.agg]:
            inside = j.m_time > j.g_time - hours_interval(s.lookback_hours)
        aggs[name] = _agg_where(j.m_value, s.agg, inside)
    return j.group_by([*group, "m_variable"]).aggregate(**aggs)


def _pivot(partials: ir.Table, specs: list[FeatureSpec], reach: float | None = None,
           group: tuple[str, ...] = ("g_stay", "g_time")) -> ir.Table:
    """Per-variable partials to one column per spec, per evaluation row (g_stay, g_time)."""
    aggs = {}
    for s in specs:
        is_var = partials.m_variable == s.variable
        col = partials[_partial_name(s, reach)]
        aggs[s.column] = _agg_where(col, "sum" if s.agg == "count" else s.agg, is_var)
    return partials.group_by(list(group)).aggregate(**aggs)


def measurement_window_part(con, keys: ir.Table, specs: list[FeatureSpec],
                             window: WindowKey) -> ir.Table:
    """min / max / count specs of one window shape, one column per spec per (g_stay, g_time).

    Two levels: the measurements joined to the evaluation times by a join bounded by that window
    only are reduced to per-variable partials (plain aggregates), then pivoted to one column per
    spec by conditional aggregates over the small partial table (evaluation rows x variables,
    not measurement rows).
    """
    long = _long_measurements(con, (s.variable for s in specs))
    kind, hours = window
    if kind == "lookback":
        return _lookback_part(long, keys, specs, hours)
    return _running_part(long, keys, specs, first_hours=hours if kind == "first" else None)


def _lookback_part(long: ir.Table, keys: ir.Table, specs: list[FeatureSpec],
                   reach: float) -> ir.Table:
    """Look-back windows (t - L, t] for L <= ``reach``: one range join on person bounded by
    (t - reach, t], so a measurement meets only the few evaluation times whose window holds it."""
    j = keys.join(long, [keys.g_person == long.m_person, long.m_time <= keys.g_time,
                         long.m_time > keys.g_time - hours_interval(reach)])
    return _pivot(_partials(j, ["g_stay", "g_time"], specs, reach), specs, reach)


def _running_part(long: ir.Table, keys: ir.Table, specs: list[FeatureSpec],
                  first_hours: float | None = None) -> ir.Table:
    """Windows from admission: [admit_time, t] (whole stay) or, with ``first_hours`` H,
    [admit_time, min(t, admit_time + H)], as running aggregates over the stay's evaluation times.

    Each measurement joins only the one evaluation time that closes its cell: cell k of a stay is
    (t_{k-1}, t_k] (the first cell [admit_time, t_1]), always from admit_time on (and up to
    admit_time + H). Per cell, the per-spec min / max / count; then min / max / sum over the
    cells up to t (a cumulative window ordered by evaluation time; ``keys`` has one row per stay
    x evaluation time). Same values as a join of every measurement to every later evaluation
    time, without multiplying the rows, and one join only (a table used twice in one query may
    be materialised by the engine).
    """
    cells = keys.mutate(g_prev=keys.g_time.lag().over(group_by=keys.g_stay,
                                                       order_by=keys.g_time))
    # The join is bounded by [max(admit, t_{k-1}), t_k]; the filter then drops the values at
    # exactly t_{k-1}, which belong to the previous cell.
    cells = cells.mutate(
        g_from=ibis.greatest(cells.g_admit, cells.g_prev.fill_null(cells.g_admit)))
    bounds = [cells.g_person == long.m_person, long.m_time >= cells.g_from,
              long.m_time <= cells.g_time]
    if first_hours is not None:
        bounds.append(long.m_time <= cells.g_admit + hours_interval(first_hours))
    j = cells.join(long, bounds)
    j = j.filter(j.g_prev.isnull() | (j.m_time > j.g_prev))
    per_cell = _pivot(_partials(j, ["g_stay", "g_time"], specs), specs).rename(
        c_stay="g_stay", c_time="g_time")
    every = keys.select("g_stay", "g_time")
    every = every.left_join(per_cell, [every.g_stay == per_cell.c_stay,
                                       every.g_time == per_cell.c_time])
    upto = ibis.cumulative_window(group_by=every.g_stay, order_by=every.g_time)
    running = {}
    for s in specs:
        col = every[s.column]
        agg = col.min() if s.agg == "min" else col.max() if s.agg == "max" else col.sum()
        running[s.column] = agg.over(upto)
    return every.select("g_stay", "g_time", **running)


def ranked_measurement_part(con, keys: ir.Table, specs: list[FeatureSpec]) -> ir.Table:
    """'first' / 'last' specs: one window join of the measurements to the grid, ``row_number``
    ranks, conditional aggregates per spec."""
    long = _long_measurements(con, (s.variable for s in specs))
    lower = _lower_bound(keys, specs, keys.g_admit)
    k = keys.mutate(g_lower=lower)
    j = k.join(long, [k.g_person == long.m_person, long.m_time <= k.g_time,
                      long.m_time >= k.g_lower])

    windows: dict[str, ir.Value] = {}
    last_rank = None
    if any(s.agg == "last" for s in specs):
        windows["rn_last"] = ibis.row_number().over(
            group_by=[j.g_stay, j.g_time, j.m_variable],
            order_by=[j.m_time.desc(), j.m_value.desc()])
        last_rank = "rn_last"
    first_lbs = sorted({s.lookback_hours for s in specs if s.agg == "first"},
                       key=lambda x: -1 if x is None else x)
    for i, lb in enumerate(first_lbs):
        inside = _in_window(j.m_time, j, lb)
        windows[f"rn_first_{i}"] = ibis.row_number().over(
            group_by=[j.g_stay, j.g_time, j.m_variable, inside],
            order_by=[j.m_time.asc(), j.m_value.desc()])
    if windows:
        j = j.mutate(**windows)

    aggs = {}
    for s in specs:
        cond = (j.m_variable == s.variable) & _in_window(j.m_time, j, s.lookback_hours,
                                                         first_hours=s.first_hours)
        if s.agg == "min":
            aggs[s.column] = j.m_value.min(where=cond)
        elif s.agg == "max":
            aggs[s.column] = j.m_value.max(where=cond)
        elif s.agg == "count":
            aggs[s.column] = j.m_value.count(where=cond)
        elif s.agg == "last":
            aggs[s.column] = j.m_value.max(where=cond & (j[last_rank] == 0))
        elif s.agg == "first":
            rank = j[f"rn_first_{first_lbs.index(s.lookback_hours)}"]
            aggs[s.column] = j.m_value.max(where=cond & (rank == 0))
    return j.group_by(["g_stay", "g_time"]).aggregate(**aggs)


def condition_part(con, keys: ir.Table, specs: list[FeatureSpec]) -> ir.Table:
    concepts = load_concepts()
    matched = matched_conditions(con)
    j = keys.join(matched, keys.g_person == matched.c_person)
    aggs = {}
    for s in specs:
        negators = sorted(concepts.loc[concepts.negates == s.variable, "concept"])
        if s.lookback_hours is None:
            when = j.c_onset.isnull() | (j.c_onset <= j.g_time)
        else:
            when = j.c_onset.isnull() | _in_window(j.c_onset, j, s.lookback_hours)
        aggs[f"{s.column}__pos"] = j.c_concept.count(where=when & (j.c_concept == s.variable))
        neg = j.c_concept.isin(negators) if negators else ibis.literal(False)
        aggs[f"{s.column}__neg"] = j.c_concept.count(where=when & neg)
    return j.group_by(["g_stay", "g_time"]).aggregate(**aggs)


def drug_part(con, keys: ir.Table, specs: list[FeatureSpec]) -> ir.Table:
    drug = con.table("drug_administration").select(
        d_person="person_id", d_drug="drug", d_class="drug_class", d_start="start_time")
    k = keys.mutate(g_lower=_lower_bound(keys, specs, keys.g_admit))
    j = k.join(drug, [k.g_person == drug.d_person, drug.d_start <= k.g_time,
                      drug.d_start >= k.g_lower])
    aggs = {}
    for s in specs:
        cond = ((j.d_drug == s.variable) | (j.d_class == s.variable)) & \
            _in_window(j.d_start, j, s.lookback_hours)
        if s.agg == "any":
            aggs[s.column] = j.d_drug.count(where=cond) > 0
        else:
            aggs[s.column] = j.d_drug.nunique(where=cond)
    return j.group_by(["g_stay", "g_time"]).aggregate(**aggs)


def organ_support_part(con, keys: ir.Table, specs: list[FeatureSpec], vocab) -> ir.Table:
    """Organ-support specs over every support interval however recorded
    (:func:`hyperinflam.features.support.support_intervals`: organ_support rows and vasoactive
    drug administrations). A spec names one kind or agent, ``vasoactive`` (the agents of that
    class) or a group of kinds (:data:`SUPPORT_GROUPS`, e.g. ``other_respiratory_support``)."""
    org = support_intervals(con, vocab).select(
        o_person="person_id", o_support="support", o_start="start_time", o_end="end_time",
        o_dose="dose", o_dose_unit="dose_unit")
    k = keys.mutate(g_lower=_lower_bound(keys, specs, keys.g_admit))
    j = k.join(org, [k.g_person == org.o_person, org.o_start <= k.g_time,
                     org.o_end.isnull() | (org.o_end >= k.g_lower)])
    vasoactive = vocab.drugs_in_class(VASOACTIVE_CLASS)
    aggs = {}
    for s in specs:
        if s.lookback_hours is None:
            overlaps = j.o_end.isnull() | (j.o_end >= j.g_admit)
        else:
            overlaps = j.o_end.isnull() | (j.o_end > j.g_time - hours_interval(s.lookback_hours))
        overlaps = overlaps & (j.o_start <= j.g_time)
        if s.variable == VASOACTIVE_CLASS:
            agent = j.o_support.isin(vasoactive)
        elif s.variable in SUPPORT_GROUPS:
            agent = j.o_support.isin(list(SUPPORT_GROUPS[s.variable]))
        else:
            agent = j.o_support == s.variable
        cond = overlaps & agent
        if s.agg == "any":
            aggs[s.column] = j.o_support.count(where=cond) > 0
        elif s.agg == "count":
            aggs[s.column] = j.o_support.nunique(where=cond)
        else:  # max dose of one agent, in its canonical dose unit (§12.24)
            unit = VASOPRESSIN_DOSE_UNIT if s.variable == "vasopressin" else VASOACTIVE_DOSE_UNIT
            aggs[f"{s.column}__n"] = j.o_support.count(where=cond)
            aggs[s.column] = j.o_dose.max(where=cond & (j.o_dose_unit == unit))
    return j.group_by(["g_stay", "g_time"]).aggregate(**aggs)


def event_part(con, keys: ir.Table, specs: list[FeatureSpec]) -> ir.Table:
    event = con.table("event").select(e_person="person_id", e_type="event_type", e_time="time")
    stay_start = keys.g_admit - hours_interval(EVENT_PRE_ADMISSION_HOURS)
    k = keys.mutate(g_lower=_lower_bound(keys, specs, stay_start), g_event_start=stay_start)
    j = k.join(event, [k.g_person == event.e_person, event.e_time <= k.g_time,
                       event.e_time >= k.g_lower])
    aggs = {}
    for s in specs:
        cond = (j.e_type == s.variable) & _in_window(j.e_time, j, s.lookback_hours,
                                                     stay_start=j.g_event_start)
        aggs[s.column] = j.e_type.count(where=cond)
    return j.group_by(["g_stay", "g_time"]).aggregate(**aggs)


def finish_column(spec: FeatureSpec, w: ir.Table) -> ir.Value:
    """The final, typed column of one spec from its aggregate(s) on the left-joined table."""
    col = spec.column
    if spec.source == "measurement":
        if spec.agg == "count":
            return w[col].fill_null(0).cast("int64")
        return w[col].cast("float64")
    if spec.source == "condition":
        pos, neg = w[f"{col}__pos"].fill_null(0), w[f"{col}__neg"].fill_null(0)
        return ibis.cases((pos > 0, True), (neg > 0, False),
                          else_=ibis.null("boolean")).cast("boolean")
    if spec.source == "drug" or (spec.source == "organ_support" and spec.agg != "max"):
        if spec.agg == "any":
            return w[col].fill_null(False).cast("boolean")
        return w[col].fill_null(0).cast("int64")
    if spec.source == "organ_support":  # max dose: 0 when the agent is not running
        running = w[f"{col}__n"].fill_null(0) > 0
        return ibis.ifelse(running, w[col].cast("float64"), ibis.literal(0.0, "float64"))
    # event: TRUE when recorded, else unknown (absence is not "no infection")
    return ibis.ifelse(w[col].fill_null(0) > 0, True, ibis.null("boolean")).cast("boolean")

"""The time model and the wide feature table: one row per stay x evaluation time.

Contract shared by every criterion (``hyperinflam.criteria``): a criterion declares the inputs it
needs as :class:`FeatureSpec` values; the screen builds one wide table holding the union of all
declared inputs (column names from :attr:`FeatureSpec.column`), then every criterion adds its
result columns to that table as ibis expressions.

Everything here is an ibis expression (backend-neutral: no engine SQL strings, no ``asof_join``;
"last value at or before t" is ``row_number()`` over a window), so the same code runs on DuckDB and
on Spark. ``docs/time-model.md`` explains the grid and the windows for people.

Clinical reference: §12 row 10 (worst value per window: score-specific look-backs; HLH/HScore/MAS
labs 72 h, clinical findings the whole stay up to the evaluation time), §12 row 14 and §11.1 (age in
months = days / 30.4375 at the evaluation time), §12 row 21 (conditions unknown when absent, never
"no"), §12 row 24 (vasoactive counting and doses in ug/kg/min, vasopressin in U/kg/min), §5.4
(Phoenix look-back windows).
"""

from __future__ import annotations

import csv
import datetime as dt
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterable, Literal

import ibis
import ibis.expr.types as ir
import pandas as pd

from hyperinflam.errors import FeatureError

Aggregate = Literal["min", "max", "last", "first", "count", "any"]
Source = Literal["measurement", "condition", "drug", "organ_support", "event"]

#: Days per month used for every age in months (clinical reference §11.1, §12 row 14).
DAYS_PER_MONTH = 30.4375
#: Suspected-infection events count from this many hours before PICU admission when a spec has no
#: look-back (the screening contract: "lookback None: from admit_time - 48 h").
EVENT_PRE_ADMISSION_HOURS = 48
#: Smallest grid step accepted (hours).
MIN_STEP_HOURS = 1

#: Aggregates each source supports.
SUPPORTED_AGGREGATES: dict[str, tuple[str, ...]] = {
    "measurement": ("min", "max", "last", "first", "count"),
    "condition": ("any",),
    "drug": ("any", "count"),
    "organ_support": ("any", "count", "max"),
    "event": ("any",),
}
#: Canonical dose unit of organ-support doses (clinical reference §12 row 24).
VASOACTIVE_DOSE_UNIT = "ug/kg/min"
VASOPRESSIN_DOSE_UNIT = "U/kg/min"
INVASIVE_VENTILATION = "invasive_ventilation"
EVENT_TYPES = ("infection", "death")


@dataclass(frozen=True)
class FeatureSpec:
    """One input column of the wide feature table.

    variable: a vocabulary variable ('platelets'), a condition concept ('splenomegaly'), a drug
        or drug class ('anakinra', 'vasoactive') or an organ support ('invasive_ventilation'),
        depending on ``source``.
    agg: how values inside the window are reduced: 'min' / 'max' (worst low / worst high),
        'last' (last value at or before the evaluation time), 'first', 'count' (number of rows
        or distinct agents), 'any' (True if any row, NULL = unknown when none).
    lookback_hours: window (t - lookback, t]; None means from PICU admission up to t.
    first_hours: only with lookback None (measurements, min/max/count): the window is the first
        hours of the stay, [admission, min(t, admission + first_hours)] -- e.g. PRISM III-24
        (clinical reference 7.3, 12 row 29).
    """

    variable: str
    agg: Aggregate
    lookback_hours: float | None
    source: Source = "measurement"
    first_hours: float | None = None

    @property
    def column(self) -> str:
        if self.first_hours is not None:
            window = f"first{self.first_hours:g}h"
        else:
            window = "stay" if self.lookback_hours is None else f"{self.lookback_hours:g}h"
        return f"{self.variable}_{self.agg}_{window}"


# ---------------------------------------------------------------------------------------------
# Time helpers
# ---------------------------------------------------------------------------------------------
def _seconds(expr: ir.Value) -> ir.IntegerValue:
    """Seconds since the epoch of a timestamp or date, as a 64-bit integer."""
    return expr.cast("timestamp").epoch_seconds().cast("int64")


def _hours_interval(hours: float):
    return ibis.interval(seconds=int(round(hours * 3600)))


def to_naive_utc(at: str | dt.datetime | pd.Timestamp) -> dt.datetime:
    """An evaluation time as a naive UTC datetime (an offset, if given, is honoured).

    A time without an offset is taken as UTC (the engine's convention, ``hyperinflam.schema``).
    """
    try:
        stamp = pd.Timestamp(at)
    except (ValueError, TypeError) as exc:
        raise FeatureError(
            f"Cannot read the time '{at}': give an ISO 8601 time such as '2024-03-01 14:30' or "
            f"'2024-03-01T14:30:00+01:00' ({exc})."
        ) from None
    if stamp is pd.NaT:
        raise FeatureError(f"The time '{at}' is empty; give an ISO 8601 time.")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()


# ---------------------------------------------------------------------------------------------
# 1. The evaluation grid
# ---------------------------------------------------------------------------------------------
def _last_data_time(con) -> ir.Table:
    """Per person, every data time (measurements, drug starts, organ-support starts/ends)."""
    meas = con.table("measurement").select(d_person="person_id", d_time="time")
    drug = con.table("drug_administration").select(d_person="person_id", d_time="start_time")
    org = con.table("organ_support")
    org_start = org.select(d_person="person_id", d_time="start_time")
    org_end = org.filter(org.end_time.notnull()).select(d_person="person_id", d_time="end_time")
    return ibis.union(meas, drug, org_start, org_end, distinct=False)


def _stays(con) -> ir.Table:
    stay = con.table("stay")
    person = con.table("person").select(p_person="person_id", birth_date="birth_date", sex="sex")
    joined = stay.join(person, stay.person_id == person.p_person, how="left")
    return joined.select(
        "person_id", "stay_id", "admit_time", "discharge_time", "birth_date", "sex",
        weight_kg=joined.weight_kg.cast("float64"),
    )


def _with_base_columns(grid: ir.Table) -> ir.Table:
    """Add the age and time-since-admission base columns (clinical reference §11.1, §12 row 14)."""
    birth_s = _seconds(grid.birth_date)
    eval_s = _seconds(grid.eval_time)
    admit_s = _seconds(grid.admit_time)
    age_days = (eval_s - birth_s).cast("float64") / 86400.0
    return grid.select(
        "person_id", "stay_id", "eval_time", "admit_time", "discharge_time", "birth_date",
        "sex", "weight_kg",
        age_days=age_days,
        age_months=age_days / DAYS_PER_MONTH,
        age_months_at_admit=(admit_s - birth_s).cast("float64") / 86400.0 / DAYS_PER_MONTH,
        hours_since_admit=(eval_s - admit_s).cast("float64") / 3600.0,
    )


def evaluation_grid(con, *, step_hours: float = 24,
                    at: str | dt.datetime | pd.Timestamp | None = None) -> ir.Table:
    """One row per stay x evaluation time, with the base columns of the screening contract.

    Grid (``at`` is None): evaluation times ``t_k = admit_time + k * step_hours`` for k >= 1 while
    ``t_k`` is before the end of the stay, plus the end of the stay itself. The end is
    ``discharge_time``; for a stay still open (no discharge) it is the last data time of the
    person at or after admission (measurements, drug starts, organ-support starts and ends), or
    the admission itself when there is none. A 50-h stay with a 24-h step is evaluated at
    +24 h, +48 h and +50 h; a 48-h stay at +24 h and +48 h; a 10-h stay at +10 h.

    ``at``: a single time (ISO text or datetime; an offset is converted to UTC, none = UTC): the
    stays in the PICU at that time (``admit_time <= at`` and discharge empty or ``> at``),
    evaluated at ``at``.

    Base columns: person_id, stay_id, eval_time, admit_time, discharge_time, birth_date, sex,
    weight_kg, age_days (from birth_date to eval_time), age_months (= age_days / 30.4375, clinical
    reference §11.1 and §12 row 14), age_months_at_admit, hours_since_admit.
    """
    stays = _stays(con)
    if at is not None:
        at_value = ibis.literal(to_naive_utc(at), type="timestamp")
        grid = stays.filter(
            stays.admit_time <= at_value,
            stays.discharge_time.isnull() | (stays.discharge_time > at_value),
        ).mutate(eval_time=at_value)
        return _with_base_columns(grid)

    if step_hours is None or not step_hours >= MIN_STEP_HOURS:
        raise FeatureError(
            f"step_hours must be at least {MIN_STEP_HOURS} hour (got {step_hours}); for example "
            f"24 for one evaluation per day."
        )
    step_s = int(round(step_hours * 3600))

    data = _last_data_time(con)
    open_stays = stays.filter(stays.discharge_time.isnull()).select(
        o_stay="stay_id", o_person="person_id", o_admit="admit_time")
    last = (
        open_stays.join(data, [open_stays.o_person == data.d_person,
                               data.d_time >= open_stays.o_admit])
        .group_by("o_stay")
        .aggregate(last_time=lambda t: t.d_time.max())
    )
    stays = stays.left_join(last, stays.stay_id == last.o_stay)
    stays = stays.mutate(
        end_time=ibis.coalesce(stays.discharge_time, stays.last_time, stays.admit_time)
    ).drop("o_stay", "last_time")
    stays = stays.mutate(n_steps=((_seconds(stays.end_time) - _seconds(stays.admit_time))
                                  // step_s).cast("int64"))

    steps = stays.mutate(k=ibis.range(1, stays.n_steps + 1).unnest())
    steps = steps.mutate(eval_time=steps.admit_time + (steps.k * step_s).as_interval("s"))
    steps = steps.filter(steps.eval_time < steps.end_time).drop("k")
    ends = stays.mutate(eval_time=stays.end_time)
    grid = ibis.union(steps, ends, distinct=False).drop("end_time", "n_steps")
    return _with_base_columns(grid)


def grid_at(con, times: ir.Table) -> ir.Table:
    """Evaluation rows at given times per stay: ``times`` has ``stay_id`` and ``eval_time``
    (e.g. each cohort member's first anakinra dose). Same base columns as
    :func:`evaluation_grid`; stays not in the stay table are dropped."""
    stays = _stays(con)
    t = times.select(t_stay="stay_id", t_time=times.eval_time.cast("timestamp"))
    joined = stays.join(t, stays.stay_id == t.t_stay)
    return _with_base_columns(joined.mutate(eval_time=joined.t_time))


# ---------------------------------------------------------------------------------------------
# 2. Conditions vocabulary (concepts.csv)
# ---------------------------------------------------------------------------------------------
def _fold_name(text: str) -> str:
    return " ".join(text.strip().lower().replace("_", " ").split())


def _fold_name_expr(expr: ir.StringValue) -> ir.StringValue:
    # Same folding as _fold_name (inner runs of spaces are not collapsed on the engine).
    return expr.strip().lower().replace("_", " ")


def _fold_code(text: str) -> str:
    return text.strip().upper().replace(".", "")


def _fold_code_expr(expr: ir.StringValue) -> ir.StringValue:
    return expr.strip().upper().replace(".", "")


@lru_cache(maxsize=1)
def load_concepts() -> pd.DataFrame:
    """``vocabulary/concepts.csv``: one row per concept (aliases and codes split into lists)."""
    with resources.files("hyperinflam.vocabulary").joinpath("concepts.csv").open(
            "r", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for line, row in enumerate(rows, start=2):
        concept = (row.get("concept") or "").strip()
        if not concept:
            raise FeatureError(f"vocabulary/concepts.csv line {line}: empty concept name.")
        split = lambda key: [x.strip() for x in (row.get(key) or "").split("|") if x.strip()]  # noqa: E731
        out.append({"concept": concept, "aliases": split("aliases"), "snomed": split("snomed"),
                    "icd10": split("icd10"), "negates": (row.get("negates") or "").strip(),
                    "reference": row.get("reference") or ""})
    return pd.DataFrame(out)


def concept_keys() -> pd.DataFrame:
    """Matching keys of every concept: (match_kind, match_key, concept).

    match_kind 'name' (folded free text: the concept name and its aliases), 'snomed' (exact code)
    or 'icd10' (code prefix, dots removed: 'M08.2' matches 'M08.20').
    """
    rows = []
    for r in load_concepts().itertuples():
        for name in [r.concept, *r.aliases]:
            rows.append(("name", _fold_name(name), r.concept))
        rows += [("snomed", _fold_code(c), r.concept) for c in r.snomed]
        rows += [("icd10", _fold_code(c), r.concept) for c in r.icd10]
    frame = pd.DataFrame(rows, columns=["match_kind", "match_key", "concept"])
    return frame.drop_duplicates().reset_index(drop=True)


def _matched_conditions(con) -> ir.Table:
    """Condition rows mapped to concepts: (c_person, c_onset, c_concept)."""
    cond = con.table("condition")
    keys = ibis.memtable(concept_keys())
    system = cond.code_system.strip().upper()
    cond = cond.select(
        c_person="person_id", c_onset="onset_time",
        c_name=_fold_name_expr(cond.condition),
        c_code=_fold_code_expr(cond.code),
        c_kind=ibis.cases((system.contains("SNOMED") | (system == "SCT"), "snomed"),
                          (system.contains("ICD"), "icd10"), else_=None),
    )
    by_name = cond.join(keys, [keys.match_kind == "name", cond.c_name == keys.match_key])
    by_snomed = cond.join(keys, [keys.match_kind == "snomed", cond.c_kind == "snomed",
                                 cond.c_code == keys.match_key])
    by_icd = cond.join(keys, [keys.match_kind == "icd10", cond.c_kind == "icd10",
                              cond.c_code.startswith(keys.match_key)])
    cols = dict(c_person="c_person", c_onset="c_onset", c_concept="concept")
    return ibis.union(by_name.select(**cols), by_snomed.select(**cols), by_icd.select(**cols),
                      distinct=True)


# ---------------------------------------------------------------------------------------------
# 3. The wide feature table
# ---------------------------------------------------------------------------------------------
def _derived_module():
    try:
        from hyperinflam.features import derived  # written by the Phoenix engineer
    except ImportError:
        return None
    if not (hasattr(derived, "DERIVED_VARIABLES") and hasattr(derived, "derived_measurements")):
        return None
    return derived


def _validate(specs: list[FeatureSpec], vocab) -> None:
    concepts = set(load_concepts().concept)
    drug_names = set(vocab.drugs)
    drug_classes = {r["drug_class"] for r in vocab.drugs.values()}
    vasoactive = set(vocab.drugs_in_class("vasoactive"))
    derived = _derived_module()
    derived_vars = set(derived.DERIVED_VARIABLES) if derived else set()
    for spec in specs:
        where = f"FeatureSpec{(spec.variable, spec.agg, spec.lookback_hours, spec.source)}"
        if spec.source not in SUPPORTED_AGGREGATES:
            raise FeatureError(f"{where}: unknown source '{spec.source}'; use one of "
                               f"{', '.join(SUPPORTED_AGGREGATES)}.")
        if spec.agg not in SUPPORTED_AGGREGATES[spec.source]:
            raise FeatureError(f"{where}: aggregate '{spec.agg}' is not defined for source "
                               f"'{spec.source}'; use one of "
                               f"{', '.join(SUPPORTED_AGGREGATES[spec.source])}.")
        if spec.lookback_hours is not None and not spec.lookback_hours > 0:
            raise FeatureError(f"{where}: lookback_hours must be > 0 or None (whole stay).")
        if spec.first_hours is not None and not (
                spec.first_hours > 0 and spec.lookback_hours is None
                and spec.source == "measurement" and spec.agg in ("min", "max", "count")):
            raise FeatureError(f"{where}: first_hours={spec.first_hours} needs a measurement "
                               f"spec with lookback_hours=None and agg min, max or count.")
        if spec.source == "measurement":
            if spec.variable not in vocab.variables and spec.variable not in derived_vars \
                    and derived is not None:
                raise FeatureError(
                    f"{where}: '{spec.variable}' is neither a variable of "
                    f"vocabulary/variables.csv nor a derived variable of hyperinflam.features.derived.")
        elif spec.source == "condition" and spec.variable not in concepts:
            raise FeatureError(f"{where}: '{spec.variable}' is not a concept of "
                               f"vocabulary/concepts.csv; add a row for it there.")
        elif spec.source == "drug" and spec.variable not in drug_names | drug_classes:
            raise FeatureError(f"{where}: '{spec.variable}' is neither a drug nor a drug class of "
                               f"vocabulary/drugs.csv.")
        elif spec.source == "organ_support":
            if spec.variable not in {INVASIVE_VENTILATION, "vasoactive"} | vasoactive:
                raise FeatureError(f"{where}: organ support must be '{INVASIVE_VENTILATION}', "
                                   f"'vasoactive' or one of {', '.join(sorted(vasoactive))}.")
            if spec.agg == "max" and spec.variable not in vasoactive:
                raise FeatureError(f"{where}: 'max' (highest dose) needs one vasoactive agent, "
                                   f"e.g. 'dopamine'.")
        elif spec.source == "event" and spec.variable not in EVENT_TYPES:
            raise FeatureError(f"{where}: event type must be one of {', '.join(EVENT_TYPES)}.")


def _keys(grid: ir.Table) -> ir.Table:
    """One row per (stay, evaluation time): the keys every part is grouped by and joined on."""
    return grid.select(g_person="person_id", g_stay="stay_id", g_time="eval_time",
                       g_admit="admit_time").distinct()


def _in_window(time: ir.TimestampValue, j: ir.Table, lookback_hours: float | None,
               stay_start: ir.TimestampValue | None = None,
               first_hours: float | None = None) -> ir.BooleanValue:
    """time in (eval_time - lookback, eval_time]; lookback None: [stay_start, eval_time];
    first_hours: [admission, min(eval_time, admission + first_hours)]."""
    if first_hours is not None:
        end = ibis.least(j.g_time, j.g_admit + _hours_interval(first_hours))
        return (time >= j.g_admit) & (time <= end)
    if lookback_hours is None:
        start = j.g_admit if stay_start is None else stay_start
        return (time >= start) & (time <= j.g_time)
    return (time > j.g_time - _hours_interval(lookback_hours)) & (time <= j.g_time)


def _lower_bound(keys: ir.Table, specs: list[FeatureSpec], stay_start) -> ir.TimestampValue:
    """The earliest time any of ``specs`` can look at (a superset for the join)."""
    bounded = [s.lookback_hours for s in specs if s.lookback_hours is not None]
    parts = []
    if bounded:
        parts.append(keys.g_time - _hours_interval(max(bounded)))
    if any(s.lookback_hours is None for s in specs):
        parts.append(stay_start)
    return parts[0] if len(parts) == 1 else ibis.least(*parts)


def _long_measurements(con, variables: Iterable[str]) -> ir.Table:
    """Measurement rows of ``variables`` (vocabulary and derived): m_person, m_time, m_variable,
    m_value (DOUBLE, canonical unit)."""
    variables = sorted(set(variables))
    meas = con.table("measurement")
    vocab_vars = [v for v in variables if v not in _derived_variables()]
    long = meas.filter(meas.variable.isin(vocab_vars)).select(
        m_person="person_id", m_time="time", m_variable="variable",
        m_value=meas.value.cast("float64"))
    derived_vars = [v for v in variables if v in _derived_variables()]
    if derived_vars:
        extra = _derived_module().derived_measurements(meas)
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


def _window_groups(specs: list[FeatureSpec]) -> dict[WindowKey, list[FeatureSpec]]:
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
            inside = j.m_time > j.g_time - _hours_interval(s.lookback_hours)
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


def _measurement_window_part(con, keys: ir.Table, specs: list[FeatureSpec],
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
                         long.m_time > keys.g_time - _hours_interval(reach)])
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
        bounds.append(long.m_time <= cells.g_admit + _hours_interval(first_hours))
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


def _ranked_measurement_part(con, keys: ir.Table, specs: list[FeatureSpec]) -> ir.Table:
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


@lru_cache(maxsize=1)
def _derived_variables_cached() -> frozenset:
    derived = _derived_module()
    return frozenset(derived.DERIVED_VARIABLES) if derived else frozenset()


def _derived_variables() -> frozenset:
    return _derived_variables_cached()


def _condition_part(con, keys: ir.Table, specs: list[FeatureSpec]) -> ir.Table:
    concepts = load_concepts()
    matched = _matched_conditions(con)
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


def _drug_part(con, keys: ir.Table, specs: list[FeatureSpec]) -> ir.Table:
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


def _organ_support_part(con, keys: ir.Table, specs: list[FeatureSpec], vocab) -> ir.Table:
    org = con.table("organ_support")
    units = ibis.memtable(vocab.dose_units_frame[["unit_key", "canonical_unit", "factor"]])
    org = org.mutate(o_unit_key=org.dose_unit.strip().lower().replace(" ", "")
                     .replace("\u00b5", "u").replace("\u03bc", "u"))
    units = units.mutate(unit_key=units.unit_key.lower())
    org = org.left_join(units, org.o_unit_key == units.unit_key)
    org = org.select(o_person="person_id", o_support="support", o_start="start_time",
                     o_end="end_time",
                     o_dose=org.dose.cast("float64") * org.factor.cast("float64"),
                     o_dose_unit="canonical_unit")
    k = keys.mutate(g_lower=_lower_bound(keys, specs, keys.g_admit))
    j = k.join(org, [k.g_person == org.o_person, org.o_start <= k.g_time,
                     org.o_end.isnull() | (org.o_end >= k.g_lower)])
    vasoactive = vocab.drugs_in_class("vasoactive")
    aggs = {}
    for s in specs:
        if s.lookback_hours is None:
            overlaps = j.o_end.isnull() | (j.o_end >= j.g_admit)
        else:
            overlaps = j.o_end.isnull() | (j.o_end > j.g_time - _hours_interval(s.lookback_hours))
        overlaps = overlaps & (j.o_start <= j.g_time)
        agent = j.o_support.isin(vasoactive) if s.variable == "vasoactive" \
            else j.o_support == s.variable
        cond = overlaps & agent
        if s.agg == "any":
            aggs[s.column] = j.o_support.count(where=cond) > 0
        elif s.agg == "count":
            aggs[s.column] = j.o_support.nunique(where=cond)
        else:  # max dose of one agent, in its canonical dose unit (§12 row 24)
            unit = VASOPRESSIN_DOSE_UNIT if s.variable == "vasopressin" else VASOACTIVE_DOSE_UNIT
            aggs[f"{s.column}__n"] = j.o_support.count(where=cond)
            aggs[s.column] = j.o_dose.max(where=cond & (j.o_dose_unit == unit))
    return j.group_by(["g_stay", "g_time"]).aggregate(**aggs)


def _event_part(con, keys: ir.Table, specs: list[FeatureSpec]) -> ir.Table:
    event = con.table("event").select(e_person="person_id", e_type="event_type", e_time="time")
    stay_start = keys.g_admit - _hours_interval(EVENT_PRE_ADMISSION_HOURS)
    k = keys.mutate(g_lower=_lower_bound(keys, specs, stay_start), g_event_start=stay_start)
    j = k.join(event, [k.g_person == event.e_person, event.e_time <= k.g_time,
                       event.e_time >= k.g_lower])
    aggs = {}
    for s in specs:
        cond = (j.e_type == s.variable) & _in_window(j.e_time, j, s.lookback_hours,
                                                     stay_start=j.g_event_start)
        aggs[s.column] = j.e_type.count(where=cond)
    return j.group_by(["g_stay", "g_time"]).aggregate(**aggs)


def _finish(spec: FeatureSpec, w: ir.Table) -> ir.Value:
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


def unique_specs(specs: Iterable[FeatureSpec]) -> list[FeatureSpec]:
    """Specs without duplicates, in first-seen order."""
    return list(dict.fromkeys(specs))


def build_features(con, grid: ir.Table, specs: Iterable[FeatureSpec], *,
                   vocabulary=None) -> ir.Table:
    """The wide feature table: ``grid`` plus one column per spec (named ``spec.column``).

    Per source, the grid is joined to the source table on person and time range and every spec
    of that source is a conditional aggregate grouped by stay x eval_time. Measurements (min /
    max / count) take the fast path of issue 4: one join per look-back *reach* bounded by that
    window only, then per-variable partials pivoted to columns (:func:`_window_groups`); windows
    from admission (whole stay, first hours) as running aggregates over per-cell partials, each
    measurement joined to one evaluation time (:func:`_running_part`). first / last keep one
    ``row_number`` join. Semantics (see ``docs/time-model.md``):

    * measurement: values with time in (t - lookback, t] (lookback None: [admit_time, t]);
      min/max/first/last DOUBLE in the canonical unit, NULL when there is none; count BIGINT
      (0 when none). last/first by ``row_number()`` ordered by time; values at the same time
      resolve to the higher value. Derived variables come from ``hyperinflam.features.derived`` when
      present; without that module they are NULL columns.
    * condition (any): TRUE if a matching concept (vocabulary/concepts.csv) with onset at or before
      t (or no onset) exists for the person, FALSE if only a negating concept does, NULL
      otherwise (§12 row 21: unknown when absent, never "no").
    * drug: any (BOOLEAN, absence = FALSE) / count (distinct drugs) of administrations started
      in the window.
    * organ_support: intervals overlapping the window (start <= t and end NULL or after the
      window start): any, count (distinct agents), max (highest dose of one agent in ug/kg/min,
      vasopressin U/kg/min, §12 row 24; 0 when the agent is not running, NULL when it runs with
      no convertible dose).
    * event (any): TRUE if an event of that type lies in the window (lookback None: from
      admit_time - 48 h), else NULL (unknown).
    """
    from hyperinflam.vocabulary import load

    vocab = vocabulary if vocabulary is not None else load()
    specs = unique_specs(specs)
    _validate(specs, vocab)
    keys = _keys(grid)

    derived_missing = [s for s in specs if s.source == "measurement"
                       and s.variable not in vocab.variables
                       and s.variable not in _derived_variables()]
    if derived_missing:
        warnings.warn(
            "hyperinflam.features.derived is not available: NULL (missing) columns for "
            + ", ".join(s.column for s in derived_missing), stacklevel=2)
    by_source: dict[str, list[FeatureSpec]] = {}
    for s in specs:
        if s not in derived_missing:
            by_source.setdefault(s.source, []).append(s)

    parts: list[ir.Table] = []
    meas = by_source.get("measurement", [])
    by_window = _window_groups([s for s in meas if s.agg in ("min", "max", "count")])
    for window, group in by_window.items():
        parts.append(_measurement_window_part(con, keys, group, window))
    ranked = [s for s in meas if s.agg in ("first", "last")]
    bounded = [s for s in ranked if s.lookback_hours is not None]
    whole_stay = [s for s in ranked if s.lookback_hours is None]
    for group in (bounded, whole_stay):
        if group:
            parts.append(_ranked_measurement_part(con, keys, group))
    if by_source.get("condition"):
        parts.append(_condition_part(con, keys, by_source["condition"]))
    if by_source.get("drug"):
        parts.append(_drug_part(con, keys, by_source["drug"]))
    if by_source.get("organ_support"):
        parts.append(_organ_support_part(con, keys, by_source["organ_support"], vocab))
    if by_source.get("event"):
        parts.append(_event_part(con, keys, by_source["event"]))

    wide = grid
    for i, part in enumerate(parts):
        part = part.rename({f"j{i}_stay": "g_stay", f"j{i}_time": "g_time"})
        wide = wide.left_join(part, [wide.stay_id == part[f"j{i}_stay"],
                                     wide.eval_time == part[f"j{i}_time"]])
        wide = wide.drop(f"j{i}_stay", f"j{i}_time")

    final = {}
    for s in specs:
        if s in derived_missing:
            final[s.column] = ibis.null("float64")
        else:
            final[s.column] = _finish(s, wide)
    return wide.select(*grid.columns, **final)

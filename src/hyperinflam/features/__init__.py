"""The time model and the wide feature table: one row per stay x evaluation time.

Contract shared by every criterion (``hyperinflam.criteria``): a criterion declares the inputs it
needs as :class:`FeatureSpec` values; the screen builds one wide table holding the union of all
declared inputs (column names from :attr:`FeatureSpec.column`), then every criterion adds its
result columns to that table as ibis expressions.

Everything here is an ibis expression (backend-neutral: no engine SQL strings, no ``asof_join``;
"last value at or before t" is ``row_number()`` over a window), so the same code runs on DuckDB and
on Spark. ``docs/time-model.md`` explains the grid and the windows for people.

Clinical reference: §12.10 (worst value per window: score-specific look-backs; HLH/HScore/MAS
labs 72 h, clinical findings the whole stay up to the evaluation time), §12.14 and §11.1 (age in
months = days / 30.4375 at the evaluation time), §12.21 (conditions unknown when absent, never
"no"), §12.24 (vasoactive counting and doses in ug/kg/min, vasopressin in U/kg/min), §5.4
(Phoenix look-back windows).
"""

from __future__ import annotations

import warnings
from typing import Iterable

import ibis
import ibis.expr.types as ir

from hyperinflam.errors import FeatureError
from hyperinflam.features import recorded, windows
from hyperinflam.features.concepts import concept_keys, load_concepts
from hyperinflam.features.grid import (DAYS_PER_MONTH, MIN_STEP_HOURS, evaluation_grid, grid_at,
                                       to_naive_utc)
from hyperinflam.features.spec import (EVENT_TYPES, INVASIVE_VENTILATION, SUPPORTED_AGGREGATES,
                                       Aggregate, FeatureSpec, Source, unique_specs)
from hyperinflam.features.windows import EVENT_PRE_ADMISSION_HOURS
from hyperinflam.vocabulary.domain import (SUPPORT_GROUPS, VASOACTIVE_CLASS,
                                           VASOACTIVE_DOSE_UNIT, VASOPRESSIN_DOSE_UNIT)

__all__ = [
    "Aggregate", "DAYS_PER_MONTH", "EVENT_PRE_ADMISSION_HOURS", "EVENT_TYPES",
    "INVASIVE_VENTILATION", "MIN_STEP_HOURS", "SUPPORTED_AGGREGATES", "Source",
    "VASOACTIVE_DOSE_UNIT", "VASOPRESSIN_DOSE_UNIT", "FeatureSpec", "build_features",
    "concept_keys", "evaluation_grid", "grid_at", "load_concepts", "to_naive_utc", "unique_specs",
]


def _validate(specs: list[FeatureSpec], vocab) -> None:
    concepts = set(load_concepts().concept)
    drug_names = set(vocab.drugs)
    drug_classes = {r["drug_class"] for r in vocab.drugs.values()}
    vasoactive = set(vocab.drugs_in_class(VASOACTIVE_CLASS))
    derived = windows.derived_module()
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
                    f"vocabulary/variables.csv nor a derived variable of "
                    f"hyperinflam.features.derived.")
        elif spec.source == "condition" and spec.variable not in concepts:
            raise FeatureError(f"{where}: '{spec.variable}' is not a concept of "
                               f"vocabulary/concepts.csv; add a row for it there.")
        elif spec.source == "drug" and spec.variable not in drug_names | drug_classes:
            raise FeatureError(f"{where}: '{spec.variable}' is neither a drug nor a drug class of "
                               f"vocabulary/drugs.csv.")
        elif spec.source == "organ_support":
            if spec.variable not in (set(vocab.supports) | {VASOACTIVE_CLASS} | vasoactive
                                     | set(SUPPORT_GROUPS)):
                raise FeatureError(f"{where}: organ support must be a kind of "
                                   f"vocabulary/supports.csv ({', '.join(vocab.supports)}), "
                                   f"a group of them ({', '.join(SUPPORT_GROUPS)}), "
                                   f"'{VASOACTIVE_CLASS}' or one of {', '.join(sorted(vasoactive))}.")
            if spec.agg == "max" and spec.variable not in vasoactive:
                raise FeatureError(f"{where}: 'max' (highest dose) needs one vasoactive agent, "
                                   f"e.g. 'dopamine'.")
        elif spec.source == "event" and spec.variable not in EVENT_TYPES:
            raise FeatureError(f"{where}: event type must be one of {', '.join(EVENT_TYPES)}.")


def build_features(con, grid: ir.Table, specs: Iterable[FeatureSpec], *,
                   vocabulary=None) -> ir.Table:
    """The wide feature table: ``grid`` plus one column per spec (named ``spec.column``).

    Per source, the grid is joined to the source table on person and time range and every spec
    of that source is a conditional aggregate grouped by stay x eval_time
    (:mod:`hyperinflam.features.windows`). Measurements (min / max / count) take the fast path of
    issue 4: one join per look-back *reach* bounded by that window only, then per-variable
    partials pivoted to columns (:func:`.windows.window_groups`); windows from admission (whole
    stay, first hours) as running aggregates over per-cell partials, each measurement joined to
    one evaluation time (:func:`.windows._running_part`). first / last keep one ``row_number``
    join. Semantics (see ``docs/time-model.md``):

    * measurement: values with time in (t - lookback, t] (lookback None: [admit_time, t]);
      min/max/first/last DOUBLE in the canonical unit, NULL when there is none; count BIGINT
      (0 when none). last/first by ``row_number()`` ordered by time; values at the same time
      resolve to the higher value. Derived variables come from ``hyperinflam.features.derived``
      when present; without that module they are NULL columns.
    * condition (any): TRUE if a matching concept (vocabulary/concepts.csv) with onset at or before
      t (or no onset) exists for the person, FALSE if only a negating concept does, NULL
      otherwise (§12.21: unknown when absent, never "no").
    * drug: any (BOOLEAN, absence = FALSE) / count (distinct drugs) of administrations started
      in the window.
    * organ_support: intervals overlapping the window (start <= t and end NULL or after the
      window start), from organ_support rows and vasoactive drug administrations alike
      (:mod:`hyperinflam.features.support`); a spec names a kind, an agent, ``vasoactive`` or a
      group of kinds (``respiratory_support``, ``other_respiratory_support``): any, count
      (distinct agents or kinds), max (highest dose of one agent in ug/kg/min,
      vasopressin U/kg/min, §12.24; 0 when the agent is not running, NULL when it runs with
      no convertible dose).
    * event (any): TRUE if an event of that type lies in the window (lookback None: from
      admit_time - 48 h), else NULL (unknown).
    * a domain the source does not record (organ support of a kind, vasoactive agents, drug
      administrations: :mod:`hyperinflam.features.recorded`): NULL (unknown), never FALSE / 0.
    """
    from hyperinflam.vocabulary import load

    vocab = vocabulary if vocabulary is not None else load()
    specs = unique_specs(specs)
    _validate(specs, vocab)
    keys = windows.evaluation_keys(grid)

    derived_missing = [s for s in specs if s.source == "measurement"
                       and s.variable not in vocab.variables
                       and s.variable not in windows.derived_variables()]
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
    by_window = windows.window_groups([s for s in meas if s.agg in ("min", "max", "count")])
    for window, group in by_window.items():
        parts.append(windows.measurement_window_part(con, keys, group, window))
    ranked = [s for s in meas if s.agg in ("first", "last")]
    bounded = [s for s in ranked if s.lookback_hours is not None]
    whole_stay = [s for s in ranked if s.lookback_hours is None]
    for group in (bounded, whole_stay):
        if group:
            parts.append(windows.ranked_measurement_part(con, keys, group))
    if by_source.get("condition"):
        parts.append(windows.condition_part(con, keys, by_source["condition"]))
    if by_source.get("drug"):
        parts.append(windows.drug_part(con, keys, by_source["drug"]))
    if by_source.get("organ_support"):
        parts.append(windows.organ_support_part(con, keys, by_source["organ_support"], vocab))
    if by_source.get("event"):
        parts.append(windows.event_part(con, keys, by_source["event"]))

    wide = grid
    for i, part in enumerate(parts):
        part = part.rename({f"j{i}_stay": "g_stay", f"j{i}_time": "g_time"})
        wide = wide.left_join(part, [wide.stay_id == part[f"j{i}_stay"],
                                     wide.eval_time == part[f"j{i}_time"]])
        wide = wide.drop(f"j{i}_stay", f"j{i}_time")

    # a domain the source does not record: the features read from it are unknown (recorded.py)
    domains = {s: recorded.feature_domain(s, vocab) for s in specs if s not in derived_missing}
    flags = recorded.domain_flags(con, [d for d in domains.values() if d])
    if flags is not None:
        wide = wide.cross_join(flags)
    final = {}
    for s in specs:
        if s in derived_missing:
            final[s.column] = ibis.null("float64")
            continue
        column = windows.finish_column(s, wide)
        if flags is not None and domains.get(s):
            column = ibis.ifelse(wide[recorded.flag_column(domains[s])], column,
                                 ibis.null(column.type()))
        final[s.column] = column
    return wide.select(*grid.columns, **final)

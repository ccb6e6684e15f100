"""The one validation and conversion pipeline every reader feeds (CSV, OMOP, FHIR, MEDS).

A reader stages the rows of one canonical table as text columns named as in the CSV layout
(``docs/csv-layout.md``; e.g. measurement: person_id, stay_id, time, variable, value, unit) plus
``_line``: where the row came from (the line in a file, or the source table's primary key). Then
:func:`load_staged` (or the CSV reader's own staging) runs, inside DuckDB and set-based:

1. One SQL statement validates and converts every row, joining the vocabulary frames
   (``variables_frame``, ``units_frame``, ``drug_names_frame``, ``dose_units_frame``, registered as
   temporary tables). Each row gets at most one quarantine reason: the first that applies in the
   priority order of :data:`hyperinflam.sources.quarantine.REASONS`.
2. Rows repeated within the source are quarantined (``duplicate_row``: identical after conversion;
   ``conflicting_duplicate``: same key, other values). Rows whose key (``schema.py``) is already
   in the database count as ``already_present`` when identical, else they are quarantined as
   ``conflicts_with_existing``: a reload never duplicates and never silently overwrites.
   Measurements are also compared by person, variable and time after unit conversion
   (:func:`_same_time_values`): an equal value is ``duplicate_value``, different values are all
   kept and flagged ``conflicting``.
3. Valid rows are inserted into the canonical table; the source's earlier quarantine rows are
   replaced by this run's. A whole load (every table of every file) is written at its end in
   one transaction (:mod:`hyperinflam.sources.atomic`): a load that stops leaves the database
   as it was.

Units (clinical reference §11.1): ``canonical = value x factor + offset`` from ``units.csv``, computed
so that the result is the double nearest the exact value of the text as written (the integer
quotient of :mod:`hyperinflam.vocabulary.units`: FiO2 ``35`` % is 0.35, not 0.35000000000000003);
unit spellings are folded exactly as :func:`hyperinflam.vocabulary.normalize_unit`; a unit is never
guessed from the size of a value. Plausible ranges, extreme flags and the ambiguous FiO2 band are
those of ``variables.csv`` (clinical reference §11.2). Dose units map through ``dose_units.csv``.
Times: see :mod:`hyperinflam.sources.timeparse`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from hyperinflam.errors import SourceError, VocabularyError
from hyperinflam.schema import TABLES_BY_NAME
from hyperinflam.sources.atomic import (append_rows, cleanup, forget_rows, in_load_transaction,
                                        table_transaction)
from hyperinflam.sources.quarantine import TableLoadCounts
from hyperinflam.sources.timeparse import (TIME_EXAMPLES, check_time_zone, date_sql,
                                           site_time_zone, time_sql)
from hyperinflam.vocabulary import (EVENT_TYPES, UNIT_FOLDS, VASOACTIVE_CLASS,
                                   VASOACTIVE_DOSE_UNIT, VASOPRESSIN_DOSE_UNIT, Vocabulary)
from hyperinflam.vocabulary.units import EXACT_LIMIT

__all__ = ["LAYOUT", "LAYOUT_BY_TABLE", "TableLayout", "ingest", "load_staged", "open_load",
           "register_vocabulary", "with_site_codes"]

#: Tolerance of the plausible-range check, relative to the bound, so that a value exactly on a
#: bound after a conversion (113 degF = 45 Cel) is not rejected for a floating-point last digit.
RANGE_TOLERANCE = 1e-9
#: Spellings accepted for person.sex (case-insensitive) and the stored value.
SEX_VALUES: dict[str, str] = {"female": "female", "f": "female", "male": "male", "m": "male",
                              "unknown": "unknown"}
#: Spellings accepted for condition.is_underlying (case-insensitive).
TRUE_VALUES = ("true", "t", "yes", "y", "1")
FALSE_VALUES = ("false", "f", "no", "n", "0")

_WS = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"
_NUMBER_PATTERN = r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"


@dataclass(frozen=True)
class TableLayout:
    """One staged table: the canonical table it feeds and its text columns (= a CSV file)."""

    table: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def file_name(self) -> str:
        return f"{self.table}.csv"

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


#: The staging layout (= the CSV layout), in load order (persons, then stays, then the rest).
LAYOUT: tuple[TableLayout, ...] = (
    TableLayout("person", ("person_id", "birth_date", "sex")),
    TableLayout("stay", ("stay_id", "person_id", "admit_time"),
                ("discharge_time", "admission_reason", "weight_kg")),
    TableLayout("measurement", ("person_id", "time", "variable", "value", "unit"), ("stay_id",)),
    TableLayout("drug_administration", ("person_id", "drug", "start_time"),
                ("stay_id", "dose", "dose_unit", "route", "end_time", "weight_kg")),
    TableLayout("organ_support", ("person_id", "support", "start_time"),
                ("stay_id", "end_time", "dose", "dose_unit")),
    TableLayout("condition", ("person_id", "condition", "is_underlying"),
                ("stay_id", "code_system", "code", "onset_time")),
    TableLayout("event", ("person_id", "event_type", "time"), ("stay_id", "detail")),
)


# ---------------------------------------------------------------------------------------------
# small SQL builders
def _q(text: str) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def fold_unit_sql(expr: str) -> str:
    """SQL folding of a unit spelling, identical to :func:`hyperinflam.vocabulary.normalize_unit`."""
    sql = f"lower(trim({expr}, {_WS}))"
    for old, new in UNIT_FOLDS:
        sql = f"replace({sql}, {_q(old)}, {_q(new)})"
    return sql


def _num_sql(col: str) -> str:
    """A plain decimal number (no 'nan', 'inf', '1_000', '<5'), else NULL."""
    return (f"(CASE WHEN regexp_full_match(v_{col}, {_q(_NUMBER_PATTERN)}) "
            f"AND isfinite(TRY_CAST(v_{col} AS DOUBLE)) THEN TRY_CAST(v_{col} AS DOUBLE) END)")


def _exact_sql(col: str, a: str, b: str, c: str, factor: str, offset: str) -> str:
    """``value x factor + offset`` as the double nearest the exact result (vocabulary.units):
    the text value ``v_<col>`` = M / 10^E (E decimals) gives (M x a + b x 10^E) / (c x 10^E),
    integers exact as doubles below 2^53, so the one division rounds correctly. Outside that
    range (more than 15 significant digits, E > 22) or without an integer form: the doubles."""
    value, text = f"n_{col}", f"v_{col}"
    digits = f"length(regexp_extract({text}, '[.]([0-9]*)', 1))"
    exponent = f"coalesce(TRY_CAST(nullif(regexp_extract({text}, '[eE]([-+]?[0-9]+)', 1), '') AS INTEGER), 0)"
    e = f"greatest({digits} - {exponent}, 0)"
    scale = f"power(10.0, {e})"
    m = f"round({value} * {scale})"
    num, den = f"({m} * {a} + {b} * {scale})", f"({c} * {scale})"
    limit = float(EXACT_LIMIT)
    exact = (f"{a} IS NOT NULL AND {e} <= 22 AND abs({value} * {scale}) < {limit / 8!r} "
             f"AND abs({m} * {a}) < {limit!r} AND abs({b} * {scale}) < {limit!r} "
             f"AND abs({num}) < {limit!r} AND {den} < {limit!r}")
    return (f"CASE WHEN {a} = 1 AND {b} = 0 AND {c} = 1 THEN {value} "
            f"WHEN {exact} THEN {num} / {den} ELSE {value} * {factor} + {offset} END")


def _fmt(expr: str) -> str:
    return f"printf('%g', {expr})"


@dataclass
class _Plan:
    """The SQL pieces that validate and convert one table."""

    scalars: dict[str, str]  # name -> SQL over v_* columns (parsed times and numbers)
    joins: list[str]  # LEFT JOIN clauses over the scalar level (alias n)
    lookups: dict[str, str]  # name -> SQL over joined tables and scalars
    checks: list[tuple[str, str, str]]  # (reason, condition, detail) in priority order
    outputs: dict[str, str]  # canonical column -> SQL


def _missing_check(cols: tuple[str, ...]) -> tuple[str, str, str]:
    cond = " OR ".join(f"v_{c} IS NULL" for c in cols)
    names = ", ".join(f"CASE WHEN v_{c} IS NULL THEN {_q(c)} END" for c in cols)
    detail = (f"'empty required column(s): ' || concat_ws(', ', {names}) "
              f"|| '. Fill them in, or remove the row.'")
    return ("missing_required_value", cond, detail)


def _time_check(col: str, *, date_only: bool = False) -> tuple[str, str, str]:
    examples = TIME_EXAMPLES + (" or a date 2024-03-01" if date_only else "")
    return ("unparseable_time", f"v_{col} IS NOT NULL AND t_{col} IS NULL",
            f"'{col} ''' || v_{col} || ''' is not an ISO 8601 time; write it as {examples}.'")


def _number_check(col: str) -> tuple[str, str, str]:
    return ("unparseable_value", f"v_{col} IS NOT NULL AND n_{col} IS NULL",
            f"'{col} ''' || v_{col} || ''' is not a plain decimal number (use a point as decimal "
            f"separator; censored results such as <5 cannot be loaded as numbers).'")


def _person_checks() -> list[tuple[str, str, str]]:
    return [("unknown_person", "ref_person_id IS NULL",
             "'person_id ''' || v_person_id || ''' is not in the database; add the person to the "
             "source''s persons (person.csv, OMOP person, FHIR Patient; persons load first).'")]


def _stay_checks() -> list[tuple[str, str, str]]:
    return [
        ("unknown_stay", "v_stay_id IS NOT NULL AND ref_stay_id IS NULL",
         "'stay_id ''' || v_stay_id || ''' is not in the database; add the stay to the source''s "
         "PICU stays (stay.csv, OMOP visit_detail, FHIR Encounter), or leave stay_id empty.'"),
        ("stay_person_mismatch", "ref_stay_person_id <> v_person_id",
         "'stay ''' || v_stay_id || ''' belongs to person ''' || ref_stay_person_id || ''', not ''' "
         "|| v_person_id || '''; correct person_id or stay_id.'"),
    ]


_PERSON_JOIN = ("LEFT JOIN (SELECT DISTINCT person_id AS ref_person_id FROM person) rp "
                "ON rp.ref_person_id = n.v_person_id")
_STAY_JOIN = ("LEFT JOIN (SELECT stay_id AS ref_stay_id, min(person_id) AS ref_stay_person_id "
              "FROM stay GROUP BY stay_id) rs ON rs.ref_stay_id = n.v_stay_id")
_REF_LOOKUPS = {"ref_person_id": "rp.ref_person_id"}
_STAY_LOOKUPS = {"ref_stay_id": "rs.ref_stay_id", "ref_stay_person_id": "rs.ref_stay_person_id"}


def _end_check(start: str, end: str) -> tuple[str, str, str]:
    return ("end_before_start", f"t_{end} < t_{start}",
            f"'{end} ' || CAST(t_{end} AS VARCHAR) || ' (UTC) is before {start} ' "
            f"|| CAST(t_{start} AS VARCHAR) || ' (UTC); correct or empty {end}.'")


def _weight_check(col: str, vocab: Vocabulary) -> tuple[str, str, str]:
    w = vocab.variables["weight"]
    return ("implausible_value",
            f"n_{col} < {w.accept_min!r} OR n_{col} > {w.accept_max!r}",
            f"'{col} ' || v_{col} || ' kg is outside the plausible range {w.accept_min:g}-"
            f"{w.accept_max:g} kg (clinical reference §11.2); check the value (kg).'")


def _plan_person(vocab: Vocabulary, tz: str) -> _Plan:
    sexes = ", ".join(_q(s) for s in SEX_VALUES)
    sex_case = " ".join(f"WHEN {_q(k)} THEN {_q(v)}" for k, v in SEX_VALUES.items())
    return _Plan(
        scalars={"d_birth_date": date_sql("v_birth_date")},
        joins=[],
        lookups={},
        checks=[
            _missing_check(("person_id", "birth_date", "sex")),
            ("unparseable_date", "d_birth_date IS NULL",
             "'birth_date ''' || v_birth_date || ''' is not a date; write it as YYYY-MM-DD.'"),
            ("invalid_sex", f"lower(v_sex) NOT IN ({sexes})",
             "'sex ''' || v_sex || ''' is not female, male or unknown (F / M accepted).'"),
            ("implausible_value", "d_birth_date > current_date",
             "'birth_date ' || v_birth_date || ' is in the future; correct it.'"),
        ],
        outputs={"person_id": "v_person_id", "birth_date": "d_birth_date",
                 "sex": f"CASE lower(v_sex) {sex_case} END"},
    )


def _plan_stay(vocab: Vocabulary, tz: str) -> _Plan:
    return _Plan(
        scalars={"t_admit_time": time_sql("v_admit_time", tz),
                 "t_discharge_time": time_sql("v_discharge_time", tz),
                 "n_weight_kg": _num_sql("weight_kg")},
        joins=[_PERSON_JOIN],
        lookups=dict(_REF_LOOKUPS),
        checks=[
            _missing_check(("stay_id", "person_id", "admit_time")),
            _time_check("admit_time"), _time_check("discharge_time"),
            _number_check("weight_kg"),
            _weight_check("weight_kg", vocab),
            _end_check("admit_time", "discharge_time"),
            *_person_checks(),
        ],
        outputs={"stay_id": "v_stay_id", "person_id": "v_person_id", "admit_time": "t_admit_time",
                 "discharge_time": "t_discharge_time", "admission_reason": "v_admission_reason",
                 "weight_kg": "n_weight_kg"},
    )


def _plan_measurement(vocab: Vocabulary, tz: str) -> _Plan:
    known = ", ".join(sorted(vocab.variables))
    tol = RANGE_TOLERANCE
    canon = "canonical_value"
    return _Plan(
        scalars={"t_time": time_sql("v_time", tz), "n_value": _num_sql("value"),
                 "unit_key": fold_unit_sql("v_unit")},
        joins=[
            "LEFT JOIN variables_frame var ON var.variable = lower(n.v_variable)",
            "LEFT JOIN units_frame u ON u.variable = var.variable AND u.unit_key = n.unit_key",
            "LEFT JOIN _hi_unit_lists ul ON ul.variable = var.variable",
            _PERSON_JOIN, _STAY_JOIN,
        ],
        lookups={
            "var_name": "var.variable", "var_unit": "var.canonical_unit",
            "var_min": "var.accept_min", "var_max": "var.accept_max",
            "var_extreme_below": "var.extreme_below", "var_extreme_above": "var.extreme_above",
            "var_ambiguous_gt": "var.ambiguous_gt", "var_ambiguous_lt": "var.ambiguous_lt",
            "unit_status": "u.status", "unit_reference": "u.reference",
            "accepted_units": "ul.accepted",
            canon: f"CASE WHEN u.status = 'ok' THEN {_UNIT_SQL} END",
            **_REF_LOOKUPS, **_STAY_LOOKUPS,
        },
        checks=[
            _missing_check(("person_id", "time", "variable", "value")),
            _time_check("time"),
            _number_check("value"),
            ("unknown_variable", "var_name IS NULL",
             f"'variable ''' || v_variable || ''' is not in vocabulary/variables.csv; use one of: "
             f"{known}.'"),
            ("missing_unit", "v_unit IS NULL",
             "'no unit for ' || var_name || '; give the unit as recorded. Accepted (case and spaces "
             "ignored): ' || coalesce(accepted_units, '(none)') || '.'"),
            ("unknown_unit", "unit_status IS NULL",
             "'unit ''' || v_unit || ''' is not an accepted spelling for ' || var_name || ' (canonical "
             "' || var_unit || '). Accepted (case and spaces ignored): ' || coalesce(accepted_units, "
             "'(none)') || '. Or add the spelling with its factor to a site units file (--units).'"),
            ("unit_needs_configuration", "unit_status = 'needs_configuration'",
             "var_name || ' in ''' || v_unit || ''' is not converted (' || coalesce(unit_reference, "
             "'') || '). Add a row variable,unit,factor to a site units file (--units).'"),
            ("ambiguous_value",
             "var_ambiguous_gt IS NOT NULL AND n_value > var_ambiguous_gt AND n_value < var_ambiguous_lt",
             f"var_name || ' value ' || v_value || ' is ambiguous (fraction or percent?): values "
             f"strictly between ' || {_fmt('var_ambiguous_gt')} || ' and ' || {_fmt('var_ambiguous_lt')} "
             f"|| ' are not loaded. Send a fraction (0.21-1, unit 1) or a percent (21-100, unit %).'"),
            ("implausible_value",
             f"{canon} < var_min - {tol} * greatest(1, abs(var_min)) "
             f"OR {canon} > var_max + {tol} * greatest(1, abs(var_max))",
             f"var_name || ' ' || v_value || ' ' || v_unit || ' = ' || {_fmt(canon)} || ' ' || var_unit "
             f"|| ', outside the plausible range ' || {_fmt('var_min')} || '-' || {_fmt('var_max')} "
             f"|| ' ' || var_unit || ' (clinical reference §11.2); check the value and its unit.'"),
            *_person_checks(), *_stay_checks(),
        ],
        outputs={
            "person_id": "v_person_id", "stay_id": "v_stay_id", "time": "t_time",
            "variable": "var_name", "value": canon, "unit": "var_unit",
            "value_original": "v_value", "unit_original": "v_unit",
            "flag": f"CASE WHEN {canon} < var_extreme_below OR {canon} > var_extreme_above "
                    f"THEN 'extreme' END",
        },
    )


#: A measurement value in its variable's canonical unit, exactly (units.csv factor and offset).
_UNIT_SQL = _exact_sql("value", "u.exact_a", "u.exact_b", "u.exact_c", "u.factor", 'u."offset"')
#: A dose in its canonical dose unit, exactly (dose_units.csv factors have no offset).
_DOSE_SQL = _exact_sql("dose", "dose_a", "0", "dose_c", "dose_factor", "0")


def _drug_join(alias: str, where: str = "") -> str:
    return (f"LEFT JOIN (SELECT DISTINCT ON (name_key) name_key, drug, drug_class FROM "
            f"drug_names_frame {where} ORDER BY name_key, drug) {alias} "
            f"ON {alias}.name_key = lower(n.v_{'drug' if alias == 'dn' else 'support'})")


def _plan_drug(vocab: Vocabulary, tz: str) -> _Plan:
    drugs = ", ".join(sorted(vocab.drugs))
    dose_units = ", ".join(sorted(vocab.dose_units))
    return _Plan(
        scalars={"t_start_time": time_sql("v_start_time", tz), "t_end_time": time_sql("v_end_time", tz),
                 "n_dose": _num_sql("dose"), "n_weight_kg": _num_sql("weight_kg"),
                 "dose_unit_key": fold_unit_sql("v_dose_unit")},
        joins=[_drug_join("dn"),
               "LEFT JOIN dose_units_frame du ON du.unit_key = n.dose_unit_key",
               _PERSON_JOIN, _STAY_JOIN],
        lookups={"drug_name": "dn.drug", "drug_class": "dn.drug_class",
                 "dose_canonical_unit": "du.canonical_unit", "dose_factor": "du.factor",
                 "dose_a": "du.exact_a", "dose_c": "du.exact_c",
                 **_REF_LOOKUPS, **_STAY_LOOKUPS},
        checks=[
            _missing_check(("person_id", "drug", "start_time")),
            _time_check("start_time"), _time_check("end_time"),
            _number_check("dose"), _number_check("weight_kg"),
            ("unknown_drug", "drug_name IS NULL",
             f"'drug ''' || v_drug || ''' is not a name or alias in vocabulary/drugs.csv; known "
             f"drugs: {drugs}.'"),
            ("missing_unit", "n_dose IS NOT NULL AND v_dose_unit IS NULL",
             f"'dose ' || v_dose || ' has no dose_unit; give one of: {dose_units}.'"),
            ("unknown_dose_unit", "v_dose_unit IS NOT NULL AND dose_canonical_unit IS NULL",
             f"'dose_unit ''' || v_dose_unit || ''' is not in vocabulary/dose_units.csv; use one of: "
             f"{dose_units}.'"),
            ("implausible_value", "n_dose < 0",
             "'dose ' || v_dose || ' is negative; correct it.'"),
            _weight_check("weight_kg", vocab),
            _end_check("start_time", "end_time"),
            *_person_checks(), *_stay_checks(),
        ],
        outputs={
            "person_id": "v_person_id", "stay_id": "v_stay_id", "drug": "drug_name",
            "drug_class": "drug_class", "dose": _DOSE_SQL,
            "dose_unit": "dose_canonical_unit", "route": "lower(v_route)",
            "start_time": "t_start_time", "end_time": "t_end_time", "weight_kg": "n_weight_kg",
        },
    )


def _plan_organ_support(vocab: Vocabulary, tz: str) -> _Plan:
    vasoactives = vocab.drugs_in_class(VASOACTIVE_CLASS)
    supports = ", ".join(_q(s) for s in vocab.supports)
    ug_units = sorted(k for k, v in vocab.dose_units.items()
                      if v["canonical_unit"] == VASOACTIVE_DOSE_UNIT)
    u_units = sorted(k for k, v in vocab.dose_units.items()
                     if v["canonical_unit"] == VASOPRESSIN_DOSE_UNIT)
    return _Plan(
        scalars={"t_start_time": time_sql("v_start_time", tz), "t_end_time": time_sql("v_end_time", tz),
                 "n_dose": _num_sql("dose"), "dose_unit_key": fold_unit_sql("v_dose_unit")},
        joins=[_drug_join("vn", f"WHERE drug_class = {_q(VASOACTIVE_CLASS)}"),
               "LEFT JOIN dose_units_frame du ON du.unit_key = n.dose_unit_key",
               _PERSON_JOIN, _STAY_JOIN],
        lookups={
            "support_name": f"CASE WHEN lower(n.v_support) IN ({supports}) "
                            f"THEN lower(n.v_support) ELSE vn.drug END",
            "dose_canonical_unit": "du.canonical_unit", "dose_factor": "du.factor",
                 "dose_a": "du.exact_a", "dose_c": "du.exact_c",
            **_REF_LOOKUPS, **_STAY_LOOKUPS,
        },
        checks=[
            _missing_check(("person_id", "support", "start_time")),
            _time_check("start_time"), _time_check("end_time"),
            _number_check("dose"),
            ("unknown_support", "support_name IS NULL",
             f"'support ''' || v_support || ''' is neither an organ-support kind of "
             f"vocabulary/supports.csv ({', '.join(vocab.supports)}) nor a vasoactive drug "
             f"({', '.join(vasoactives)}; aliases in vocabulary/drugs.csv).'"),
            ("missing_unit", "n_dose IS NOT NULL AND v_dose_unit IS NULL",
             "'dose ' || v_dose || ' has no dose_unit; give ug/kg/min (vasopressin U/kg/min or "
             "mU/kg/min).'"),
            ("unknown_dose_unit",
             f"v_dose_unit IS NOT NULL AND (dose_canonical_unit IS NULL OR (support_name = 'vasopressin' "
             f"AND dose_canonical_unit <> {_q(VASOPRESSIN_DOSE_UNIT)}) OR (support_name NOT IN "
             f"('vasopressin', {supports}) AND dose_canonical_unit <> "
             f"{_q(VASOACTIVE_DOSE_UNIT)}))",
             f"'dose_unit ''' || v_dose_unit || ''' does not fit ' || support_name || '; use "
             f"{', '.join(ug_units)} (vasopressin: {', '.join(u_units)}).'"),
            ("implausible_value", "n_dose < 0",
             "'dose ' || v_dose || ' is negative; correct it.'"),
            _end_check("start_time", "end_time"),
            *_person_checks(), *_stay_checks(),
        ],
        outputs={
            "person_id": "v_person_id", "stay_id": "v_stay_id", "support": "support_name",
            "start_time": "t_start_time", "end_time": "t_end_time",
            "dose": _DOSE_SQL, "dose_unit": "dose_canonical_unit",
        },
    )


def _plan_condition(vocab: Vocabulary, tz: str) -> _Plan:
    true_ = ", ".join(_q(v) for v in TRUE_VALUES)
    false_ = ", ".join(_q(v) for v in FALSE_VALUES)
    return _Plan(
        scalars={"t_onset_time": time_sql("v_onset_time", tz, allow_date_only=True)},
        joins=[_PERSON_JOIN, _STAY_JOIN],
        lookups={**_REF_LOOKUPS, **_STAY_LOOKUPS},
        checks=[
            _missing_check(("person_id", "condition", "is_underlying")),
            _time_check("onset_time", date_only=True),
            ("invalid_boolean", f"lower(v_is_underlying) NOT IN ({true_}, {false_})",
             "'is_underlying ''' || v_is_underlying || ''' is not true or false.'"),
            *_person_checks(), *_stay_checks(),
        ],
        outputs={
            "person_id": "v_person_id", "stay_id": "v_stay_id", "condition": "v_condition",
            "code_system": "v_code_system", "code": "v_code", "onset_time": "t_onset_time",
            "is_underlying": f"lower(v_is_underlying) IN ({true_})",
        },
    )


def _plan_event(vocab: Vocabulary, tz: str) -> _Plan:
    types = ", ".join(_q(t) for t in EVENT_TYPES)
    return _Plan(
        scalars={"t_time": time_sql("v_time", tz)},
        joins=[_PERSON_JOIN, _STAY_JOIN],
        lookups={**_REF_LOOKUPS, **_STAY_LOOKUPS},
        checks=[
            _missing_check(("person_id", "event_type", "time")),
            _time_check("time"),
            ("invalid_event_type", f"lower(v_event_type) NOT IN ({types})",
             f"'event_type ''' || v_event_type || ''' is not one of {', '.join(EVENT_TYPES)}.'"),
            *_person_checks(), *_stay_checks(),
        ],
        outputs={"person_id": "v_person_id", "stay_id": "v_stay_id",
                 "event_type": "lower(v_event_type)", "time": "t_time", "detail": "v_detail"},
    )


_PLANS: dict[str, Callable[[Vocabulary, str], _Plan]] = {
    "person": _plan_person, "stay": _plan_stay, "measurement": _plan_measurement,
    "drug_administration": _plan_drug, "organ_support": _plan_organ_support,
    "condition": _plan_condition, "event": _plan_event,
}


# ---------------------------------------------------------------------------------------------
# vocabulary frames on the engine
def register_vocabulary(raw, vocab: Vocabulary) -> None:
    """Register the vocabulary frames as temporary tables (NaN -> NULL, so comparisons are safe)."""
    frames = {"variables_frame": vocab.variables_frame, "units_frame": vocab.units_frame,
              "drug_names_frame": vocab.drug_names_frame, "dose_units_frame": vocab.dose_units_frame}
    for name, frame in frames.items():
        cols = []
        for col in frame.columns:
            ident = f'"{col}"'
            if pd.api.types.is_float_dtype(frame[col]):
                cols.append(f"CASE WHEN isnan({ident}) THEN NULL ELSE {ident} END AS {ident}")
            else:
                cols.append(f"CAST({ident} AS VARCHAR) AS {ident}")
        raw.register("_hi_frame", frame)
        try:
            raw.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {', '.join(cols)} FROM _hi_frame")
        finally:
            raw.unregister("_hi_frame")
    raw.execute("""CREATE OR REPLACE TEMP TABLE _hi_unit_lists AS
        SELECT variable, string_agg(unit_key, ', ' ORDER BY unit_key) AS accepted
        FROM units_frame WHERE status = 'ok' GROUP BY variable""")



def _check_sql(spec: TableLayout, header: list[str], plan: _Plan) -> str:
    trimmed = []
    for col in spec.columns:
        src = f"f{header.index(col)}" if col in header else "CAST(NULL AS VARCHAR)"
        # trim() strips spaces; the rare tab or line break at either end is stripped too (slower).
        trimmed.append(f"nullif(CASE WHEN regexp_matches({src}, '^\\s|\\s$') THEN trim({src}, {_WS}) "
                       f"ELSE {src} END, '') AS v_{col}")
    scalars = "".join(f", {sql} AS {name}" for name, sql in plan.scalars.items())
    lookups = "".join(f", {sql} AS {name}" for name, sql in plan.lookups.items())
    reason = " ".join(f"WHEN {cond} THEN {_q(r)}" for r, cond, _ in plan.checks)
    detail = " ".join(f"WHEN {cond} THEN {d}" for _, cond, d in plan.checks)
    outputs = ", ".join(f"{sql} AS out_{name}" for name, sql in plan.outputs.items())
    raw_cols = ", ".join(f"f{i}" for i in range(len(header)))
    return f"""
        WITH v AS (SELECT s.*, {', '.join(trimmed)} FROM _hi_stg s),
        n AS (SELECT v.*{scalars} FROM v),
        p AS (SELECT n.*{lookups} FROM n {' '.join(plan.joins)})
        SELECT _line, {raw_cols}, CASE {reason} END AS _reason, CASE {detail} END AS _detail,
               {outputs}
        FROM p"""


def _duplicates_sql(table: str) -> str:
    """Line, rank and first line of valid rows whose key occurs more than once in the file."""
    spec = TABLES_BY_NAME[table]
    cols = spec.column_names
    key = list(spec.key) or cols
    all_part = ", ".join(f"out_{c}" for c in cols)
    key_part = ", ".join(f"out_{c}" for c in key)
    on = " AND ".join(f"d.out_{c} IS NOT DISTINCT FROM c.out_{c}" for c in key)
    return f"""
        WITH d AS (SELECT {key_part} FROM _hi_chk WHERE _reason IS NULL
                   GROUP BY ALL HAVING count(*) > 1),
        r AS (SELECT c.* FROM _hi_chk c SEMI JOIN d ON {on} WHERE c._reason IS NULL)
        SELECT _line,
            row_number() OVER (PARTITION BY {all_part} ORDER BY _line) AS _rn_row,
            min(_line) OVER (PARTITION BY {all_part}) AS _first_row,
            row_number() OVER (PARTITION BY {key_part} ORDER BY _line) AS _rn_key,
            min(_line) OVER (PARTITION BY {key_part}) AS _first_key
        FROM r"""


def _final_sql(table: str, target_empty: bool) -> str:
    spec = TABLES_BY_NAME[table]
    cols = spec.column_names
    key = list(spec.key) or cols
    if target_empty:
        existing, key_hit, row_hit = "", "false", "false"
    else:
        key_on = " AND ".join(f"ek.{c} IS NOT DISTINCT FROM c.out_{c}" for c in key)
        # a measurement's flag says what the rows around it hold ('conflicting': another value
        # at the same time), not what this row is: a reload compares the row without it
        same = [c for c in cols if not (table == "measurement" and c == "flag")]
        row_on = " AND ".join(f"er.{c} IS NOT DISTINCT FROM c.out_{c}" for c in same)
        # Only the rows of the target whose key arrives again are compared: a reload costs the
        # size of the new file, not of the whole table.
        incoming = " AND ".join(f"t.{c} IS NOT DISTINCT FROM i.out_{c}" for c in key)
        present = (f"(SELECT t.* FROM {table} t SEMI JOIN (SELECT DISTINCT "
                   f"{', '.join(f'out_{c}' for c in key)} FROM _hi_chk) i ON {incoming})")
        existing = (f" LEFT JOIN (SELECT DISTINCT {', '.join(key)}, true AS _hit FROM {present}) ek "
                    f"ON {key_on}"
                    f" LEFT JOIN (SELECT DISTINCT {', '.join(same)}, true AS _hit FROM {present}) er "
                    f"ON {row_on}")
        key_hit, row_hit = "coalesce(ek._hit, false)", "coalesce(er._hit, false)"
    return f"""
        WITH w AS (
            SELECT c.*, coalesce(d._rn_row, 1) AS _rn_row, d._first_row,
                   coalesce(d._rn_key, 1) AS _rn_key, d._first_key,
                   {key_hit} AS _key_hit, {row_hit} AS _row_hit
            FROM _hi_chk c LEFT JOIN _hi_dups d ON d._line = c._line{existing})
        SELECT w.*,
            CASE WHEN _reason IS NOT NULL THEN _reason
                 WHEN _rn_row > 1 THEN 'duplicate_row'
                 WHEN _rn_key > 1 THEN 'conflicting_duplicate'
                 WHEN _key_hit AND NOT _row_hit THEN 'conflicts_with_existing' END AS _final_reason,
            CASE WHEN _reason IS NOT NULL THEN _detail
                 WHEN _rn_row > 1 THEN 'identical to line ' || _first_row || '; remove the repeat.'
                 WHEN _rn_key > 1 THEN 'line ' || _first_key || ' has the same {", ".join(key)} '
                      || 'with other values; keep one of the two.'
                 WHEN _key_hit AND NOT _row_hit THEN 'the database already holds a row with the same '
                      || '{", ".join(key)} and other values; correct the file, or remove the old row '
                      || 'from {table} before reloading.' END AS _final_detail
        FROM w"""



LAYOUT_BY_TABLE: dict[str, TableLayout] = {spec.table: spec for spec in LAYOUT}


def ingest(raw, spec: TableLayout, header: list[str], source: str, location: str,
           vocab: Vocabulary, tz: str, stage: Callable[[], int]) -> TableLoadCounts:
    """Validate, convert and insert one staged table; returns its reconciliation counts.

    ``stage()`` creates the temporary table ``_hi_stg`` (``_line`` and text columns f0..fn in the
    order of ``header``, names from the layout) and ``_hi_rejects`` (``_line``, ``csv_line``,
    ``message``: rows that could not even be split into columns), and returns the number of
    rejected rows. ``source`` is stored in ``quarantine.source_file`` (a path, or e.g.
    ``omop:measurement``); ``location`` prefixes the examples in the report (a file name).
    The vocabulary must have been registered with :func:`register_vocabulary`.
    """
    table = spec.table
    counts = TableLoadCounts(table=table, source=source)
    plan = _PLANS[table](vocab, tz)
    # The staged and checked rows live in temporary tables outside any transaction, so DuckDB can
    # spill them to disk; only the writes are one transaction (sources/atomic.py). The order of
    # rows inside the temporary tables does not matter (every row carries its _line).
    try:
        n_rejected = stage()  # line numbers are taken in file order here
        raw.execute("SET preserve_insertion_order = false")
        with site_time_zone(raw, tz):
            raw.execute(f"CREATE OR REPLACE TEMP TABLE _hi_chk AS {_check_sql(spec, header, plan)}")
        raw.execute("DROP TABLE _hi_stg")
        target_empty = raw.execute(f"SELECT count(*) = 0 FROM {table}").fetchone()[0]
        raw.execute(f"CREATE OR REPLACE TEMP TABLE _hi_dups AS {_duplicates_sql(table)}")
        raw.execute(f"CREATE OR REPLACE TEMP TABLE _hi_fin AS {_final_sql(table, target_empty)}")
        raw.execute("DROP TABLE _hi_chk")
        if table == "measurement":
            _same_time_values(raw, target_empty)

        status = ("CASE WHEN _final_reason IS NOT NULL THEN 'quarantined' "
                  "WHEN _key_hit THEN 'already_present' ELSE 'loaded' END")
        rows = raw.execute(f"""SELECT {status} AS status, _final_reason, count(*), min(_line)
            FROM _hi_fin GROUP BY ALL""").fetchall()
        for state, reason, n, line in rows:
            counts.read += n
            if state == "loaded":
                counts.loaded += n
            elif state == "already_present":
                counts.already_present += n
            else:
                counts.quarantined += n
                counts.reasons[reason] = counts.reasons.get(reason, 0) + n
                counts.examples[reason] = f"{location}:{line}"
        if n_rejected:
            line = raw.execute("SELECT min(_line) FROM _hi_rejects").fetchone()[0]
            counts.read += n_rejected
            counts.quarantined += n_rejected
            counts.reasons["malformed_line"] = n_rejected
            counts.examples["malformed_line"] = f"{location}:{line}"

        cols = TABLES_BY_NAME[table].column_names
        if in_load_transaction(raw):  # written with the rest of the load (sources/atomic.py)
            _write(raw, table, source, header, cols)
        else:
            with table_transaction(raw):
                _write(raw, table, source, header, cols)
    finally:
        cleanup(raw, ["SET preserve_insertion_order = true"] + [
            f"DROP TABLE IF EXISTS {t}" for t in ("_hi_stg", "_hi_chk", "_hi_dups", "_hi_fin",
                                                  "_hi_vals",
                                                  "_hi_rejects", "_hi_reject_errors",
                                                  "_hi_reject_scans")])
    return counts


#: The flag of a measurement whose person, time and variable hold another value (item 11).
CONFLICTING_FLAG = "conflicting"


def _same_time_values(raw, target_empty: bool) -> None:
    """Values of one variable for the same person and time, compared after unit conversion
    (docs/csv-layout.md, "Two values at the same time"): a value equal to one already loaded
    (earlier in the source, or in the database) is quarantined as ``duplicate_value``; two or
    more different values are all kept and flagged ``conflicting`` (the new rows: rows already
    in the database are not rewritten). Which one scores follows each score's window rule (the
    worst value in the window, §12.10; the last value at a time: the higher one).

    Plain SELECTs only (no UPDATE, no list functions): the Spark load
    (:mod:`hyperinflam.sources.omop.spark_sql`) runs these very statements. ``_hi_fin`` is
    rebuilt with its three decided columns (``_final_reason``, ``_final_detail``, ``out_flag``)."""
    if target_empty:
        existing, join, db = "", "", "false AS same_db, false AS other_db"
    else:
        existing = """,
        e AS (SELECT m.person_id AS p, m.time AS t, m.variable AS var, m.value AS ev
              FROM measurement m SEMI JOIN (SELECT DISTINCT p, t, var FROM v) k
                ON m.person_id = k.p AND m.time = k.t AND m.variable = k.var),
        h AS (SELECT v._line AS _line,
                     max(CASE WHEN e.ev = v.val THEN 1 ELSE 0 END) = 1 AS same_db,
                     max(CASE WHEN e.ev <> v.val THEN 1 ELSE 0 END) = 1 AS other_db
              FROM v JOIN e ON e.p = v.p AND e.t = v.t AND e.var = v.var
              GROUP BY v._line)"""
        join = " LEFT JOIN h ON h._line = w._line"
        db = "coalesce(h.same_db, false) AS same_db, coalesce(h.other_db, false) AS other_db"
    raw.execute(f"""CREATE OR REPLACE TEMP TABLE _hi_vals AS
        WITH v AS (SELECT _line, out_person_id AS p, out_time AS t, out_variable AS var,
                          out_value AS val, out_unit AS unit
                   FROM _hi_fin WHERE _final_reason IS NULL AND NOT _key_hit){existing},
        w AS (SELECT _line, val, unit,
                     row_number() OVER (PARTITION BY p, t, var, val ORDER BY _line) AS rn_val,
                     min(_line) OVER (PARTITION BY p, t, var, val) AS first_val,
                     min(val) OVER (PARTITION BY p, t, var) <> max(val) OVER (PARTITION BY p, t, var)
                         AS differs
              FROM v)
        SELECT w.*, {db} FROM w{join}""")
    duplicate = "coalesce(d.rn_val > 1 OR d.same_db, false)"
    conflicting = f"(NOT {duplicate} AND coalesce(d.differs OR d.other_db, false))"
    decided = {
        "_final_reason": f"CASE WHEN {duplicate} THEN 'duplicate_value' ELSE f._final_reason END",
        "_final_detail": f"""CASE WHEN {duplicate} THEN
            CASE WHEN d.rn_val > 1 THEN 'line ' || d.first_val || ' has the same value'
                 ELSE 'the database already holds the same value' END
            || ' (' || CAST(TRY_CAST(d.val AS DOUBLE) AS VARCHAR) || ' ' || d.unit
            || ' after unit conversion) for this person, variable and time; only one is kept. '
            || 'Nothing to fix unless the two were meant to differ.'
            ELSE f._final_detail END""",
        "out_flag": f"""CASE WHEN {conflicting} THEN
            CASE WHEN f.out_flag IS NULL THEN '{CONFLICTING_FLAG}'
                 ELSE f.out_flag || ',{CONFLICTING_FLAG}' END
            ELSE f.out_flag END""",
    }
    columns = [c[0] for c in raw.execute("SELECT * FROM _hi_fin LIMIT 0").description]
    select = ", ".join(f"{decided[c]} AS {c}" if c in decided else f"f.{c}" for c in columns)
    raw.execute(f"""CREATE OR REPLACE TEMP TABLE _hi_fin AS
        SELECT {select} FROM _hi_fin f LEFT JOIN _hi_vals d ON d._line = f._line""")
    raw.execute("DROP TABLE _hi_vals")


def _write(raw, table: str, source: str, header: list[str], cols: list[str]) -> None:
    """Insert the valid rows and replace the source's quarantine rows (inside a transaction, or
    the load's pending rows: :mod:`hyperinflam.sources.atomic`)."""
    append_rows(raw, table, cols, f"""
        SELECT {', '.join(f'out_{c}' for c in cols)} FROM _hi_fin
        WHERE _final_reason IS NULL AND NOT _key_hit ORDER BY _line""")
    raw_json = "json_object(" + ", ".join(f"{_q(h)}, f{i}" for i, h in enumerate(header)) + ")"
    forget_rows(raw, "quarantine", "target_table = ? AND source_file = ?", [table, source])
    raw.execute(f"""INSERT INTO quarantine
        SELECT {_q(table)}, {_q(source)}, _line, _final_reason, _final_detail, {raw_json}
        FROM _hi_fin WHERE _final_reason IS NOT NULL
        UNION ALL
        SELECT {_q(table)}, {_q(source)}, _line, 'malformed_line',
               message || ' Fix the quoting or the number of commas on this line.',
               json_object('line', csv_line)
        FROM _hi_rejects
        ORDER BY 3""")


def open_load(con, vocabulary: Vocabulary | None, tz: str):
    """The raw DuckDB connection and the vocabulary a reader loads with; an unknown site time
    zone is a :class:`SourceError` (one clear message)."""
    return con.con, load_settings(vocabulary, tz, con.con)


def load_settings(vocabulary: Vocabulary | None, tz: str, raw=None) -> Vocabulary:
    """The vocabulary of a load (the packaged one unless given) after checking the site time
    zone with DuckDB's time-zone database (``raw``, else a short-lived in-memory connection);
    an unknown zone is a :class:`SourceError`. Shared by every reader and every engine."""
    import duckdb

    checker = raw if raw is not None else duckdb.connect()
    try:
        check_time_zone(checker, tz)
    except ValueError as exc:
        raise SourceError(str(exc)) from None
    finally:
        if raw is None:
            checker.close()
    return vocabulary if vocabulary is not None else Vocabulary()


def with_site_codes(vocabulary: Vocabulary, codes) -> Vocabulary:
    """The vocabulary plus a reader's site codes file(s) (``--codes``; layout of
    vocabulary/codes.csv or a former per-reader layout); a bad file is a :class:`SourceError`
    naming the file, line and fix."""
    try:
        return vocabulary.with_codes(codes)
    except VocabularyError as exc:
        raise SourceError(str(exc)) from None


def stage_select(raw, select_sql: str, header: list[str]) -> int:
    """Stage rows for :func:`ingest` from a DuckDB query returning ``_line`` and the layout
    columns named in ``header`` (any type; cast to text). Returns 0 (nothing rejected)."""
    cols = ", ".join(f"CAST({_ident(h)} AS VARCHAR) AS f{i}" for i, h in enumerate(header))
    raw.execute(f"CREATE OR REPLACE TEMP TABLE _hi_stg AS SELECT CAST(_line AS BIGINT) AS _line, "
                f"{cols} FROM ({select_sql}) ORDER BY _line")
    raw.execute("CREATE OR REPLACE TEMP TABLE _hi_rejects "
                "(_line BIGINT, csv_line BIGINT, message VARCHAR)")
    return 0


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def load_staged(con, table: str, select_sql: str, *, source: str, location: str | None = None,
                vocabulary: Vocabulary | None = None, tz: str = "UTC") -> TableLoadCounts:
    """Load one canonical table from a DuckDB query (OMOP, FHIR and MEDS readers use this).

    ``select_sql`` returns ``_line`` (where each row came from: a line number or a source primary
    key) and text columns named as in the layout of ``table`` (``LAYOUT_BY_TABLE[table]``; the
    optional ones may be left out). Every row is loaded, counted as already present, or
    quarantined with a reason (``quarantine.source_file = source``, ``source_line = _line``).
    """
    spec = LAYOUT_BY_TABLE[table]
    vocab = vocabulary if vocabulary is not None else Vocabulary()
    raw = con.con
    header = [c for c in spec.columns if c in _query_columns(raw, select_sql)]
    missing = [c for c in spec.required if c not in header]
    if missing:
        raise SourceError(f"{source}: the staged {table} rows lack column(s) {', '.join(missing)}.")
    register_vocabulary(raw, vocab)
    return ingest(raw, spec, header, source, location or source, vocab, tz,
                  lambda: stage_select(raw, select_sql, header))


def _query_columns(raw, select_sql: str) -> list[str]:
    return [d[0] for d in raw.execute(f"SELECT * FROM ({select_sql}) LIMIT 0").description]

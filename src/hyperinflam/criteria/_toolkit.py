"""The small toolkit every criterion shares: tri-state results, counts with unknown inputs, the
missing-input list, age bands and values in the units the criterion's authors used.

Clinical reference §0 ("Tri-state results"), §1.4 (count rules with unknown inputs), §12.9 (missing
inputs), §12.11 (native-unit evaluation with rounding) and §12.12 (inclusive / exclusive edges).

Conventions (all ibis expressions, backend-neutral):

* A *condition* is a nullable BOOLEAN expression: TRUE = criterion satisfied, FALSE = measured and
  not satisfied, NULL = not measured. SQL three-valued (Kleene) ``AND`` / ``OR`` then give exactly
  the reference's rules: "A and B" is FALSE as soon as one part is FALSE, "A or B" is TRUE as soon
  as one part is TRUE, otherwise NULL (unknown). Both DuckDB and Spark implement Kleene logic.
* :func:`tristate` turns a condition into the text result :data:`MET` / :data:`NOT_MET` /
  :data:`UNKNOWN`; count rules say :data:`INDETERMINATE` instead of unknown (:func:`count_result`).
* Canonical values (the units of vocabulary/variables.csv) are compared as they are: the loaders
  convert exactly (vocabulary.units), so a value recorded at its instrument's resolution is the
  double nearest its exact value and a threshold comparison needs no rounding. A criterion whose
  authors used another unit compares there (:func:`native`, factor from vocabulary/units.csv),
  rounded to that unit's reporting precision when the reference says so (§12.11).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
from ibis.expr.types import BooleanValue, IntegerValue, NumericValue, StringValue

from hyperinflam import vocabulary
from hyperinflam.vocabulary.domain import ROOM_AIR_FIO2  # noqa: F401  (criteria import it here)

MET = "met"
NOT_MET = "not_met"
UNKNOWN = "unknown"
INDETERMINATE = "indeterminate"

#: Decimal places a value converted to a native unit is snapped to before it is rounded to the
#: native reporting precision (§12.11). A conversion by a factor (g/dL x 10 -> g/L) is one double
#: multiplication, exact to ~1e-16 relative; a native value exactly on a rounding edge (8.95 g/dL
#: = 89.5 g/L, which HLH-2004 rounds to 90) can land 1 ulp below it and round the wrong way. No
#: laboratory reports more than 6 decimals in these units, so snapping to 6 removes the error
#: without touching a reported digit.
NATIVE_SNAP_DIGITS = 6


# -- tri-state --------------------------------------------------------------------------------
def tristate(condition: BooleanValue, unknown: str = UNKNOWN) -> StringValue:
    """'met' when TRUE, 'not_met' when FALSE, ``unknown`` ('unknown') when NULL (§0, §12.9). A
    simple CASE: the condition occurs once in the compiled query."""
    return condition.cases((True, MET), (False, NOT_MET), else_=unknown)


def tri_state(met: BooleanValue, not_met: BooleanValue) -> StringValue:
    """'met' where ``met``, else 'not_met' where ``not_met``, else 'unknown' (never NULL): for
    rules whose two outcomes are not complements (Phoenix sepsis with an unrecorded infection)."""
    return ibis.cases((met, MET), (not_met, NOT_MET), else_=UNKNOWN)


def count_result(condition: BooleanValue) -> StringValue:
    """Result of a count-based rule: 'met' / 'not_met' / 'indeterminate' (§1.4)."""
    return tristate(condition, INDETERMINATE)


def count_true(conditions: Sequence[BooleanValue]) -> IntegerValue:
    """Number of conditions that are TRUE (NULL counts as not TRUE)."""
    total = ibis.literal(0, type="int64")
    for cond in conditions:
        total = total + cond.fill_null(False).cast("int64")
    return total


def count_null(conditions: Sequence[ibis.Value]) -> IntegerValue:
    """Number of values that are NULL (unknown)."""
    total = ibis.literal(0, type="int64")
    for cond in conditions:
        total = total + cond.isnull().cast("int64")
    return total


def at_least(conditions: Sequence[BooleanValue], required: int) -> BooleanValue:
    """Nullable "at least ``required`` of ``conditions``" (§1.4).

    TRUE when ``met >= required``; FALSE when ``met + unknown < required`` (cannot be reached even
    if every unknown input were abnormal); NULL otherwise. Each condition appears twice in the
    compiled query (once per count), which keeps nested rules small.
    """
    met = ibis.literal(0, type="int64")
    possible = ibis.literal(0, type="int64")
    for cond in conditions:
        met = met + cond.fill_null(False).cast("int64")
        possible = possible + cond.fill_null(True).cast("int64")
    level = (met >= required).cast("int64") + (possible >= required).cast("int64")
    return level.cases((2, True), (0, False), else_=ibis.null("boolean"))


def typed(value: ibis.Value, dtype: str) -> ibis.Value:
    """``value`` with an explicit CAST to ``dtype`` in the compiled SQL, even when ibis already
    types it so. A CASE over integer literals is INTEGER and an array of decimal literals DECIMAL
    to both engines (ibis writes the literals bare), so an output declared int64 / float64 would
    be int32 / decimal in a result file; ``Value.cast`` to the same type is dropped by ibis."""
    return ops.Cast(value, to=dt.dtype(dtype)).to_expr()


def as_int(condition: BooleanValue) -> IntegerValue:
    """1 where ``condition`` is TRUE, else 0 (inputs already NULL-filled)."""
    return condition.cast("int64")


# -- missing inputs ---------------------------------------------------------------------------
def missing_flags(flags: Mapping[str, BooleanValue] | Sequence[tuple[str, BooleanValue]]
                  ) -> tuple[StringValue, IntegerValue]:
    """(comma-separated names whose flag is TRUE, '' when none; their number): the criterion
    contract's ``<name>_missing`` and ``<name>_n_...`` columns."""
    items = list(flags.items()) if isinstance(flags, Mapping) else list(flags)
    text = ibis.literal("", type="string")
    count = ibis.literal(0, type="int64")
    for name, flag in items:
        text = text + flag.ifelse(ibis.literal(name + ","), ibis.literal(""))
        count = count + flag.cast("int64")
    return text.re_replace(",$", ""), count


def missing_inputs(inputs: Mapping[str, ibis.Value] | Sequence[tuple[str, ibis.Value]]
                   ) -> tuple[StringValue, IntegerValue]:
    """:func:`missing_flags` of the inputs that are NULL."""
    items = list(inputs.items()) if isinstance(inputs, Mapping) else list(inputs)
    return missing_flags([(name, value.isnull()) for name, value in items])


def missing_list(inputs: Mapping[str, ibis.Value]) -> StringValue:
    """Comma-separated names of the inputs that are NULL, '' when none."""
    return missing_inputs(inputs)[0]


# -- age bands --------------------------------------------------------------------------------
def in_age_band(age: NumericValue, low: float, high: float | None, *, high_inclusive: bool = False,
                low_inclusive: bool = True) -> BooleanValue:
    """``low <= age < high`` (edges as asked; ``high`` None: no upper edge). NULL age -> NULL."""
    lower = (age >= low) if low_inclusive else (age > low)
    if high is None:
        return lower
    return lower & ((age <= high) if high_inclusive else (age < high))


# -- values in the units the authors used -----------------------------------------------------
def native_factor(variable: str, unit: str) -> Fraction:
    """The exact factor of ``unit`` to the canonical unit of ``variable`` (vocabulary/units.csv)."""
    return vocabulary.default().factor(variable, unit)


def native(value: NumericValue, variable: str, unit: str | None = None,
           digits: int | None = None) -> NumericValue:
    """A canonical value of ``variable`` in ``unit`` (None: the canonical unit), rounded to
    ``digits`` decimals when given (the native reporting precision, §12.11).

    With factor p/q (canonical = native x p/q) the native value is ``value x q / p``: one
    multiplication by an integer and one division by an integer, both exact doubles.
    """
    converted = value
    if unit is not None:
        factor = native_factor(variable, unit)
        if factor.denominator != 1:
            converted = converted * float(factor.denominator)
        if factor.numerator != 1:
            converted = converted / float(factor.numerator)
    if digits is None:
        return converted
    snapped = converted.round(NATIVE_SNAP_DIGITS) if unit is not None else converted
    return snapped.round(digits)

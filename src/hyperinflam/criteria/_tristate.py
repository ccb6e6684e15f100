"""Tri-state logic and native-unit helpers shared by the hyperinflammation criteria.

Clinical reference §0 ("Tri-state results"), §1.4 (count rules with unknown inputs) and §12.9,
§12.11, §12.12 (missing inputs, native-unit evaluation with rounding, inclusive/exclusive edges).

Conventions (all ibis expressions, backend-neutral):

* A *condition* is a nullable BOOLEAN expression: TRUE = criterion satisfied, FALSE = measured and
  not satisfied, NULL = not measured. SQL three-valued (Kleene) ``AND`` / ``OR`` then give exactly
  the reference's rules: "A and B" is FALSE as soon as one part is FALSE, "A or B" is TRUE as soon
  as one part is TRUE, otherwise NULL (unknown). Both DuckDB and Spark implement Kleene logic.
* :func:`tristate` turns a condition into the text result 'met' / 'not_met' / 'unknown'.
* Boundary decisions are taken in each criterion's native unit (§12.11): a canonical value is
  converted and rounded to the native reporting precision before it is compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ibis
from ibis.expr.types import BooleanValue, IntegerValue, NumericValue, StringValue

MET = "met"
NOT_MET = "not_met"
UNKNOWN = "unknown"
INDETERMINATE = "indeterminate"

#: Decimal places kept when a canonical value is compared in a native unit that has no reporting
#: precision in §12.11. It removes binary floating-point noise from unit conversion
#: (110000 /uL x 1/1000 = 110.00000000000001, which would otherwise fail "<= 110") without
#: changing any clinically reported digit.
NOISE_GUARD_DIGITS = 6


def native(value: NumericValue, divide_by: float = 1.0,
           digits: int = NOISE_GUARD_DIGITS) -> NumericValue:
    """Canonical value -> native unit, rounded to the native reporting precision (§12.11).

    ``divide_by`` is the §11.1 factor from the native unit to the canonical unit (for example
    88.57 for triglycerides mmol/L -> mg/dL, 100 for fibrinogen g/L -> mg/dL); ``digits`` the
    reporting precision of the native unit (TG mmol/L 2, fibrinogen g/L 2, Hb g/L 0).
    """
    converted = value if divide_by == 1.0 else value / divide_by
    # Remove floating-point noise first (8.95 g/dL x 10 = 89.49999999999999 g/L must round as
    # 89.5), then round to the reporting precision.
    cleaned = converted.round(NOISE_GUARD_DIGITS)
    return cleaned if digits >= NOISE_GUARD_DIGITS else cleaned.round(digits)


def tristate(condition: BooleanValue) -> StringValue:
    """'met' when TRUE, 'not_met' when FALSE, 'unknown' when NULL (§0, §12.9)."""
    return ibis.cases((condition, MET), (~condition, NOT_MET), else_=UNKNOWN)


def count_true(conditions: Sequence[BooleanValue]) -> IntegerValue:
    """Number of conditions that are TRUE (NULL counts as not TRUE)."""
    total = ibis.literal(0, type="int64")
    for cond in conditions:
        total = total + cond.fill_null(False).cast("int64")
    return total


def count_null(conditions: Sequence[BooleanValue]) -> IntegerValue:
    """Number of conditions that are NULL (unknown)."""
    total = ibis.literal(0, type="int64")
    for cond in conditions:
        total = total + cond.isnull().cast("int64")
    return total


def at_least(conditions: Sequence[BooleanValue], required: int) -> BooleanValue:
    """Nullable "at least ``required`` of ``conditions``" (§1.4).

    TRUE when ``met >= required``; FALSE when ``met + unknown < required`` (cannot be reached even
    if every unknown input were abnormal); NULL otherwise.
    """
    met = count_true(conditions)
    possible = met + count_null(conditions)
    return ibis.cases((met >= required, True), (possible < required, False),
                      else_=ibis.null("boolean"))


def count_result(condition: BooleanValue) -> StringValue:
    """Result of a count-based rule: 'met' / 'not_met' / 'indeterminate' (§1.4)."""
    return ibis.cases((condition, MET), (~condition, NOT_MET), else_=INDETERMINATE)


def missing_list(inputs: Mapping[str, ibis.Value]) -> StringValue:
    """Comma-separated names of the inputs that are NULL, '' when none (criterion contract)."""
    text = ibis.literal("")
    for name, value in inputs.items():
        text = text + value.isnull().ifelse("," + name, "")
    return text.substr(1)

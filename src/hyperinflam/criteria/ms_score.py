"""MS score (MAS/sJIA score) for MAS in systemic JIA (clinical reference §3.2).

Primary publication: Minoia F, Bovis F, Davì S, et al. *Development and initial validation of the
MS score for diagnosis of macrophage activation syndrome in systemic juvenile idiopathic
arthritis.* Ann Rheum Dis 2019;78(10):1357-1362. doi:10.1136/annrheumdis-2019-215211.

    MS = 2.44·CNS + 1.54·HAEM − 1.30·ARTHRITIS − 0.003·PLT + 0.001·LDH − 0.004·FIB
         + 0.0001·FERRITIN

PLT × 10⁹/L, LDH U/L, FIB mg/dL, ferritin ng/mL (ARD Table 4). In a febrile patient with known or
suspected sJIA, MAS should be considered if MS >= −2.1.

Missing values (§3.2; no published rule, VERIFY): all seven inputs are required; any missing
-> ``ms_score_value`` NULL and ``ms_score_ge_cutoff`` 'unknown'. When only binary inputs are
missing, ``ms_score_min_possible`` / ``ms_score_max_possible`` give the range over 0/1 for them.
Binary findings are conditions: TRUE documented, FALSE documented absent (negating concept),
NULL unknown. Worst labs over 72 h (§12.10): lowest platelets and fibrinogen, highest LDH and
ferritin.
"""

from __future__ import annotations

import ibis

from hyperinflam.criteria._toolkit import MET, NOT_MET, UNKNOWN, count_null, missing_list
from hyperinflam.features import FeatureSpec

NAME = "ms_score"
TITLE = "MS score for MAS in systemic JIA (Minoia 2019)"
#: Short name of the criterion (of its RESULT where it has one) for tables and the census.
LABEL = "MS score"
#: The column holding this criterion's overall tri-state result (met / not_met / unknown or
#: indeterminate); the screen's "meets any criterion" reads it.
RESULT = "ms_score_ge_cutoff"
#: Criterion group (screening.meets): the hyperinflammatory phenotype.
GROUP = "phenotype"
#: No validated age range is declared: the phenotype criteria are evaluated at every age (their
#: populations are in the clinical reference; HScore is an adult derivation, §2.1).
VALIDATED_AGE_MONTHS = None
REFERENCE = ("clinical reference §3.2; Minoia F et al. Ann Rheum Dis 2019;78(10):1357-1362, "
             "doi:10.1136/annrheumdis-2019-215211")

# -- named settings -------------------------------------------------------------------------
LAB_LOOKBACK_HOURS: float | None = 72
CLINICAL_LOOKBACK_HOURS: float | None = None
#: Coefficients of ARD Table 4 (§3.2) by input.
COEFFICIENTS = {
    "cns_involvement": 2.44,
    "hemorrhagic_manifestations": 1.54,
    "active_arthritis": -1.30,
    "platelets": -0.003,      # x 10⁹/L
    "ldh": 0.001,             # U/L
    "fibrinogen": -0.004,     # mg/dL
    "ferritin": 0.0001,       # ng/mL
}
#: "MAS should be considered" at MS >= -2.1 (§3.2).
CUTOFF = -2.1
#: Decimal places the score is rounded to before the cutoff: the coefficients have at most 4
#: decimals and the inputs at most 2 at their reporting precision, so an exact score has at most 6;
#: the rounding removes the double arithmetic's last bits (a score of exactly -2.1 meets the cutoff).
SCORE_DIGITS = 6

# -- inputs ---------------------------------------------------------------------------------
CNS = FeatureSpec("cns_involvement", "any", CLINICAL_LOOKBACK_HOURS, "condition")
HEMORRHAGE = FeatureSpec("hemorrhagic_manifestations", "any", CLINICAL_LOOKBACK_HOURS,
                         "condition")
ARTHRITIS = FeatureSpec("active_arthritis", "any", CLINICAL_LOOKBACK_HOURS, "condition")
PLATELETS = FeatureSpec("platelets", "min", LAB_LOOKBACK_HOURS)
LDH = FeatureSpec("ldh", "max", LAB_LOOKBACK_HOURS)
FIBRINOGEN = FeatureSpec("fibrinogen", "min", LAB_LOOKBACK_HOURS)
FERRITIN = FeatureSpec("ferritin", "max", LAB_LOOKBACK_HOURS)

BINARY_INPUTS = [CNS, HEMORRHAGE, ARTHRITIS]
CONTINUOUS_INPUTS = [PLATELETS, LDH, FIBRINOGEN, FERRITIN]
INPUTS: list[FeatureSpec] = BINARY_INPUTS + CONTINUOUS_INPUTS


def _terms(t: ibis.Table, fill_binary: str | None = None) -> ibis.Value:
    """Weighted sum; ``fill_binary`` 'low'/'high' fills a missing binary with the value (0 or 1)
    that minimises / maximises its term."""
    total = ibis.literal(0.0, type="float64")
    for spec in INPUTS:
        weight = COEFFICIENTS[spec.variable]
        value = t[spec.column]
        if spec in BINARY_INPUTS:
            value = value.cast("float64")
            if fill_binary is not None:
                raises = (weight > 0) == (fill_binary == "high")
                value = value.fill_null(1.0 if raises else 0.0)
        total = total + weight * value
    return total


def evaluate(t: ibis.Table) -> dict[str, ibis.Value]:
    """MS score outputs, every column prefixed ``ms_score_`` (§3.2).

    * ``ms_score_value``: the score (NULL when any input is missing);
    * ``ms_score_min_possible`` / ``ms_score_max_possible``: range over 0/1 for missing binary
      inputs (NULL when a laboratory input is missing);
    * ``ms_score_ge_cutoff``: MS >= −2.1, 'met' / 'not_met' / 'unknown';
    * ``ms_score_missing``, ``ms_score_n_missing``.
    """
    value = _terms(t).round(SCORE_DIGITS)
    low, high = _terms(t, "low"), _terms(t, "high")
    out = {
        f"{NAME}_value": value,
        f"{NAME}_min_possible": low,
        f"{NAME}_max_possible": high,
        f"{NAME}_ge_cutoff": ibis.cases((value >= CUTOFF, MET), (value < CUTOFF, NOT_MET),
                                        else_=UNKNOWN),
    }
    inputs = {s.variable: t[s.column] for s in INPUTS}
    out[f"{NAME}_missing"] = missing_list(inputs)
    out[f"{NAME}_n_missing"] = count_null(list(inputs.values()))
    return out

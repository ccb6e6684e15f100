"""Phoenix-8: the Phoenix Sepsis Score plus endocrine, immunologic, renal and hepatic systems.

Clinical reference §5.3 and §5.4; Sanchez-Pinto LN et al., JAMA 2024;331(8):675-686 (research
extension, not part of the sepsis definition); reference implementation ``phoenix-sepsis`` 1.1.3
(``phoenix8``), against which it is tested row by row.

One point each (§5.3):

* endocrine: glucose ``< 50`` or ``> 150`` mg/dL (the window's lowest and highest glucose are
  both checked; missing -> 100, normal);
* immunologic: ANC ``< 0.5`` or ALC ``< 1.0`` x 10^3/uL (missing -> 555 / 1111);
* renal: creatinine (mg/dL) ``>=`` 0.8 / 0.3 / 0.4 / 0.6 / 0.7 / 1.0 in the age bands 0-<1, 1-<12,
  12-<24, 24-<60, 60-<144, 144-216 months (missing creatinine -> 0);
* hepatic: total bilirubin ``>= 4`` mg/dL or ALT ``> 102`` IU/L (missing -> 0).

Renal missing-age quirk (§5.4, §12.35): the reference code replaces a missing age by 0 months
in the renal subscore only, so a creatinine >= 0.8 mg/dL then scores 1. It is replicated to agree
with the reference and flagged in ``phoenix8_renal_age_imputed``.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from hyperinflam.criteria import phoenix
from hyperinflam.criteria._toolkit import as_int, in_age_band
from hyperinflam.criteria.phoenix import lookback_spec
from hyperinflam.features import FeatureSpec

NAME = "phoenix8"
TITLE = "Phoenix-8 (Sanchez-Pinto 2024)"
#: Short name of the criterion (of its RESULT where it has one) for tables and the census.
LABEL = "Phoenix-8"
#: Criterion group (screening.meets): organ dysfunction and severity.
GROUP = "severity"
#: Ages (months, [low, high)) the authors validated the score in; outside them the screen flags
#: the evaluation (``phoenix8_outside_validated_ages``). §5.1, §5.3: Phoenix's population, < 18
#: years (< 216 months).
VALIDATED_AGE_MONTHS = (0, 216)
REFERENCE = (
    "clinical reference §5.3-§5.4; Sanchez-Pinto LN et al. JAMA 2024;331(8):675-686; "
    "phoenix-sepsis 1.1.3"
)

GLUCOSE_MIN = lookback_spec("glucose", "min")
GLUCOSE_MAX = lookback_spec("glucose", "max")
ANC = lookback_spec("anc", "min")
ALC = lookback_spec("alc", "min")
CREATININE = lookback_spec("creatinine", "max")
BILIRUBIN = lookback_spec("bilirubin_total", "max")
ALT = lookback_spec("alt", "max")

#: The four extra systems' inputs, (name in ``phoenix8_missing``, spec).
EXTRA_INPUTS: list[tuple[str, FeatureSpec]] = [
    ("glucose_min", GLUCOSE_MIN), ("glucose_max", GLUCOSE_MAX), ("anc", ANC), ("alc", ALC),
    ("creatinine", CREATININE), ("bilirubin_total", BILIRUBIN), ("alt", ALT),
]

INPUTS: list[FeatureSpec] = list(phoenix.INPUTS) + [spec for _, spec in EXTRA_INPUTS]

# -- thresholds (§5.3; phoenix-sepsis 1.1.3, phoenix8) ------------------------------------------
#: Endocrine: glucose (mg/dL) < 50 or > 150 -> 1 point.
GLUCOSE_BELOW, GLUCOSE_ABOVE = 50, 150
#: Immunologic: ANC < 0.5 or ALC < 1.0 x 10^3/uL -> 1 point.
ANC_BELOW, ALC_BELOW = 0.5, 1.0
#: Hepatic: total bilirubin >= 4 mg/dL or ALT > 102 IU/L -> 1 point.
BILIRUBIN_AT_LEAST, ALT_ABOVE = 4, 102
#: The reference code's substitutions for missing inputs (§5.4); a missing age is 0 months in
#: the renal subscore only (§12.35).
IF_MISSING: dict[str, float] = {"glucose": 100, "anc": 555, "alc": 1111, "creatinine": 0,
                                "renal_age_months": 0, "bilirubin_total": 0, "alt": 0}

#: Renal bands (§5.3): (age lo, age hi, hi inclusive, creatinine mg/dL scoring 1 point ">=").
CREATININE_BANDS_MONTHS = [
    (0, 1, False, 0.8),
    (1, 12, False, 0.3),
    (12, 24, False, 0.4),
    (24, 60, False, 0.6),
    (60, 144, False, 0.7),
    (144, 216, True, 1.0),
]


def endocrine_points(t: ir.Table) -> ir.IntegerValue:
    """Glucose < 50 or > 150 mg/dL (§5.3)."""
    low = t[GLUCOSE_MIN.column].fill_null(IF_MISSING["glucose"])
    high = t[GLUCOSE_MAX.column].fill_null(IF_MISSING["glucose"])
    return as_int((low < GLUCOSE_BELOW) | (low > GLUCOSE_ABOVE) | (high < GLUCOSE_BELOW)
                  | (high > GLUCOSE_ABOVE))


def immunologic_points(t: ir.Table) -> ir.IntegerValue:
    """ANC < 0.5 or ALC < 1.0 x 10^3/uL (§5.3)."""
    return as_int((t[ANC.column].fill_null(IF_MISSING["anc"]) < ANC_BELOW)
                  | (t[ALC.column].fill_null(IF_MISSING["alc"]) < ALC_BELOW))


def renal_points(t: ir.Table) -> ir.IntegerValue:
    """Creatinine by age band (§5.3); a missing age counts as 0 months (reference quirk, §5.4)."""
    creatinine = t[CREATININE.column].fill_null(IF_MISSING["creatinine"])
    age = t.age_months.fill_null(IF_MISSING["renal_age_months"])
    total = ibis.literal(0, type="int64")
    for lo, hi, closed, threshold in CREATININE_BANDS_MONTHS:
        in_band = in_age_band(age, lo, hi, high_inclusive=closed)
        total = total + as_int(in_band) * as_int(creatinine >= threshold)
    return total


def hepatic_points(t: ir.Table) -> ir.IntegerValue:
    """Total bilirubin >= 4 mg/dL or ALT > 102 IU/L (§5.3)."""
    bilirubin = t[BILIRUBIN.column].fill_null(IF_MISSING["bilirubin_total"])
    alt = t[ALT.column].fill_null(IF_MISSING["alt"])
    return as_int((bilirubin >= BILIRUBIN_AT_LEAST) | (alt > ALT_ABOVE))


def evaluate(t: ir.Table) -> dict[str, ir.Value]:
    """Phoenix-8 output columns over the wide feature table ``t`` (§5.3)."""
    endo = endocrine_points(t)
    immuno = immunologic_points(t)
    renal = renal_points(t)
    hepatic = hepatic_points(t)
    phoenix_score = (phoenix.respiratory_points(t) + phoenix.cardiovascular_points(t)
                     + phoenix.coagulation_points(t) + phoenix.neurologic_points(t))
    absent, n_absent = phoenix.missing(t, phoenix.SCORED_INPUTS + EXTRA_INPUTS,
                                       [("age_months", t.age_months)])
    return {
        "phoenix8_endocrine_points": endo,
        "phoenix8_immunologic_points": immuno,
        "phoenix8_renal_points": renal,
        "phoenix8_hepatic_points": hepatic,
        "phoenix8_score": phoenix_score + endo + immuno + renal + hepatic,
        "phoenix8_renal_age_imputed": t.age_months.isnull() & t[CREATININE.column].notnull(),
        "phoenix8_missing": absent,
        "phoenix8_n_assumed_normal": n_absent,
    }

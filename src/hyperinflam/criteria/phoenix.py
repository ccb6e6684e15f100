"""Phoenix Sepsis Score, Phoenix sepsis and Phoenix septic shock.

Clinical reference §5.1-§5.5 and §12.9, §12.10, §12.14, §12.22, §12.24-§12.26; Schlapbach LJ et
al., JAMA 2024;331(8):665-674 and Sanchez-Pinto LN et al., JAMA 2024;331(8):675-686. Every rule
follows the authors' reference implementation ``phoenix-sepsis`` 1.1.3, against which it is tested
row by row.

Scoring (§5.2):

* respiratory 0-3: ``imv * [(pf<100 or sf<148) + (pf<200 or sf<220)] + ors * (pf<400 or sf<292)``,
  where ``ors`` (any respiratory support, §5.2) is IMV, or any other documented respiratory
  support in the look-back (organ-support kinds BiPAP / NIV, CPAP, high-flow nasal cannula,
  conventional supplemental oxygen of vocabulary/supports.csv), or the authors' EHR rule: a
  charted FiO2 ``> 0.21`` in the look-back ("FiO2 > 0.21 implies support",
  :data:`FIO2_IMPLIES_SUPPORT`). ``phoenix_respiratory_support`` says which one applied, first
  of: 'invasive_ventilation', 'documented_support', 'fio2_above_room_air', else 'none'.
  S/F only exists where SpO2 <= 97 % (hyperinflam.features.derived).
* cardiovascular 0-6: distinct vasoactive agents (1 -> 1, >= 2 -> 2) + lactate (``>= 5`` -> 1,
  ``>= 11`` -> 2) + MAP by age band in months (0-2; ``144 <= age <= 216`` inclusive as in the code).
* coagulation 0-2: platelets ``< 100``, INR ``> 1.3``, D-dimer ``> 2`` mg/L FEU, fibrinogen
  ``< 100`` mg/dL, one point each, capped at 2.
* neurologic 0-2: GCS ``<= 10`` -> 1, bilaterally fixed pupils -> 2, capped at 2.

Missing inputs score 0, as the authors do (§5.4), using the reference code's substitutions
(P/F, S/F 500; lactate, INR, D-dimer 0; platelets, fibrinogen 1000; GCS 15; pupils 0; MAP 100 and
age 222). Every substituted input is named in ``phoenix_missing`` and counted in
``phoenix_n_assumed_normal``. IMV and vasoactives come from the organ-support record, where
absence means "not given" (FALSE / 0), not missing.

Sepsis (§5.1) = score >= 2 **and** suspected infection. The infection feature is TRUE or NULL
(absence of a recorded infection is not "no infection"), so ``phoenix_sepsis`` is 'met'
(score >= 2, infection recorded), 'not_met' (score < 2) or 'unknown' (score >= 2, no infection
recorded). ``phoenix_score_ge_2`` is the reference code's ``phoenix_sepsis`` (no infection check).

Values are the worst in each variable's look-back window (§12.10: worst value within the
authors' look-back windows of §5.4, :data:`LOOKBACK_HOURS`).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from hyperinflam.criteria._toolkit import (ROOM_AIR_FIO2, as_int, in_age_band, missing_inputs,
                                           tri_state)
from hyperinflam.features import FeatureSpec
from hyperinflam.vocabulary.domain import OTHER_RESPIRATORY_SUPPORT

NAME = "phoenix"
TITLE = "Phoenix Sepsis Score (Schlapbach 2024, Sanchez-Pinto 2024)"
#: Short name of the criterion (of its RESULT where it has one) for tables and the census.
LABEL = "Phoenix sepsis"
#: The column holding this criterion's overall tri-state result (met / not_met / unknown or
#: indeterminate); the screen's "meets any criterion" reads it.
RESULT = "phoenix_sepsis"
#: Criterion group (screening.meets): organ dysfunction and severity.
GROUP = "severity"
#: Ages (months, [low, high)) the authors validated the score in; outside them the screen flags
#: the evaluation (``phoenix_outside_validated_ages``). §5.1: developed and validated in children <
#: 18 years (< 216 months) at encounter start (Schlapbach 2024, Sanchez-Pinto 2024).
VALIDATED_AGE_MONTHS = (0, 216)
#: Phoenix Sepsis Score at or above which a child with suspected infection has sepsis (§5.1).
SEPSIS_SCORE_THRESHOLD = 2
REFERENCE = (
    "clinical reference §5.1-§5.5; Schlapbach LJ et al. JAMA 2024;331(8):665-674; "
    "Sanchez-Pinto LN et al. JAMA 2024;331(8):675-686; phoenix-sepsis 1.1.3"
)

#: Look-back (hours) of each input: the authors' last-observation-carried-forward limits (§5.4).
LOOKBACK_HOURS: dict[str, float] = {
    "pf_ratio": 6, "sf_ratio": 6, "fio2": 6, "invasive_ventilation": 6,
    OTHER_RESPIRATORY_SUPPORT: 6,
    "lactate": 6, "map_any": 6, "pupils_fixed_bilateral": 6,
    "vasoactive": 12, "gcs_total": 12, "glucose": 12,
    "platelets": 24, "inr": 24, "d_dimer": 24, "fibrinogen": 24,
    "anc": 24, "alc": 24, "creatinine": 24, "bilirubin_total": 24, "alt": 24,
}

# -- thresholds (§5.2; the reference code phoenix-sepsis 1.1.3, phoenix.py) ----------------------
#: The authors' EHR rule (§5.2, EHR notes): a charted FiO2 above ROOM_AIR_FIO2 (vocabulary.domain)
#: means "other respiratory support" even where no support is documented. False: only IMV and
#: documented support count (the rubric as printed).
FIO2_IMPLIES_SUPPORT: bool = True
#: Values of ``phoenix_respiratory_support``: the first that applied of IMV, documented other
#: support, the FiO2 rule; else none.
SUPPORT_BY_IMV, SUPPORT_DOCUMENTED, SUPPORT_BY_FIO2, SUPPORT_NONE = (
    "invasive_ventilation", "documented_support", "fio2_above_room_air", "none")
#: Respiratory: with IMV, P/F < 100 or S/F < 148 -> +1 and P/F < 200 or S/F < 220 -> +1; with any
#: respiratory support, P/F < 400 or S/F < 292 -> +1.
PF_SEVERE_BELOW, SF_SEVERE_BELOW = 100, 148
PF_MODERATE_BELOW, SF_MODERATE_BELOW = 200, 220
PF_SUPPORT_BELOW, SF_SUPPORT_BELOW = 400, 292
#: Cardiovascular: 1 vasoactive agent -> 1 point, 2 or more -> 2; lactate (mmol/L) >= 5 -> +1,
#: >= 11 -> +1 more; MAP by age band (MAP_BANDS_MONTHS).
VASOACTIVES_ONE_POINT, VASOACTIVES_TWO_POINTS = 1, 2
LACTATE_ONE_POINT_AT_LEAST, LACTATE_TWO_POINTS_AT_LEAST = 5, 11
#: Coagulation, one point each, at most COAGULATION_MAX_POINTS: platelets < 100 x 10^3/uL,
#: INR > 1.3, D-dimer > 2 mg/L FEU, fibrinogen < 100 mg/dL.
PLATELETS_BELOW, INR_ABOVE, D_DIMER_ABOVE, FIBRINOGEN_BELOW = 100, 1.3, 2, 100
COAGULATION_MAX_POINTS = 2
#: Neurologic, at most NEUROLOGIC_MAX_POINTS: GCS <= 10 -> 1 point, bilaterally fixed pupils -> 2.
GCS_AT_MOST, FIXED_PUPILS_POINTS, NEUROLOGIC_MAX_POINTS = 10, 2, 2
#: The reference code's substitutions for missing inputs (§5.4): each scores 0 points.
IF_MISSING: dict[str, float] = {
    "pf_ratio": 500, "sf_ratio": 500, "vasoactive": 0, "lactate": 0, "age_months": 222,
    "map": 100, "platelets": 1000, "inr": 0, "d_dimer": 0, "fibrinogen": 1000, "gcs": 15,
}
#: ``phoenix_age_eligible``: age at PICU admission below 216 months (18 years, §5.1).
AGE_ELIGIBLE_BELOW_MONTHS = 216


def lookback_spec(variable: str, agg: str, source: str = "measurement") -> FeatureSpec:
    """The FeatureSpec of ``variable`` with its look-back of :data:`LOOKBACK_HOURS` (§5.4)."""
    return FeatureSpec(variable, agg, LOOKBACK_HOURS[variable], source)


PF_RATIO = lookback_spec("pf_ratio", "min")
SF_RATIO = lookback_spec("sf_ratio", "min")
FIO2 = lookback_spec("fio2", "max")
IMV = lookback_spec("invasive_ventilation", "any", "organ_support")
#: Documented respiratory support other than IMV (BiPAP / NIV, CPAP, high flow, oxygen; §5.2).
OTHER_SUPPORT = lookback_spec(OTHER_RESPIRATORY_SUPPORT, "any", "organ_support")
VASOACTIVES = lookback_spec("vasoactive", "count", "organ_support")
LACTATE = lookback_spec("lactate", "max")
MAP = lookback_spec("map_any", "min")
PLATELETS = lookback_spec("platelets", "min")
INR = lookback_spec("inr", "max")
D_DIMER = lookback_spec("d_dimer", "max")
FIBRINOGEN = lookback_spec("fibrinogen", "min")
GCS = lookback_spec("gcs_total", "min")
#: Bilaterally fixed pupils: a condition concept of vocabulary/concepts.csv (TRUE; FALSE when
#: 'pupils_reactive' was recorded; NULL = not documented, scored 0 and named as missing).
PUPILS_FIXED = lookback_spec("pupils_fixed_bilateral", "any", "condition")
#: Suspected infection (contract: TRUE or NULL = not recorded).
INFECTION = FeatureSpec("infection", "any", None, "event")

#: (name shown in ``phoenix_missing``, spec) of every input replaced by a normal value if missing.
SCORED_INPUTS: list[tuple[str, FeatureSpec]] = [
    ("pf_ratio", PF_RATIO), ("sf_ratio", SF_RATIO), ("fio2", FIO2),
    ("invasive_ventilation", IMV), ("vasoactive", VASOACTIVES), ("lactate", LACTATE),
    ("map", MAP), ("platelets", PLATELETS), ("inr", INR), ("d_dimer", D_DIMER),
    ("fibrinogen", FIBRINOGEN), ("gcs", GCS), ("pupils", PUPILS_FIXED),
]

#: Documented other support is, like IMV, FALSE when not recorded (absence = not given); it is
#: not a substituted input.
INPUTS: list[FeatureSpec] = [spec for _, spec in SCORED_INPUTS] + [OTHER_SUPPORT, INFECTION]


def respiratory_points(t: ir.Table) -> ir.IntegerValue:
    """Respiratory subscore 0-3 (§5.2), with the reference code's substitutions (§5.4)."""
    pf = t[PF_RATIO.column].fill_null(IF_MISSING["pf_ratio"])
    sf = t[SF_RATIO.column].fill_null(IF_MISSING["sf_ratio"])
    imv = t[IMV.column].fill_null(False)
    ors = imv | t[OTHER_SUPPORT.column].fill_null(False) | fio2_implies_support(t)
    severe = (as_int((pf < PF_SEVERE_BELOW) | (sf < SF_SEVERE_BELOW))
              + as_int((pf < PF_MODERATE_BELOW) | (sf < SF_MODERATE_BELOW)))
    return as_int(imv) * severe + as_int(ors) * as_int((pf < PF_SUPPORT_BELOW)
                                                       | (sf < SF_SUPPORT_BELOW))


def fio2_implies_support(t: ir.Table) -> ir.BooleanValue:
    """The authors' EHR rule (§5.2): FiO2 > 0.21 in the look-back (False when switched off)."""
    if not FIO2_IMPLIES_SUPPORT:
        return ibis.literal(False)
    return (t[FIO2.column] > ROOM_AIR_FIO2).fill_null(False)


def respiratory_support(t: ir.Table) -> ir.StringValue:
    """Which "any respiratory support" rule applied (§5.2), first of IMV, documented, FiO2."""
    return ibis.cases(
        (t[IMV.column].fill_null(False), SUPPORT_BY_IMV),
        (t[OTHER_SUPPORT.column].fill_null(False), SUPPORT_DOCUMENTED),
        (fio2_implies_support(t), SUPPORT_BY_FIO2),
        else_=SUPPORT_NONE).cast("string")


def _band_points(age, value, bands) -> ir.IntegerValue:
    """Sum over age bands [lo, hi) (last band closed) of points for ``value`` below thresholds."""
    total = ibis.literal(0, type="int64")
    for lo, hi, closed, two, one in bands:
        in_band = in_age_band(age, lo, hi, high_inclusive=closed)
        total = total + as_int(in_band) * (as_int(value < two) + as_int(value < one))
    return total


#: MAP bands (§5.2): (age lo, age hi, hi inclusive, MAP for 2 points "<", MAP for 1 point "<").
MAP_BANDS_MONTHS = [
    (0, 1, False, 17, 31),
    (1, 12, False, 25, 39),
    (12, 24, False, 31, 44),
    (24, 60, False, 32, 45),
    (60, 144, False, 36, 49),
    (144, 216, True, 38, 52),
]


def cardiovascular_points(t: ir.Table) -> ir.IntegerValue:
    """Cardiovascular subscore 0-6 (§5.2): vasoactive count + lactate + MAP by age in months."""
    vaso = t[VASOACTIVES.column].fill_null(IF_MISSING["vasoactive"])
    lactate = t[LACTATE.column].fill_null(IF_MISSING["lactate"])
    age = t.age_months.fill_null(IF_MISSING["age_months"])
    map_mmhg = t[MAP.column].fill_null(IF_MISSING["map"])
    return (
        as_int(vaso >= VASOACTIVES_TWO_POINTS) + as_int(vaso >= VASOACTIVES_ONE_POINT)
        + as_int(lactate >= LACTATE_TWO_POINTS_AT_LEAST)
        + as_int(lactate >= LACTATE_ONE_POINT_AT_LEAST)
        + _band_points(age, map_mmhg, MAP_BANDS_MONTHS)
    )


def coagulation_points(t: ir.Table) -> ir.IntegerValue:
    """Coagulation subscore 0-2 (§5.2): platelets, INR, D-dimer, fibrinogen, capped at 2."""
    raw = (
        as_int(t[PLATELETS.column].fill_null(IF_MISSING["platelets"]) < PLATELETS_BELOW)
        + as_int(t[INR.column].fill_null(IF_MISSING["inr"]) > INR_ABOVE)
        + as_int(t[D_DIMER.column].fill_null(IF_MISSING["d_dimer"]) > D_DIMER_ABOVE)
        + as_int(t[FIBRINOGEN.column].fill_null(IF_MISSING["fibrinogen"]) < FIBRINOGEN_BELOW)
    )
    return ibis.least(raw, COAGULATION_MAX_POINTS)


def neurologic_points(t: ir.Table) -> ir.IntegerValue:
    """Neurologic subscore 0-2 (§5.2): GCS <= 10 -> 1, bilaterally fixed pupils -> 2, cap 2."""
    gcs = t[GCS.column].fill_null(IF_MISSING["gcs"])
    fixed = t[PUPILS_FIXED.column].fill_null(False)
    return ibis.least(FIXED_PUPILS_POINTS * as_int(fixed) + as_int(gcs <= GCS_AT_MOST),
                      NEUROLOGIC_MAX_POINTS)


def missing(t: ir.Table, inputs: list[tuple[str, FeatureSpec]],
            extra: list[tuple[str, ir.Value]] = ()) -> tuple[ir.StringValue, ir.IntegerValue]:
    """(comma-separated names of the NULL inputs, their count) of ``(name, spec)`` inputs."""
    return missing_inputs([(name, t[spec.column]) for name, spec in inputs] + list(extra))


def evaluate(t: ir.Table) -> dict[str, ir.Value]:
    """Phoenix output columns over the wide feature table ``t`` (§5)."""
    resp = respiratory_points(t)
    cardio = cardiovascular_points(t)
    coag = coagulation_points(t)
    neuro = neurologic_points(t)
    score = resp + cardio + coag + neuro
    ge_2 = score >= SEPSIS_SCORE_THRESHOLD
    infection = t[INFECTION.column]
    sepsis_met = ge_2 & infection.fill_null(False)
    sepsis_not_met = ~ge_2 | (infection == False).fill_null(False)  # noqa: E712
    absent, n_absent = missing(t, SCORED_INPUTS, [("age_months", t.age_months)])
    return {
        "phoenix_respiratory_points": resp,
        "phoenix_respiratory_support": respiratory_support(t),
        "phoenix_cardiovascular_points": cardio,
        "phoenix_coagulation_points": coag,
        "phoenix_neurologic_points": neuro,
        "phoenix_score": score,
        "phoenix_score_ge_2": ge_2,
        "phoenix_sepsis": tri_state(sepsis_met, sepsis_not_met),
        "phoenix_septic_shock": tri_state(sepsis_met & (cardio >= 1),
                                          sepsis_not_met | (cardio < 1)),
        "phoenix_age_eligible": (t.age_months_at_admit
                                 < AGE_ELIGIBLE_BELOW_MONTHS).fill_null(False),
        "phoenix_missing": absent,
        "phoenix_n_assumed_normal": n_absent,
    }
